// Audit events as files: NDJSON (one JSON object a line, every field as the API gives it) and CSV
// (RFC 4180: CRLF, quoted where needed, details as JSON text; a UTF-8 byte order mark so spreadsheets
// read it as UTF-8). Pure: the page builds the Blob.

export const FIELDS = ['id', 'occurredAt', 'action', 'actor', 'source', 'clientAddress', 'targetId', 'details'];

function record(event) {
  return Object.fromEntries(FIELDS.map((field) => [field, event[field] === undefined ? null : event[field]]));
}

export function toNdjson(events) {
  return events.map((event) => `${JSON.stringify(record(event))}\n`).join('');
}

// A cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading apostrophe:
// names in details are typed by people. The JSON of details starts with "{", so it is never touched.
const FORMULA_START = /^[=+\-@\t\r]/;

function csvCell(value) {
  let text = value === null || value === undefined ? '' : (typeof value === 'string' ? value : JSON.stringify(value));
  if (FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCsv(events) {
  const lines = [FIELDS.join(',')];
  for (const event of events) {
    const row = record(event);
    lines.push(FIELDS.map((field) => csvCell(row[field])).join(','));
  }
  return `\ufeff${lines.join('\r\n')}\r\n`;
}

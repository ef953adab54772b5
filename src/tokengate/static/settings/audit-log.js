// Account settings → Audit log: the account's changes newest first, in cursor pages of the API's
// auditLog(first, after, filter), filtered by action, actor, target and a range of days, each event's
// details expandable; the filtered range downloads as NDJSON or CSV, built here from the API's pages.
import { ApiError, describeError } from './api.js';
import { $, FormProblem, announce, el, pageAlert } from './dom.js';
import { toCsv, toNdjson } from './audit-export.js';
import { startSettingsPage } from './shell.js';

const PAGE_SIZE = 50;
const DOWNLOAD_PAGE_SIZE = 100;  // the API's largest page
const MAX_RETRIES = 5;  // waits the server asks for (429) while downloading, before giving up
const AUDIT_QUERY = `query SettingsAuditLog($first: Int!, $after: String, $filter: AuditLogFilter) {
  account { auditLog(first: $first, after: $after, filter: $filter) {
    edges { node { id action actor source clientAddress targetId occurredAt details } }
    pageInfo { hasNextPage endCursor }
  } }
}`;
// Offered as suggestions; any other action can be typed (the filter matches exactly).
const KNOWN_ACTIONS = [
  'ip_restrictions.updated', 'legacy_token.imported', 'project.created',
  'service_token.created', 'service_token.deleted', 'service_token.expired_on_use', 'service_token.leak_reported',
  'service_token.rotated', 'service_token.updated', 'token_policy.updated',
  'user.created', 'user.deactivated', 'user.updated', 'user_token.created', 'user_token.deleted',
];
const FORMATS = {
  ndjson: { build: toNdjson, type: 'application/x-ndjson', label: 'NDJSON' },
  csv: { build: toCsv, type: 'text/csv;charset=utf-8', label: 'CSV' },
};
const WHAT = { doing: 'viewing', what: 'the audit log' };
const whenFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

const state = {
  session: null,
  filter: null,  // as the API takes it, null for every event
  cursors: [null],  // `after` of each page up to the one shown
  page: null,  // { events, hasNextPage, endCursor }
  downloading: false,
};

// ---------------------------------------------------------------- the session (shell.js signs in and out)

async function start(session) {
  state.session = session;
  await showPage([null]);
}

function stop() {
  latestPage += 1;  // a load still under way shows nothing once signed out
  Object.assign(state, { session: null, filter: null, cursors: [null], page: null });
  $('audit-filter').reset();
  $('audit-rows').replaceChildren();
  $('range-line').textContent = '';
  pageAlert('');
  announce('');
}

// ---------------------------------------------------------------- reading pages

function sleep(seconds) {
  return new Promise((resolve) => { setTimeout(resolve, seconds * 1000); });
}

async function fetchPage(first, after, filter) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const data = await state.session.call(AUDIT_QUERY, { first, after, filter });
      const log = data.account.auditLog;
      return { events: log.edges.map((edge) => edge.node), hasNextPage: log.pageInfo.hasNextPage, endCursor: log.pageInfo.endCursor };
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 'RATE_LIMITED') || attempt >= MAX_RETRIES) throw error;
      await sleep(error.retryAfter || 1);
    }
  }
}

let latestPage = 0;

// Filters applied or cleared while a page loads start another load; answers may come back in any order, and
// only the latest load is shown (and ends busy).
async function showPage(cursors) {
  const load = ++latestPage;
  $('audit-view').setAttribute('aria-busy', 'true');  // until render(): the list is being replaced
  const buttons = [$('older-page'), $('newer-page')];
  for (const button of buttons) button.disabled = true;
  let page = null;
  try {
    page = await fetchPage(PAGE_SIZE, cursors[cursors.length - 1], state.filter);
    if (load !== latestPage) return;
    state.cursors = cursors;
    pageAlert('');
  } catch (error) {
    if (load !== latestPage) return;
    pageAlert(describeError(error, WHAT));
  }
  state.page = page;
  render();
}

// ---------------------------------------------------------------- the list

function cell(label, ...children) {
  return el('td', { 'data-label': label }, el('div', { class: 'cell' }, ...children));
}

// An event's row, and below it the row of its details (full width), opened by the row's Details button.
function eventRows(event, index) {
  const detailsId = `event-details-${index}`;  // ids of events are opaque: not used in the DOM's ids
  const when = new Date(event.occurredAt);
  const toggle = el('button', {
    type: 'button', class: 'link', 'data-action': 'details', 'aria-expanded': 'false', 'aria-controls': detailsId,
  }, 'Details', el('span', { class: 'visually-hidden', text: ` of ${event.action}, event ${event.id}` }));
  const row = el('tr', { 'data-event-id': event.id },
    cell('When', el('time', { datetime: when.toISOString(), text: whenFormat.format(when) })),
    cell('Action', el('code', { text: event.action })),
    cell('Actor', el('code', { class: 'wrap', text: event.actor })),
    cell('Target', event.targetId ? el('code', { class: 'wrap', text: event.targetId }) : el('span', { class: 'muted', text: 'none' })),
    cell('Details', toggle),
  );
  const facts = el('dl', { class: 'facts' },
    el('dt', { text: 'Event id' }), el('dd', {}, el('code', { text: event.id })),
    el('dt', { text: 'Source' }), el('dd', { text: event.source === 'cli' ? 'command line (cli)' : event.source }),
    el('dt', { text: 'Client address' }), el('dd', { text: event.clientAddress || 'none (command line)' }),
  );
  const json = el('pre', { class: 'json', text: JSON.stringify(event.details ?? {}, null, 2) });
  const details = el('tr', { id: detailsId, class: 'event-details', hidden: true },
    el('td', { colspan: '5' }, facts, json));
  return [row, details];
}

function toggleDetails(button) {
  const open = button.getAttribute('aria-expanded') !== 'true';
  button.setAttribute('aria-expanded', String(open));
  $(button.getAttribute('aria-controls')).hidden = !open;
}

function render() {
  const events = state.page ? state.page.events : [];
  $('audit-rows').replaceChildren(...events.flatMap(eventRows));
  $('audit-table').hidden = events.length === 0;
  $('empty-log').hidden = events.length !== 0 || state.page === null;
  const index = state.cursors.length - 1;
  $('newer-page').disabled = index === 0;
  $('older-page').disabled = !(state.page && state.page.hasNextPage);
  $('page-number').textContent = state.page ? `Page ${index + 1}` : '';
  const first = index * PAGE_SIZE + 1;
  $('range-line').textContent = events.length === 0 ? ''
    : `Events ${first}–${first + events.length - 1}${state.filter ? ' matching the filters' : ''}, newest first.`;
  $('audit-view').removeAttribute('aria-busy');
}

// ---------------------------------------------------------------- filters

function localDay(value, plusDays = 0) {
  const [year, month, day] = value.split('-').map(Number);
  return new Date(year, month - 1, day + plusDays);
}

function readFilter() {
  const text = (id) => $(id).value.trim() || null;
  const from = $('filter-from').value;
  const to = $('filter-to').value;
  if (from && to && to < from) throw new FormProblem('The “To” day is before the “From” day.');
  const filter = {
    action: text('filter-action'),
    actor: text('filter-actor'),
    targetId: text('filter-target'),
    since: from ? localDay(from).toISOString() : null,
    until: to ? localDay(to, 1).toISOString() : null,  // the whole "To" day
  };
  return Object.values(filter).some((value) => value !== null) ? filter : null;
}

async function applyFilter(event) {
  event.preventDefault();
  $('filter-error').textContent = '';
  try {
    state.filter = readFilter();
  } catch (problem) {
    if (!(problem instanceof FormProblem)) throw problem;
    $('filter-error').textContent = problem.message;
    return;
  }
  await showPage([null]);
  if (state.page) announce(state.page.events.length ? 'Filters applied.' : 'No events match these filters.');
}

// ---------------------------------------------------------------- downloads

function fileName(extension) {
  const stamp = new Date().toISOString().slice(0, 19).replaceAll(':', '-');
  return `audit-log-${stamp}.${extension}`;
}

function saveFile(text, type, name) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);  // the download has started long before
}

// Every event of the applied filters, oldest page last, through the API's largest pages.
async function download(format) {
  if (state.downloading) return;
  const { build, type, label } = FORMATS[format];
  const buttons = [$('download-ndjson'), $('download-csv')];
  state.downloading = true;
  for (const button of buttons) button.disabled = true;
  pageAlert('');
  const events = [];
  try {
    let after = null;
    do {
      announce(`Preparing the ${label} file: ${events.length} events so far…`);
      const page = await fetchPage(DOWNLOAD_PAGE_SIZE, after, state.filter);
      events.push(...page.events);
      after = page.hasNextPage ? page.endCursor : null;
    } while (after !== null);
    saveFile(build(events), type, fileName(format));
    announce(`Downloaded ${events.length} ${events.length === 1 ? 'event' : 'events'} as ${label}.`);
  } catch (error) {
    announce('');
    pageAlert(`The download stopped after ${events.length} events. ${describeError(error, WHAT)}`);
  } finally {
    state.downloading = false;
    for (const button of buttons) button.disabled = false;
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('known-actions').replaceChildren(...KNOWN_ACTIONS.map((action) => el('option', { value: action })));
  $('audit-filter').addEventListener('submit', applyFilter);
  $('audit-rows').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action="details"]');
    if (button) toggleDetails(button);
  });
  $('clear-filters').addEventListener('click', async () => {
    $('audit-filter').reset();
    $('filter-error').textContent = '';
    state.filter = null;
    await showPage([null]);
    announce('Filters cleared.');
  });
  $('older-page').addEventListener('click', async () => {
    if (!state.page || !state.page.hasNextPage) return;
    await showPage([...state.cursors, state.page.endCursor]);
    ($('older-page').disabled ? $('newer-page') : $('older-page')).focus();  // the last page has no older one
  });
  $('newer-page').addEventListener('click', async () => {
    if (state.cursors.length < 2) return;
    await showPage(state.cursors.slice(0, -1));
    ($('newer-page').disabled ? $('older-page') : $('newer-page')).focus();
  });
  $('download-ndjson').addEventListener('click', () => download('ndjson'));
  $('download-csv').addEventListener('click', () => download('csv'));
}

wire();
startSettingsPage({ start, stop });

// IP restrictions decided as the server decides them (src/tokengate/ip_rules.py), so that the page can
// warn before a save the server would refuse as a lock-out. The server stays the judge: the page still
// sends what the person confirms and shows the server's answer. Pure: no DOM, no network.
//
// The rule: the rule with the most specific network containing the address decides; an ALLOW and a DENY
// on the same network: DENY; an address no rule matches is refused when any ALLOW rule exists.
// Parsing follows Python's ipaddress (strict dotted quads without leading zeros, IPv6 with one "::"
// and an optional IPv4 tail, IPv4 netmask and hostmask forms after the "/"); what it cannot read
// makes the prediction unknown rather than wrong.

export const ALLOW = 'ALLOW';
export const DENY = 'DENY';
const BITS = { 4: 32, 6: 128 };
const HEXTETS = 8;
// Python's str.strip() set (str.isspace), which differs from String.prototype.trim() at the edges.
const PY_SPACE = '[\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const SURROUNDING_SPACE = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, 'g');

function strip(text) {
  return text.replace(SURROUNDING_SPACE, '');
}

function parseIPv4(text) {
  const octets = text.split('.');
  if (octets.length !== 4) return null;
  let value = 0n;
  for (const octet of octets) {
    if (!/^[0-9]{1,3}$/.test(octet) || (octet !== '0' && octet[0] === '0')) return null;
    const number = Number(octet);
    if (number > 255) return null;
    value = (value << 8n) | BigInt(number);
  }
  return value;
}

function parseHextet(text) {
  return /^[0-9A-Fa-f]{1,4}$/.test(text) ? BigInt(`0x${text}`) : null;
}

function parseIPv6(text) {
  if (!text || text.includes('%')) return null;
  const parts = text.split(':');
  if (parts.length < 3) return null;
  if (parts[parts.length - 1].includes('.')) {
    const tail = parseIPv4(parts.pop());
    if (tail === null) return null;
    parts.push(((tail >> 16n) & 0xffffn).toString(16), (tail & 0xffffn).toString(16));
  }
  if (parts.length > HEXTETS + 1) return null;
  let skip = null;
  for (let i = 1; i < parts.length - 1; i += 1) {
    if (parts[i]) continue;
    if (skip !== null) return null;  // at most one "::"
    skip = i;
  }
  let high;
  let low;
  if (skip !== null) {
    high = skip;
    low = parts.length - skip - 1;
    if (!parts[0] && --high) return null;  // a leading ":" only as part of "::"
    if (!parts[parts.length - 1] && --low) return null;  // a trailing ":" likewise
    if (HEXTETS - (high + low) < 1) return null;
  } else {
    if (parts.length !== HEXTETS) return null;
    high = HEXTETS;
    low = 0;
  }
  let value = 0n;
  const groups = [...parts.slice(0, high), ...new Array(HEXTETS - high - low).fill('0'), ...parts.slice(parts.length - low)];
  for (const group of groups) {
    const hextet = parseHextet(group);
    if (hextet === null) return null;
    value = (value << 16n) | hextet;
  }
  return value;
}

function parseIp(text) {
  const v4 = parseIPv4(text);
  if (v4 !== null) return { version: 4, value: v4 };
  const v6 = parseIPv6(text);
  return v6 === null ? null : { version: 6, value: v6 };
}

// An address (surrounding spaces ignored); an IPv4-mapped IPv6 address is that IPv4 address.
export function parseAddress(text) {
  if (typeof text !== 'string' || text.length > 64) return null;
  const address = parseIp(strip(text));
  if (address && address.version === 6 && address.value >> 32n === 0xffffn) {
    return { version: 4, value: address.value & 0xffffffffn };
  }
  return address;
}

function prefixFromMask(mask, bits) {
  let zeros = 0;
  while (zeros < bits && ((mask >> BigInt(zeros)) & 1n) === 0n) zeros += 1;
  const prefix = bits - zeros;
  return mask >> BigInt(zeros) === (1n << BigInt(prefix)) - 1n ? prefix : null;
}

function parsePrefix(text, version) {
  const bits = BITS[version];
  if (/^[0-9]+$/.test(text)) {
    const prefix = Number(text);
    return prefix <= bits ? prefix : null;
  }
  if (version !== 4) return null;
  const mask = parseIPv4(text);  // a netmask (255.255.255.0), else a hostmask (0.0.0.255)
  if (mask === null) return null;
  const asNetmask = prefixFromMask(mask, bits);
  return asNetmask !== null ? asNetmask : prefixFromMask(mask ^ 0xffffffffn, bits);
}

// A network as the server accepts it (a bare address is /32 or /128), or null: not a CIDR, or host bits
// set. The server's message says which; the page shows that one.
export function parseCidr(text) {
  const value = typeof text === 'string' ? strip(text) : '';
  if (!value || value.includes('%')) return null;
  const pieces = value.split('/');
  if (pieces.length > 2) return null;
  const address = parseIp(pieces[0]);
  if (address === null) return null;
  const bits = BITS[address.version];
  const prefix = pieces.length === 2 ? parsePrefix(pieces[1], address.version) : bits;
  if (prefix === null) return null;
  const hostBits = BigInt(bits - prefix);
  if ((address.value >> hostBits) << hostBits !== address.value) return null;
  // An IPv4-mapped network (::ffff:1.2.3.4/128) is the IPv4 network it means, as the server stores it:
  // addresses are matched in their IPv4 form.
  if (address.version === 6 && prefix >= 96 && address.value >> 32n === 0xffffn) {
    return { version: 4, prefix: prefix - 96, value: address.value & 0xffffffffn };
  }
  return { version: address.version, prefix, value: address.value };
}

function contains(network, address) {
  if (network.version !== address.version) return false;
  const hostBits = BigInt(BITS[network.version] - network.prefix);
  return address.value >> hostBits === network.value >> hostBits;
}

// rules: [{ name, type, cidrs: [text] }] as the page holds them; address: the text the server reports.
// Returns { known: false } when a network or the address cannot be read here, else
// { known: true, allowed, match: { rule, type, cidr } | null }.
export function decide(rules, address) {
  let parsedAddress = null;
  if (address !== null && address !== undefined) {
    parsedAddress = parseAddress(address);
    if (parsedAddress === null) return { known: false };
  }
  let best = null;
  let hasAllow = false;
  for (const rule of rules) {
    hasAllow = hasAllow || rule.type === ALLOW;
    for (const text of rule.cidrs) {
      const network = parseCidr(text);
      if (network === null) return { known: false };
      if (parsedAddress === null || !contains(network, parsedAddress)) continue;
      const better = best === null || network.prefix > best.network.prefix
        || (network.prefix === best.network.prefix && best.type === ALLOW && rule.type === DENY);
      if (better) best = { rule: rule.name, type: rule.type, cidr: strip(text), network };
    }
  }
  const match = best === null ? null : { rule: best.rule, type: best.type, cidr: best.cidr };
  return { known: true, allowed: match === null ? !hasAllow : match.type === ALLOW, match };
}

// What saving would do to the caller: null when the server would accept it, else why it would refuse
// (the decision above with the address). Disabled rules never lock anyone out.
export function lockOut(enabled, rules, address) {
  if (!enabled) return null;
  const decision = decide(rules, address);
  if (!decision.known || decision.allowed) return null;
  return decision;
}

// Account settings → IP restrictions: the rules (ALLOW or DENY lists of networks) and the switch, saved with
// setIpRestrictions, which replaces the whole set. The page shows the caller's address as the server sees
// it and, before a save, predicts with ip-rules.js whether the server would refuse it as a lock-out; the
// server stays the judge and its message is shown when it refuses (next to the field it is about).
import { ApiError, describeError } from './api.js';
import {
  $, FormProblem, announce, busy, el, openDialog, pageAlert, wireDialog,
} from './dom.js';
import { ALLOW, decide, lockOut } from './ip-rules.js';
import { startSettingsPage } from './shell.js';

const RULES_QUERY = `query SettingsIpRestrictions {
  viewer { clientAddress }
  account { ipRestrictions { enabled rules { id name type cidrs } } }
}`;
const SET_MUTATION = `mutation SettingsSetIpRestrictions($enabled: Boolean!, $rules: [IpRuleInput!]!) {
  setIpRestrictions(enabled: $enabled, rules: $rules) { enabled rules { id name type cidrs } }
}`;
const WHAT = { what: 'IP restrictions' };

const state = {
  session: null,
  loaded: false,
  enabled: false,
  rules: [],
  clientAddress: null,
  editing: null,  // the rule the dialog edits, null for a new one
  removing: null,
};

// ---------------------------------------------------------------- the session (shell.js signs in and out)

async function start(session) {
  state.session = session;
  await load();
}

function stop() {
  Object.assign(state, { session: null, loaded: false, enabled: false, rules: [], clientAddress: null });
  $('rule-rows').replaceChildren();
  pageAlert('');
  announce('');
}

async function load() {
  try {
    const data = await state.session.call(RULES_QUERY);
    state.clientAddress = data.viewer.clientAddress;
    state.enabled = data.account.ipRestrictions.enabled;
    state.rules = data.account.ipRestrictions.rules;
    state.loaded = true;
    pageAlert('');
  } catch (error) {
    state.loaded = false;
    state.rules = [];
    pageAlert(describeError(error, { doing: 'viewing', ...WHAT }));
  }
  render();
}

// ---------------------------------------------------------------- what the rules do to the caller

function ruleName(name) {
  return `“${name}”`;
}

function matchText(match) {
  return `the ${match.type} rule ${ruleName(match.rule)} (${match.cidr})`;
}

// Why the caller's address is allowed or refused by `rules` when they are enforced.
function verdictOf(rules) {
  const decision = decide(rules, state.clientAddress);
  if (!decision.known) return { known: false, text: 'tokengate decides when you save.' };
  if (decision.match) {
    const how = decision.allowed ? 'allowed by' : 'refused by';
    return { known: true, allowed: decision.allowed, text: `${how} ${matchText(decision.match)}` };
  }
  if (decision.allowed) return { known: true, allowed: true, text: 'let through: no rule matches it and there is no ALLOW rule' };
  const why = state.clientAddress === null
    ? 'tokengate cannot tell your address, and an ALLOW rule exists'
    : 'no rule matches it, and an address no rule matches is refused while an ALLOW rule exists';
  return { known: true, allowed: false, text: `refused: ${why}` };
}

function renderVerdict() {
  $('client-address').textContent = state.clientAddress || 'unknown';
  const verdict = verdictOf(state.rules);
  const line = $('address-verdict');
  line.classList.toggle('verdict-refused', verdict.known && !verdict.allowed);
  if (!state.loaded) line.textContent = '';
  else if (state.enabled) line.textContent = `Restrictions are on: your address is ${verdict.text}.`;
  else if (!verdict.known) line.textContent = `Restrictions are off: every address is let through.`;
  else line.textContent = `Restrictions are off: every address is let through. Turned on, these rules would find your address ${verdict.text}.`;
}

// ---------------------------------------------------------------- the list

function cell(label, ...children) {
  return el('td', { 'data-label': label }, el('div', { class: 'cell' }, ...children));
}

function ruleRow(rule) {
  const networks = el('ul', { class: 'networks' }, ...rule.cidrs.map((cidr) => el('li', {}, el('code', { text: cidr }))));
  return el('tr', { 'data-rule-id': rule.id },
    cell('Name', el('span', { class: 'token-name', text: rule.name })),
    cell('Type', el('span', { class: `badge badge-${rule.type.toLowerCase()}`, text: rule.type })),
    cell('Networks', networks),
    cell('Actions', el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'secondary small', 'data-action': 'edit', 'data-id': rule.id, 'aria-label': `Edit ${rule.name}`, text: 'Edit' }),
      el('button', { type: 'button', class: 'danger-outline small', 'data-action': 'remove', 'data-id': rule.id, 'aria-label': `Remove ${rule.name}`, text: 'Remove' }),
    )),
  );
}

function render() {
  $('rule-rows').replaceChildren(...state.rules.map(ruleRow));
  $('rule-table').hidden = state.rules.length === 0;
  $('empty-rules').hidden = state.rules.length !== 0 || !state.loaded;
  const toggle = $('ip-enabled');
  toggle.checked = state.enabled;
  toggle.disabled = !state.loaded;
  $('add-rule').disabled = !state.loaded;
  $('ip-enabled-state').textContent = state.enabled ? 'On' : 'Off';
  renderVerdict();
}

// ---------------------------------------------------------------- saving (the whole set, as the API takes it)

let lockOutAnswer = null;

function answerLockOut(proceed) {
  const resolve = lockOutAnswer;
  lockOutAnswer = null;
  if (resolve) resolve(proceed);
}

// True when the server is expected to accept `rules` from this address, or when the person, warned that it
// will refuse them as a lock-out, still wants to send them (the server's message then says why).
async function mayLockOut(enabled, rules, opener) {
  if (!lockOut(enabled, rules, state.clientAddress)) return true;
  answerLockOut(false);  // a question still open (its dialog closed, its late close event not come yet): no
  $('lockout-why').textContent = `Your address ${state.clientAddress || '(unknown)'} would be ${verdictOf(rules).text}.`;
  openDialog($('lockout-dialog'), opener);
  $('lockout-back').focus();  // the safe choice first
  return new Promise((resolve) => { lockOutAnswer = resolve; });
}

// Sends the switch and every rule; API errors go to the caller, which shows them where they belong.
async function send(enabled, rules) {
  const input = rules.map((rule) => ({ name: rule.name, type: rule.type, cidrs: rule.cidrs }));
  const data = await state.session.call(SET_MUTATION, { enabled, rules: input });
  state.enabled = data.setIpRestrictions.enabled;
  state.rules = data.setIpRestrictions.rules;
  render();
}

// Sends with `container` busy; the API error, if any, is returned once the controls are usable again (so
// that showing it can move focus to the field it is about).
async function sending(container, enabled, rules) {
  busy(container, true);
  try {
    await send(enabled, rules);
    return null;
  } catch (problem) {
    return problem;
  } finally {
    busy(container, false);
  }
}

// ---------------------------------------------------------------- the rule form

function ruleById(id) {
  return state.rules.find((rule) => rule.id === id) || null;
}

function setFieldError(id, message) {
  $(`${id}-error`).textContent = message;
  $(id).setAttribute('aria-invalid', message ? 'true' : 'false');
}

function clearRuleErrors() {
  setFieldError('rule-name', '');
  setFieldError('rule-cidrs', '');
  $('rule-form-error').textContent = '';
}

function openRuleForm(rule, opener) {
  state.editing = rule;
  $('rule-form').reset();
  clearRuleErrors();
  $('rule-dialog-title').textContent = rule ? `Edit ${ruleName(rule.name)}` : 'New rule';
  $('rule-name').value = rule ? rule.name : '';
  $(rule && rule.type !== ALLOW ? 'rule-type-deny' : 'rule-type-allow').checked = true;
  $('rule-cidrs').value = rule ? rule.cidrs.join('\n') : '';
  const mine = $('add-my-address');
  mine.hidden = !state.clientAddress;
  mine.textContent = `Add my address (${state.clientAddress})`;
  openDialog($('rule-dialog'), opener);
  $('rule-name').focus();
}

function readRuleForm() {
  const name = $('rule-name').value.trim();
  if (!name) throw new FormProblem('Give the rule a name.');
  const type = $('rule-type-deny').checked ? 'DENY' : ALLOW;
  const cidrs = $('rule-cidrs').value.split(/[\s,]+/).filter(Boolean);
  if (cidrs.length === 0) throw new FormProblem('Add at least one network.');
  return { name, type, cidrs };
}

// The server names what it refuses: a name, a network (invalid, host bits set, on both an ALLOW and a DENY
// rule), or the whole set (a lock-out, too many rules). The other rules were saved before, so a problem
// with a network is one of this form's.
const NAME_PROBLEM = /: name must be /;
const NETWORK_PROBLEM = /is not a CIDR|has host bits set|needs at least one CIDR| is in the (ALLOW|DENY) rule /;

function showRuleError(problem) {
  const message = problem instanceof FormProblem ? problem.message : describeError(problem, WHAT);
  const text = problem instanceof ApiError && problem.code === 'BAD_USER_INPUT' ? problem.serverMessage : '';
  const isFormProblem = problem instanceof FormProblem;
  if (NAME_PROBLEM.test(text) || (isFormProblem && /name/.test(message))) {
    setFieldError('rule-name', message);
    $('rule-name').focus();
  } else if (NETWORK_PROBLEM.test(text) || (isFormProblem && /network/.test(message))) {
    setFieldError('rule-cidrs', message);
    $('rule-cidrs').focus();
  } else {
    $('rule-form-error').textContent = message;
  }
}

async function submitRule(event) {
  event.preventDefault();
  clearRuleErrors();
  let values;
  try {
    values = readRuleForm();
  } catch (problem) {
    if (!(problem instanceof FormProblem)) throw problem;
    showRuleError(problem);
    return;
  }
  const editing = state.editing;
  const rules = editing
    ? state.rules.map((rule) => (rule.id === editing.id ? { ...rule, ...values } : rule))
    : [...state.rules, values];
  if (!(await mayLockOut(state.enabled, rules, $('rule-submit')))) return;
  const problem = await sending($('rule-form'), state.enabled, rules);
  if (problem) {
    showRuleError(problem);
    if (!$('rule-form').contains(document.activeElement)) $('rule-submit').focus();
    return;
  }
  $('rule-dialog').close();
  announce(`Rule ${ruleName(values.name)} saved.`);
}

// ---------------------------------------------------------------- remove and the switch

function openRemove(rule, opener) {
  state.removing = rule;
  $('remove-title').textContent = `Remove rule ${ruleName(rule.name)}?`;
  $('remove-error').textContent = '';
  openDialog($('remove-dialog'), opener);
  $('remove-cancel').focus();  // the safe choice first
}

async function confirmRemove() {
  const dialog = $('remove-dialog');
  const removing = state.removing;
  const rules = state.rules.filter((rule) => rule.id !== removing.id);
  $('remove-error').textContent = '';
  if (!(await mayLockOut(state.enabled, rules, $('remove-confirm')))) return;
  const problem = await sending(dialog, state.enabled, rules);
  if (problem) {
    $('remove-error').textContent = describeError(problem, WHAT);
    $('remove-confirm').focus();
    return;
  }
  dialog.close();
  announce(`Rule ${ruleName(removing.name)} removed.`);
}

async function toggleEnforcement(event) {
  const toggle = event.currentTarget;
  const wanted = toggle.checked;
  toggle.checked = state.enabled;  // shows what is saved until the server says otherwise
  pageAlert('');
  if (!(await mayLockOut(wanted, state.rules, toggle))) return;
  const problem = await sending($('ip-view').querySelector('.switch-row'), wanted, state.rules);
  toggle.focus();
  if (problem) pageAlert(describeError(problem, WHAT));
  else announce(wanted ? 'IP restrictions are on.' : 'IP restrictions are off.');
}

// ---------------------------------------------------------------- wiring

function wire() {
  const backToPage = { fallback: () => $('add-rule') };
  wireDialog($('rule-dialog'), { ...backToPage, onClose: () => { state.editing = null; } });
  wireDialog($('remove-dialog'), { ...backToPage, onClose: () => { state.removing = null; } });
  wireDialog($('lockout-dialog'), { ...backToPage, onClose: () => answerLockOut(false) });

  $('add-rule').addEventListener('click', (event) => openRuleForm(null, event.currentTarget));
  $('rule-rows').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    const rule = button && ruleById(button.dataset.id);
    if (!rule) return;
    if (button.dataset.action === 'edit') openRuleForm(rule, button);
    else if (button.dataset.action === 'remove') openRemove(rule, button);
  });
  $('rule-form').addEventListener('submit', submitRule);
  $('add-my-address').addEventListener('click', () => {
    const field = $('rule-cidrs');
    field.value = [field.value.trim(), state.clientAddress].filter(Boolean).join('\n');
    field.focus();
  });
  $('remove-confirm').addEventListener('click', confirmRemove);
  $('ip-enabled').addEventListener('change', toggleEnforcement);
  $('lockout-try').addEventListener('click', () => {
    answerLockOut(true);
    $('lockout-dialog').close();
  });
}

wire();
startSettingsPage({ start, stop });

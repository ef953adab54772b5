// Account settings → Keyless CI: the account's trust policies (account.trustPolicies, SERVICE_TOKENS:READ), a
// form for a GitHub Actions policy (createTrustPolicy) and deletion (deleteTrustPolicy), both SERVICE_TOKENS:WRITE.
// The page asks whether the caller may change them (check, never an error) and only reads them if not; the server
// checks every value (exact ids, plan, lifetime) and its words are shown when it refuses. docs/keyless-ci.md.
import { describeError } from './api.js';
import { $, FormProblem, announce, busy, cell, el, openDialog, pageAlert, wireDialog } from './dom.js';
import { grantList } from './grants.js';
import { startSettingsPage } from './shell.js';

const QUERY = `query SettingsTrustPolicies {
  account { trustPolicies { id name issuer audience subject conditions { name value }
    grants { permissionSet allProjects projects { id name } } maxLifetimeSeconds activeTokens { id } } }
  permissionSets { key name level availableOnPlan }
  check(resource: SERVICE_TOKENS, access: WRITE) { allowed reason }
}`;
const CREATE = `mutation SettingsCreateTrustPolicy($input: TrustPolicyInput!) { createTrustPolicy(input: $input) { id name } }`;
const DELETE = `mutation SettingsDeleteTrustPolicy($id: ID!) { deleteTrustPolicy(id: $id) { id name } }`;
const WHAT = { what: 'trust policies' };

const state = { session: null, policies: [], sets: [], writable: false, deleting: null };

async function start(session) {
  state.session = session;
  await load();
}

function stop() {
  Object.assign(state, { session: null, policies: [], sets: [], writable: false, deleting: null });
  $('policy-rows').replaceChildren();
  $('github-form').reset();
  $('github-form').hidden = true;
  $('trust-read-only').hidden = true;
  pageAlert('');
  announce('');
}

async function load() {
  try {
    const data = await state.session.call(QUERY);
    state.policies = data.account.trustPolicies;
    state.sets = data.permissionSets;
    state.writable = data.check.allowed;
    $('trust-read-only').textContent = state.writable ? ''
      : `You can read these policies but not change them: your permission sets do not give SERVICE_TOKENS:WRITE (${data.check.reason}).`;
    pageAlert('');
  } catch (error) {
    state.policies = [];
    pageAlert(describeError(error, { doing: 'viewing', ...WHAT }));
  }
  show();
}

function trusts(policy) {
  const conditions = policy.conditions.map((c) => el('li', {}, el('code', { text: `${c.name} = ${c.value}` })));
  return el('div', {},
    el('p', {}, 'Issuer ', el('code', { text: policy.issuer })),
    el('p', {}, 'Audience ', el('code', { text: policy.audience })),
    el('p', {}, 'Subject ', el('code', { text: policy.subject })),
    conditions.length > 0 ? el('ul', { class: 'plain' }, ...conditions) : null);
}

function row(policy) {
  const remove = el('button', {
    type: 'button', class: 'danger', text: 'Delete', disabled: !state.writable,
    'aria-label': `Delete trust policy ${policy.name}`, 'data-action': 'delete', 'data-id': policy.id,
  });
  remove.addEventListener('click', () => askDelete(policy, remove));
  return el('tr', { 'data-policy-id': policy.id },
    cell('Name', el('span', { class: 'token-name', text: policy.name })),
    cell('Trusts', trusts(policy)),
    cell('Grants', grantList(policy.grants, state.sets)),
    cell('Lifetime', el('span', { text: `${Math.round(policy.maxLifetimeSeconds / 60)} min` })),
    cell('Active tokens', el('span', { text: String(policy.activeTokens.length) })),
    cell('Actions', el('div', { class: 'actions' }, remove)));
}

function show() {
  $('policy-rows').replaceChildren(...state.policies.map(row));
  $('policy-table').hidden = state.policies.length === 0;
  $('empty-list').hidden = state.policies.length > 0 || state.session === null;
  $('trust-read-only').hidden = state.writable || state.session === null;
  $('github-form').hidden = !state.writable;
  const select = $('gh-set');
  if (select.options.length === 0) {
    select.append(el('option', { value: '', text: 'Choose a permission set' }));
    for (const set of state.sets.filter((s) => s.availableOnPlan)) {
      select.append(el('option', { value: set.key, text: set.name }));
    }
  }
}

function text(id, label, { required = true } = {}) {
  const value = $(id).value.trim();
  if (required && value === '') throw new FormProblem(`${label}: give a value.`);
  return value === '' ? null : value;
}

function chosenSet() {
  const key = $('gh-set').value;
  if (key === '') throw new FormProblem('Permission set: choose the one the exchanged tokens carry.');
  return key;
}

async function create(event) {
  event.preventDefault();
  $('github-error').textContent = '';
  let input;
  try {
    const minutes = Number($('gh-lifetime').value.trim());
    if (!Number.isInteger(minutes)) throw new FormProblem('Lifetime: give a whole number of minutes, 1 to 60.');
    input = {
      name: text('gh-name', 'Name'),
      audience: text('gh-audience', 'Audience'),
      github: {
        repository: text('gh-repository', 'Repository'),
        repositoryOwnerId: text('gh-owner-id', "Owner's numeric id"),
        ref: text('gh-ref', 'Ref', { required: false }),
        environment: text('gh-environment', 'Environment', { required: false }),
      },
      grants: [{ permissionSet: chosenSet(), allProjects: true }],
      maxLifetimeSeconds: minutes * 60,
    };
  } catch (problem) {
    if (!(problem instanceof FormProblem)) throw problem;
    $('github-error').textContent = problem.message;
    return;
  }
  const form = $('github-form');
  busy(form, true);
  try {
    const made = (await state.session.call(CREATE, { input })).createTrustPolicy;
    busy(form, false);
    form.reset();
    await load();
    announce(`Trust policy ${made.name} created.`);
  } catch (problem) {
    busy(form, false);
    $('github-error').textContent = describeError(problem, { doing: 'creating', ...WHAT });
  }
}

function askDelete(policy, opener) {
  state.deleting = policy;
  $('delete-which').textContent = `Delete the trust policy ${policy.name}?`;
  $('delete-error').textContent = '';
  openDialog($('delete-dialog'), opener);
}

async function confirmDelete() {
  const policy = state.deleting;
  if (policy === null) return;
  try {
    await state.session.call(DELETE, { id: policy.id });
    $('delete-dialog').close();
    await load();
    announce(`Trust policy ${policy.name} deleted; its exchanged tokens no longer work.`);
  } catch (problem) {
    $('delete-error').textContent = describeError(problem, { doing: 'deleting', ...WHAT });
  }
}

wireDialog($('delete-dialog'), { onClose: () => { state.deleting = null; }, fallback: () => $('trust-title') });
$('delete-confirm').addEventListener('click', confirmDelete);
$('github-form').addEventListener('submit', create);
startSettingsPage({ start, stop });

// Account settings → Service tokens: list (filtered, in pages, each token with its requests of the last 30
// days drawn as a sparkline), create, rotate, edit and delete service tokens over the public GraphQL API
// (sign-in and session: shell.js). A new secret lives in the one-time dialog only (secret-dialog.js), and is
// wiped from it when the dialog closes.
import { ApiError, describeError } from './api.js';
import { runInDialog } from './dialog-action.js';
import {
  $, FormProblem, announce, busy, cell, dateFormat, el, openDialog, pageAlert, timeElement, trashIcon, wireDialog,
} from './dom.js';
import { grantKey, grantList, readGrants, renderGrantEditor } from './grants.js';
import { showSecret, wireSecretDialog } from './secret-dialog.js';
import { planName, startSettingsPage } from './shell.js';
import { usageSparkline } from './sparkline.js';

const CATALOG_QUERY = `query SettingsCatalog {
  permissionSets { key name level availableOnPlan }
  account { projects { id name } }
}`;
const PAGE_SIZE = 25;  // a page with 30 days of usage per token stays well inside the cost budget
const USAGE_DAYS = 30;
const EXPIRING_DAYS = 30;  // "expiring soon"
const TOKENS_QUERY = `query SettingsServiceTokens($first: Int!, $after: String, $filter: ServiceTokenFilter) {
  account { serviceTokenConnection(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      id name displayPrefix format state createdAt lastUsedAt expiresAt rotationRecommended
      grants { permissionSet allProjects projects { id name } }
      usage(days: ${USAGE_DAYS}) { day count }
    } }
  } }
}`;
const CREATE_MUTATION = `mutation SettingsCreateToken($input: CreateServiceTokenInput!) {
  createServiceToken(input: $input) { secret serviceToken { id name displayPrefix } }
}`;
const ROTATE_MUTATION = `mutation SettingsRotateToken($id: ID!, $revokeOldInSeconds: Int) {
  rotateServiceToken(id: $id, revokeOldInSeconds: $revokeOldInSeconds) { secret serviceToken { id name displayPrefix } }
}`;
const UPDATE_MUTATION = `mutation SettingsUpdateToken($id: ID!, $name: String, $grants: [GrantInput!]) {
  updateServiceToken(id: $id, name: $name, grants: $grants) { id name }
}`;
const DELETE_MUTATION = `mutation SettingsDeleteToken($id: ID!) {
  deleteServiceToken(id: $id) { id name state }
}`;

const state = {
  session: null,
  account: null,
  permissionSets: [],
  projects: [],
  tokens: [],
  filter: null,  // as the API takes it (null: its default, active and expired tokens)
  cursors: [null],  // `after` of each page up to the one shown
  page: null,  // { totalCount, hasNextPage, endCursor } of the page shown
};

// ---------------------------------------------------------------- API calls (also used by the forms)

// Answers of the list by filter and page, for a minute: toggling a filter back shows what was already
// answered instead of asking again. Any change (every mutation goes through call) forgets them all.
const ANSWER_SECONDS = 60;
const answered = new Map();  // key → { data, at }

function answerKey(variables) {
  const filter = variables.filter && { ...variables.filter, expiringBefore: variables.filter.expiringBefore ? 'soon' : null };
  return JSON.stringify({ after: variables.after, filter });
}

function call(query, variables) {
  if (/^\s*mutation\b/.test(query)) answered.clear();
  return state.session.call(query, variables);
}

async function createToken(input) {
  const data = await call(CREATE_MUTATION, { input });
  return data.createServiceToken;
}

async function rotateToken(id, revokeOldInSeconds) {
  const data = await call(ROTATE_MUTATION, { id, revokeOldInSeconds });
  return data.rotateServiceToken;
}

async function updateToken(id, changes) {
  const data = await call(UPDATE_MUTATION, { id, name: changes.name ?? null, grants: changes.grants ?? null });
  return data.updateServiceToken;
}

async function deleteToken(id) {
  const data = await call(DELETE_MUTATION, { id });
  return data.deleteServiceToken;
}

// ---------------------------------------------------------------- the session (shell.js signs in and out)

async function start(session) {
  state.session = session;
  state.account = session.viewer.account;
  await Promise.all([loadCatalog(), loadTokens()]);
  renderTokens();  // again, with the catalog's set names and levels whichever answer came first
}

function stop() {
  latestLoad += 1;  // a load still under way shows nothing once signed out
  Object.assign(state, { session: null, account: null, tokens: [], filter: null, cursors: [null], page: null });
  answered.clear();
  $('token-filter').reset();
  $('token-rows').replaceChildren();
  $('match-line').textContent = '';
  pageAlert('');
  announce('');
}

async function loadCatalog() {
  try {
    const data = await call(CATALOG_QUERY);
    state.permissionSets = data.permissionSets;
    state.projects = data.account.projects;
  } catch (error) {
    pageAlert(describeError(error, { doing: 'viewing' }));
  }
}

// ---------------------------------------------------------------- the list

let latestLoad = 0;

// The page shown again (after a change), or the page `cursors` leads to. Filters changed quickly start loads
// that overlap, and their answers may come back in any order: only the latest load is shown (and ends busy);
// false when this one was not.
// `reuse`: an answer to the same filter and page from the last minute will do (a filter toggled back).
async function loadTokens(cursors = state.cursors, { reuse = false } = {}) {
  const load = ++latestLoad;
  $('tokens-view').setAttribute('aria-busy', 'true');
  try {
    const variables = { first: PAGE_SIZE, after: cursors[cursors.length - 1], filter: state.filter };
    const key = answerKey(variables);
    const kept = reuse && answered.get(key);
    const data = kept && Date.now() - kept.at < ANSWER_SECONDS * 1000 ? kept.data : await call(TOKENS_QUERY, variables);
    if (data !== (kept && kept.data)) answered.set(key, { data, at: Date.now() });
    if (load !== latestLoad) return false;
    const connection = data.account.serviceTokenConnection;
    state.tokens = connection.edges.map((edge) => edge.node);
    state.page = { totalCount: connection.totalCount, ...connection.pageInfo };
    state.cursors = cursors;
    pageAlert('');
  } catch (error) {
    if (load !== latestLoad) return false;
    if (error instanceof ApiError && error.code === 'BAD_USER_INPUT' && cursors.length > 1) {
      return loadTokens([null]);  // the token a page starts after is gone: start again from the first page
    }
    state.tokens = [];
    state.page = null;
    pageAlert(describeError(error, { doing: 'viewing' }));
  }
  renderTokens();
  return true;
}

const STATE_LABELS = { ACTIVE: 'Active', EXPIRED: 'Expired', DELETED: 'Deleted' };

function tokenRow(token) {
  const nameCell = cell('Name', el('span', { class: 'token-name', text: token.name }));
  if (token.rotationRecommended && token.state !== 'DELETED') {
    nameCell.firstChild.append(
      el('span', {
        class: 'badge badge-warn',
        text: 'Rotation recommended',
        title: 'Created on or before 18 July 2023 in the old format, which validates slowly',
      }),
      el('button', {
        type: 'button',
        class: 'link',
        'data-action': 'rotate',
        'data-id': token.id,
        'aria-label': `Rotate now: ${token.name} (created on or before 18 July 2023)`,  // the visible words first (WCAG 2.5.3)
        text: 'Rotate now',
      }),
    );
  }
  const stateCell = cell('State', el('span', { class: `state state-${token.state.toLowerCase()}`, text: STATE_LABELS[token.state] || token.state }));
  if (token.expiresAt && token.state === 'ACTIVE') {
    stateCell.firstChild.append(el('span', { class: 'muted block' }, 'expires ', timeElement(token.expiresAt, '')));
  }
  const actions = cell('Actions', token.state === 'DELETED' ? null : el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'secondary small', 'data-action': 'edit', 'data-id': token.id, 'aria-label': `Edit ${token.name}`, text: 'Edit' }),
      el('button', { type: 'button', class: 'secondary small', 'data-action': 'rotate', 'data-id': token.id, 'aria-label': `Rotate ${token.name}`, text: 'Rotate' }),
      el('button', { type: 'button', class: 'icon danger-outline', 'data-action': 'delete', 'data-id': token.id, 'aria-label': `Delete ${token.name}`, title: 'Delete' }, trashIcon()),
  ));
  return el('tr', { 'data-token-id': token.id, class: token.state === 'DELETED' ? 'deleted' : null },
    nameCell,
    cell('Token', el('code', { text: token.displayPrefix }), el('span', { class: 'muted small-text', text: token.format === 'LEGACY' ? ' legacy' : '' })),
    cell('Created', timeElement(token.createdAt, '')),
    cell('Last used', timeElement(token.lastUsedAt, 'Never')),
    stateCell,
    cell('Permissions', grantList(token.grants, state.permissionSets)),
    cell(`Requests, ${USAGE_DAYS} days`, usageSparkline(token.usage)),
    actions,
  );
}

function renderTokens() {
  const rows = $('token-rows');
  rows.replaceChildren(...state.tokens.map(tokenRow));
  $('token-table').hidden = state.tokens.length === 0;
  const filtered = state.filter !== null;
  $('empty-list').hidden = state.tokens.length !== 0 || state.page === null || filtered;
  $('empty-filtered').hidden = state.tokens.length !== 0 || state.page === null || !filtered;
  const index = state.cursors.length - 1;
  $('previous-page').disabled = index === 0;
  $('next-page').disabled = !(state.page && state.page.hasNextPage);
  $('token-pager').hidden = !state.page || (index === 0 && !state.page.hasNextPage);
  $('page-number').textContent = state.page ? `Page ${index + 1} of ${Math.max(1, Math.ceil(state.page.totalCount / PAGE_SIZE))}` : '';
  const total = state.page ? state.page.totalCount : 0;
  $('match-line').textContent = state.page === null ? ''
    : `${total} ${total === 1 ? 'token' : 'tokens'}${filtered ? ` ${total === 1 ? 'matches' : 'match'} the filter` : ', active and expired'}.`;
  $('tokens-view').removeAttribute('aria-busy');
}

// ---------------------------------------------------------------- the filter

function readFilter() {
  const states = [...$('token-filter').querySelectorAll('input[name="state"]:checked')].map((box) => box.value);
  if (states.length === 0) throw new FormProblem('Choose at least one state.');
  const expiring = $('filter-expiring').checked;
  // An expired or deleted token has an expiry before the bound too, but it is not "expiring": active ones only.
  if (expiring && !states.includes('ACTIVE')) {
    throw new FormProblem('“Expiring soon” lists active tokens: check Active as well.');
  }
  const filter = {
    states: expiring ? ['ACTIVE'] : states,
    format: $('filter-legacy').checked ? 'LEGACY' : null,
    rotationRecommended: $('filter-rotation').checked ? true : null,
    expiringBefore: expiring ? new Date(Date.now() + EXPIRING_DAYS * 86_400_000).toISOString() : null,
  };
  const plain = states.length === 2 && states.includes('ACTIVE') && states.includes('EXPIRED')
    && filter.format === null && filter.rotationRecommended === null && filter.expiringBefore === null;
  return plain ? null : filter;
}

async function applyFilter() {
  $('filter-error').textContent = '';
  try {
    state.filter = readFilter();
  } catch (problem) {
    if (!(problem instanceof FormProblem)) throw problem;
    $('filter-error').textContent = problem.message;
    return;
  }
  if ((await loadTokens([null], { reuse: true })) && state.page) announce($('match-line').textContent);
}

function tokenById(id) {
  return state.tokens.find((token) => token.id === id);
}

// ---------------------------------------------------------------- the one-time secret

function showTokenSecret(title, created, opener, note = '') {
  showSecret({
    title, opener, note,
    subject: `Service token “${created.serviceToken.name}” (${created.serviceToken.displayPrefix})`,
    secret: created.secret,
  });
}

// ---------------------------------------------------------------- the grant editor

const editor = { mode: 'create', token: null, originalGrants: '[]' };

// What the plan allows on service tokens (the server's availableOnPlan); sets it does not are listed apart.
function planOffer(set, granted) {
  const plan = planName(state.account.plan);
  const level = set.level === 'ACCOUNT' ? 'Account level' : 'Project level';
  let note = level;
  if (!set.availableOnPlan) {
    note = granted
      ? `${level} · Not available on the ${plan} plan: remove it, or saving changed permissions will be refused`
      : `${level} · Not available on the ${plan} plan`;
  }
  return { available: set.availableOnPlan, note };
}

function showGrantEditor(grants) {
  const plan = planName(state.account.plan);
  renderGrantEditor($('grant-editor'), {
    sets: state.permissionSets, projects: state.projects, grants, idPrefix: `grant-${editor.mode}`,
    offer: planOffer, unavailableTitle: (count) => `Not available on the ${plan} plan (${count})`,
  });
  const available = state.permissionSets.filter((set) => set.availableOnPlan).length;
  $('plan-note').textContent = `The ${plan} plan allows ${available} of ${state.permissionSets.length} `
    + 'permission sets on service tokens. Project-level sets can cover all projects or chosen ones.';
}

function openTokenForm(mode, token, opener) {
  editor.mode = mode;
  editor.token = token;
  editor.originalGrants = grantKey(token ? token.grants : []);
  const form = $('token-form');
  form.reset();
  $('token-form-error').textContent = '';
  $('token-dialog-title').textContent = mode === 'create' ? 'New service token' : `Edit “${token.name}”`;
  $('token-submit').textContent = mode === 'create' ? 'Create token' : 'Save changes';
  $('token-name').value = token ? token.name : '';
  $('expiry-field').hidden = mode !== 'create';
  $('token-expiry').min = localInputValue(new Date());
  showGrantEditor(token ? token.grants : []);
  openDialog($('token-dialog'), opener);
  $('token-name').focus();
}

function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function readTokenForm() {
  const name = $('token-name').value.trim();
  if (name.length === 0) throw new FormProblem('Give the token a name.');
  if (name.length > 255) throw new FormProblem('The name can be at most 255 characters.');
  const grants = readGrants($('grant-editor'), state.permissionSets);
  let expiresAt = null;
  const expiry = $('token-expiry').value;
  if (editor.mode === 'create' && expiry) {
    const when = new Date(expiry);
    if (Number.isNaN(when.getTime())) throw new FormProblem('The expiry is not a valid date and time.');
    if (when <= new Date()) throw new FormProblem('Choose an expiry in the future, or leave it empty.');
    expiresAt = when.toISOString();
  }
  return { name, grants, expiresAt };
}

// The form's submit, and the page's one path to the API for creating and editing: an error from the
// server (BAD_USER_INPUT, PLAN_RESTRICTED, FORBIDDEN, …) is shown next to the form.
async function submitTokenForm(values) {
  const form = $('token-form');
  const error = $('token-form-error');
  error.textContent = '';
  busy(form, true);
  try {
    if (editor.mode === 'create') {
      const created = await createToken({ name: values.name, grants: values.grants, expiresAt: values.expiresAt });
      const opener = $('token-dialog').returnFocusTo;
      $('token-dialog').returnFocusTo = null;
      $('token-dialog').close();
      showTokenSecret('Token created', created, opener);
      announce(`Token “${created.serviceToken.name}” created.`);
    } else {
      const changes = {};
      if (values.name !== editor.token.name) changes.name = values.name;
      if (grantKey(values.grants) !== editor.originalGrants) changes.grants = values.grants;
      if (Object.keys(changes).length > 0) {
        await updateToken(editor.token.id, changes);
        announce(`Token “${values.name}” saved.`);
      }
      $('token-dialog').close();
    }
    await loadTokens();
    return true;
  } catch (problem) {
    error.textContent = describeError(problem);
    if (problem instanceof ApiError && problem.code === 'NOT_FOUND') await loadTokens();
    return false;
  } finally {
    busy(form, false);
  }
}

// ---------------------------------------------------------------- rotate and delete

let rotating = null;
let deleting = null;

function openRotate(token, opener) {
  rotating = token;
  $('rotate-form').reset();
  $('rotate-error').textContent = '';
  $('rotate-title').textContent = `Rotate “${token.name}”`;
  openDialog($('rotate-dialog'), opener);
  $('rotate-keep').focus();
}

const KEEP_NOTES = {
  '': 'The old token keeps working until you delete it: install the new one everywhere, then delete the old one with its trash icon.',
  '3600': 'The old token stops working in 1 hour.',
  '86400': 'The old token stops working in 1 day.',
  '604800': 'The old token stops working in 7 days.',
  '0': 'The old token has stopped working.',
};

async function submitRotate(event) {
  event.preventDefault();
  const form = $('rotate-form');
  const keep = $('rotate-keep').value;
  $('rotate-error').textContent = '';
  busy(form, true);
  try {
    const created = await rotateToken(rotating.id, keep === '' ? null : Number(keep));
    const dialog = $('rotate-dialog');
    const opener = dialog.returnFocusTo;
    dialog.returnFocusTo = null;
    dialog.close();
    showTokenSecret('Token rotated', created, opener, KEEP_NOTES[keep]);
    announce(`Token “${created.serviceToken.name}” rotated.`);
    await loadTokens();
  } catch (problem) {
    $('rotate-error').textContent = describeError(problem);
    if (problem instanceof ApiError && problem.code === 'NOT_FOUND') await loadTokens();
  } finally {
    busy(form, false);
  }
}

function openDelete(token, opener) {
  deleting = token;
  $('delete-title').textContent = `Delete “${token.name}”?`;
  // Names can repeat (a rotation keeps the name): the prefix and creation time say which one.
  $('delete-which').textContent = `Service token “${token.name}” (${token.displayPrefix}), created ${dateFormat.format(new Date(token.createdAt))}.`;
  $('delete-error').textContent = '';
  $('delete-confirm').textContent = 'Delete token';
  openDialog($('delete-dialog'), opener);
  $('delete-cancel').focus();  // the safe choice first
}

async function confirmDelete() {
  const dialog = $('delete-dialog');
  await runInDialog(dialog, $('delete-error'), async () => {
    const deleted = await deleteToken(deleting.id);
    dialog.returnFocusTo = $('new-token');
    dialog.close();
    announce(`Token “${deleted.name}” deleted.`);
    await loadTokens();
  }, { reload: () => loadTokens() });
}

// ---------------------------------------------------------------- wiring

function wire() {
  const backToList = { fallback: () => $('new-token') };
  wireDialog($('token-dialog'), backToList);
  wireDialog($('rotate-dialog'), { ...backToList, onClose: () => { rotating = null; } });
  wireSecretDialog(backToList);
  wireDialog($('delete-dialog'), { ...backToList, onClose: () => { deleting = null; } });

  $('new-token').addEventListener('click', (event) => openTokenForm('create', null, event.currentTarget));
  $('token-filter').addEventListener('change', applyFilter);
  $('token-filter').addEventListener('submit', (event) => { event.preventDefault(); applyFilter(); });
  $('next-page').addEventListener('click', async () => {
    if (!state.page || !state.page.hasNextPage) return;
    await loadTokens([...state.cursors, state.page.endCursor]);
    ($('next-page').disabled ? $('previous-page') : $('next-page')).focus();
  });
  $('previous-page').addEventListener('click', async () => {
    if (state.cursors.length < 2) return;
    await loadTokens(state.cursors.slice(0, -1));
    ($('previous-page').disabled ? $('next-page') : $('previous-page')).focus();
  });
  $('token-rows').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const token = tokenById(button.dataset.id);
    if (!token) return;
    if (button.dataset.action === 'edit') openTokenForm('edit', token, button);
    else if (button.dataset.action === 'rotate') openRotate(token, button);
    else if (button.dataset.action === 'delete') openDelete(token, button);
  });
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    let values;
    try {
      values = readTokenForm();
    } catch (problem) {
      if (!(problem instanceof FormProblem)) throw problem;
      $('token-form-error').textContent = problem.message;
      return;
    }
    submitTokenForm(values);
  });
  $('rotate-form').addEventListener('submit', submitRotate);
  $('delete-confirm').addEventListener('click', confirmDelete);
}

wire();
startSettingsPage({ start, stop });

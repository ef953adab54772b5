// Account settings → Service Tokens: list, create, rotate, edit and delete service tokens over the
// public GraphQL API (sign-in and session: shell.js). A new secret lives in the one-time dialog only,
// and is wiped from it when the dialog closes.
import { ApiError, describeError } from './api.js';
import {
  $, FormProblem, announce, busy, dateFormat, el, openDialog, pageAlert, timeElement, wireDialog,
} from './dom.js';
import { planName, startSettingsPage } from './shell.js';

const CATALOG_QUERY = `query SettingsCatalog {
  permissionSets { key name level availableOnPlan }
  account { projects { id name } }
}`;
const TOKENS_QUERY = `query SettingsServiceTokens($includeDeleted: Boolean!) {
  account { serviceTokens(includeDeleted: $includeDeleted) {
    id name displayPrefix format state createdAt lastUsedAt expiresAt rotationRecommended
    grants { permissionSet allProjects projects { id name } }
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
  includeDeleted: false,
};

// ---------------------------------------------------------------- API calls (also used by the forms)

function call(query, variables) {
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
  state.session = null;
  state.account = null;
  state.tokens = [];
  $('token-rows').replaceChildren();
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

async function loadTokens() {
  try {
    const data = await call(TOKENS_QUERY, { includeDeleted: state.includeDeleted });
    state.tokens = data.account.serviceTokens;
    pageAlert('');
  } catch (error) {
    state.tokens = [];
    pageAlert(describeError(error, { doing: 'viewing' }));
  }
  renderTokens();
}

function setName(key) {
  const found = state.permissionSets.find((set) => set.key === key);
  return found ? found.name : key;
}

function grantList(grants) {
  if (grants.length === 0) return el('span', { class: 'muted', text: 'None' });
  const list = el('ul', { class: 'grants' });
  for (const grant of grants) {
    const scope = grant.allProjects
      ? (levelOf(grant.permissionSet) === 'ACCOUNT' ? 'account' : 'all projects')
      : grant.projects.map((project) => project.name).join(', ');
    list.append(el('li', {}, el('span', { class: 'set', text: setName(grant.permissionSet) }), ` · ${scope}`));
  }
  return list;
}

function levelOf(key) {
  const found = state.permissionSets.find((set) => set.key === key);
  return found ? found.level : 'PROJECT';
}

const STATE_LABELS = { ACTIVE: 'Active', EXPIRED: 'Expired', DELETED: 'Deleted' };

function trashIcon() {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '18');
  svg.setAttribute('height', '18');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', 'M9 3h6l1 2h4v2H4V5h4l1-2zm-3 6h12l-1 12H7L6 9zm4 2v8h2v-8h-2zm4 0v8h2v-8h-2z');
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}

// One wrapper per cell, so that narrow screens can lay out "label | content" as two columns.
function cell(label, ...children) {
  const content = children.filter((child) => child !== null && child !== undefined);
  return el('td', { 'data-label': label }, content.length > 0 ? el('div', { class: 'cell' }, ...content) : null);
}

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
        'aria-label': `Rotate ${token.name} now (created on or before 18 July 2023)`,
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
    cell('Permissions', grantList(token.grants)),
    actions,
  );
}

function renderTokens() {
  const rows = $('token-rows');
  rows.replaceChildren(...state.tokens.map(tokenRow));
  $('token-table').hidden = state.tokens.length === 0;
  $('empty-list').hidden = state.tokens.length !== 0 || !$('page-alert').hidden;
}

function tokenById(id) {
  return state.tokens.find((token) => token.id === id);
}

// ---------------------------------------------------------------- the one-time secret

let currentSecret = null;

function showSecret(title, created, opener, oldNote = '') {
  currentSecret = created.secret;
  $('secret-title').textContent = title;
  $('secret-for').textContent = `Service token “${created.serviceToken.name}” (${created.serviceToken.displayPrefix})`;
  $('secret-value').value = currentSecret;
  $('copy-status').textContent = '';
  $('secret-old-note').textContent = oldNote;
  const dialog = $('secret-dialog');
  openDialog(dialog, opener);
  $('copy-secret').focus();
}

function forgetSecret() {
  currentSecret = null;
  $('secret-value').value = '';
  $('copy-status').textContent = '';
}

async function copySecret() {
  if (currentSecret === null) return;
  try {
    await navigator.clipboard.writeText(currentSecret);
    $('copy-status').textContent = 'Copied to the clipboard.';
  } catch {
    const field = $('secret-value');
    field.focus();
    field.select();
    $('copy-status').textContent = 'Copying was not allowed here: the token is selected, press Ctrl+C (⌘C) to copy it.';
  }
}

// ---------------------------------------------------------------- the grant editor

const editor = { mode: 'create', token: null, originalGrants: '[]' };

function grantKey(grants) {
  const normalised = grants
    .map((grant) => ({
      permissionSet: grant.permissionSet,
      allProjects: grant.allProjects,
      projectIds: [...(grant.projectIds || (grant.projects || []).map((project) => project.id))].sort(),
    }))
    .sort((a, b) => a.permissionSet.localeCompare(b.permissionSet));
  return JSON.stringify(normalised);
}

function grantOption(set, granted, idPrefix) {
  const plan = planName(state.account.plan);
  const id = `${idPrefix}-${set.key}`;
  const level = set.level === 'ACCOUNT' ? 'Account level' : 'Project level';
  let note = level;
  if (!set.availableOnPlan) {
    note = granted
      ? `${level} · Not available on the ${plan} plan: remove it, or saving changed permissions will be refused`
      : `${level} · Not available on the ${plan} plan`;
  }
  const checkbox = el('input', {
    type: 'checkbox', id, value: set.key, 'data-set': set.key, 'aria-describedby': `${id}-note`,
    checked: Boolean(granted), disabled: !set.availableOnPlan && !granted,
  });
  const wrapper = el('div', { class: `grant-option${set.availableOnPlan ? '' : ' unavailable'}` },
    el('div', { class: 'check' }, checkbox,
      el('label', { for: id, text: set.name }),
      el('span', { id: `${id}-note`, class: 'hint', text: note })),
  );
  if (set.level !== 'ACCOUNT') {
    const chosen = granted && !granted.allProjects ? new Set(granted.projects.map((project) => project.id)) : new Set();
    const scopeName = `${id}-scope`;
    const projectBoxes = state.projects.length === 0
      ? [el('p', { class: 'hint', text: 'This account has no projects yet.' })]
      : state.projects.map((project) => el('div', { class: 'check' },
        el('input', { type: 'checkbox', id: `${id}-p-${project.id}`, value: project.id, 'data-project': '1', checked: chosen.has(project.id) }),
        el('label', { for: `${id}-p-${project.id}`, text: project.name })));
    const choices = el('fieldset', { class: 'project-choices', hidden: chosen.size === 0 },
      el('legend', { class: 'visually-hidden', text: `Projects for ${set.name}` }), ...projectBoxes);
    const allRadio = el('input', { type: 'radio', name: scopeName, id: `${scopeName}-all`, value: 'all', checked: chosen.size === 0 });
    const chosenRadio = el('input', { type: 'radio', name: scopeName, id: `${scopeName}-chosen`, value: 'chosen', checked: chosen.size > 0 });
    const scope = el('fieldset', { class: 'scope', hidden: !granted },
      el('legend', { text: `Projects for ${set.name}` }),
      el('div', { class: 'check' }, allRadio, el('label', { for: allRadio.id, text: 'All projects' })),
      el('div', { class: 'check' }, chosenRadio, el('label', { for: chosenRadio.id, text: 'Chosen projects' })),
      choices,
    );
    allRadio.addEventListener('change', () => { choices.hidden = true; });
    chosenRadio.addEventListener('change', () => { choices.hidden = false; });
    checkbox.addEventListener('change', () => { scope.hidden = !checkbox.checked; });
    wrapper.append(scope);
  }
  return wrapper;
}

function renderGrantEditor(grants) {
  const byKey = new Map(grants.map((grant) => [grant.permissionSet, grant]));
  const idPrefix = `grant-${editor.mode}`;
  const offered = state.permissionSets.filter((set) => set.availableOnPlan || byKey.has(set.key));
  const refused = state.permissionSets.filter((set) => !set.availableOnPlan && !byKey.has(set.key));
  const container = $('grant-editor');
  container.replaceChildren(...offered.map((set) => grantOption(set, byKey.get(set.key), idPrefix)));
  if (refused.length > 0) {
    const plan = planName(state.account.plan);
    container.append(el('details', { class: 'unavailable-sets' },
      el('summary', { text: `Not available on the ${plan} plan (${refused.length})` }),
      ...refused.map((set) => grantOption(set, null, idPrefix))));
  }
  const available = state.permissionSets.filter((set) => set.availableOnPlan).length;
  $('plan-note').textContent = `The ${planName(state.account.plan)} plan allows ${available} of ${state.permissionSets.length} `
    + 'permission sets on service tokens. Project-level sets can cover all projects or chosen ones.';
}

function readGrants() {
  const grants = [];
  for (const option of $('grant-editor').querySelectorAll('.grant-option')) {
    const box = option.querySelector('input[data-set]');
    if (!box.checked) continue;
    const set = state.permissionSets.find((candidate) => candidate.key === box.value);
    if (set.level === 'ACCOUNT') {
      grants.push({ permissionSet: set.key, allProjects: true, projectIds: [] });
      continue;
    }
    const all = option.querySelector('input[type="radio"][value="all"]').checked;
    const projectIds = [...option.querySelectorAll('input[data-project]:checked')].map((input) => input.value);
    if (!all && projectIds.length === 0) {
      throw new FormProblem(`Choose at least one project for ${set.name}, or choose All projects.`);
    }
    grants.push({ permissionSet: set.key, allProjects: all, projectIds: all ? [] : projectIds });
  }
  if (grants.length === 0) throw new FormProblem('Choose at least one permission set.');
  return grants;
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
  renderGrantEditor(token ? token.grants : []);
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
  const grants = readGrants();
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
      showSecret('Token created', created, opener);
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
    showSecret('Token rotated', created, opener, KEEP_NOTES[keep]);
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
  busy(dialog, true);
  try {
    const deleted = await deleteToken(deleting.id);
    dialog.returnFocusTo = $('new-token');
    dialog.close();
    announce(`Token “${deleted.name}” deleted.`);
    await loadTokens();
  } catch (problem) {
    $('delete-error').textContent = describeError(problem);
    if (problem instanceof ApiError && problem.code === 'NOT_FOUND') await loadTokens();
  } finally {
    busy(dialog, false);
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  const backToList = { fallback: () => $('new-token') };
  wireDialog($('token-dialog'), backToList);
  wireDialog($('rotate-dialog'), { ...backToList, onClose: () => { rotating = null; } });
  wireDialog($('secret-dialog'), { ...backToList, onClose: forgetSecret });
  wireDialog($('delete-dialog'), { ...backToList, onClose: () => { deleting = null; } });

  $('new-token').addEventListener('click', (event) => openTokenForm('create', null, event.currentTarget));
  $('include-deleted').addEventListener('change', (event) => {
    state.includeDeleted = event.currentTarget.checked;
    loadTokens();
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
  $('copy-secret').addEventListener('click', copySecret);
  $('delete-confirm').addEventListener('click', confirmDelete);
}

wire();
startSettingsPage({ start, stop });

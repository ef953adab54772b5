// Account settings → Members: the account's users with license, state and grants (memberConnection, in pages),
// invite (createUser), edit license and grants (updateUser) and deactivate (deactivateUser). The forms offer
// only what the server says the caller may give (givablePermissionSets: the no-escalation rule, computed by
// the server for all projects and for each project); the others are disabled with the server's reason, and
// whatever the server still refuses is shown in its words. Each row offers Edit and Deactivate only when the
// server says the caller may (viewerMayEdit, viewerMayDeactivate: its own rule, asked ahead), else its reason.
import { ApiError, describeError, sentence } from './api.js';
import { runInDialog } from './dialog-action.js';
import {
  $, FormProblem, announce, busy, cell, el, openDialog, pageAlert, wireDialog,
} from './dom.js';
import { grantKey, grantList, readGrants, renderGrantEditor } from './grants.js';
import { startSettingsPage } from './shell.js';

const PAGE_SIZE = 50;
const SCOPES_PER_REQUEST = 20;  // per-project answers asked in one request (aliases), well inside the cost budget
const CATALOG_QUERY = `query SettingsMembersCatalog {
  permissionSets { key name level }
  account { projects { id name } }
  viewer { user { id } }
  checks(requests: [{ resource: MEMBERS, access: WRITE }, { resource: LICENSES, access: WRITE }]) { allowed reason }
}`;
const MEMBERS_QUERY = `query SettingsMembers($first: Int!, $after: String) {
  account { memberConnection(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      id email license state grants { permissionSet allProjects projects { id name } }
      viewerMayEdit { allowed reason } viewerMayDeactivate { allowed reason }
    } }
  } }
}`;
const CREATE_MUTATION = `mutation SettingsCreateUser($email: String!, $license: License!, $grants: [GrantInput!]!) {
  createUser(email: $email, license: $license, grants: $grants) { id email }
}`;
const UPDATE_MUTATION = `mutation SettingsUpdateUser($id: ID!, $license: License, $grants: [GrantInput!]) {
  updateUser(id: $id, license: $license, grants: $grants) { id email }
}`;
const DEACTIVATE_MUTATION = `mutation SettingsDeactivateUser($id: ID!) {
  deactivateUser(id: $id) { id email state }
}`;
const TOKENS_OF_QUERY = `query SettingsMemberTokens($id: ID!) {
  node(id: $id) { ... on User { tokens { state } } }
}`;
const LICENSES = {
  DEVELOPER: { name: 'Developer', meaning: 'Everything their permission sets give.' },
  READ_ONLY: { name: 'Read only', meaning: 'Read access at most, to projects only: no account settings.' },
  IT: { name: 'IT', meaning: 'Account settings only (members, billing, security): no access to projects.' },
};
const WHAT = { what: 'members', missing: 'This member no longer exists in the account. The list has been refreshed.' };

const state = {
  session: null,
  selfId: null,
  permissionSets: [],
  projects: [],
  membersWrite: null,  // { allowed, reason } from check
  licensesWrite: null,
  givable: null,  // { everywhere: Map key → answer, byProject: Map project id → Map key → answer }
  members: [],
  totalCount: 0,
  cursors: [null],
  page: null,
  editing: null,  // the member the dialog edits; null when inviting
  deactivating: null,
};

// ---------------------------------------------------------------- the session (shell.js signs in and out)

async function start(session) {
  state.session = session;
  await Promise.all([loadCatalog(), loadMembers([null])]);
  render();
}

function stop() {
  Object.assign(state, {
    session: null, selfId: null, membersWrite: null, licensesWrite: null, givable: null, members: [], cursors: [null], page: null,
  });
  $('member-rows').replaceChildren();
  $('member-count').textContent = '';
  $('members-note').textContent = '';
  pageAlert('');
  announce('');
}

async function loadCatalog() {
  try {
    const data = await state.session.call(CATALOG_QUERY);
    state.permissionSets = data.permissionSets;
    state.projects = data.account.projects;
    state.selfId = data.viewer.user ? data.viewer.user.id : null;
    [state.membersWrite, state.licensesWrite] = data.checks;
    if (state.membersWrite.allowed) state.givable = await loadGivable();
  } catch (error) {
    pageAlert(describeError(error, { doing: 'viewing', ...WHAT }));
  }
}

function answers(list) {
  return new Map(list.map((answer) => [answer.key, answer]));
}

// What the caller may give for all projects and on each project, from the server, in a few requests.
async function loadGivable() {
  const byProject = new Map();
  let everywhere = null;
  for (let from = 0; from === 0 || from < state.projects.length; from += SCOPES_PER_REQUEST) {
    const chunk = state.projects.slice(from, from + SCOPES_PER_REQUEST);
    const fields = chunk.map((_, index) => `p${index}: givablePermissionSets(projectIds: [$p${index}]) { key allowed reason }`);
    const variables = Object.fromEntries(chunk.map((project, index) => [`p${index}`, project.id]));
    const declared = chunk.map((_, index) => `$p${index}: ID!`).join(', ');
    const query = `query SettingsGivable${declared ? `(${declared})` : ''} {
  ${from === 0 ? 'everywhere: givablePermissionSets { key allowed reason }' : ''}
  ${fields.join('\n  ')}
}`;
    const data = await state.session.call(query, variables);
    if (from === 0) everywhere = answers(data.everywhere);
    chunk.forEach((project, index) => byProject.set(project.id, answers(data[`p${index}`])));
  }
  return { everywhere, byProject };
}

// ---------------------------------------------------------------- the list

async function loadMembers(cursors = state.cursors) {
  $('members-view').setAttribute('aria-busy', 'true');
  try {
    const data = await state.session.call(MEMBERS_QUERY, { first: PAGE_SIZE, after: cursors[cursors.length - 1] });
    const connection = data.account.memberConnection;
    state.members = connection.edges.map((edge) => edge.node);
    state.totalCount = connection.totalCount;
    state.page = connection.pageInfo;
    state.cursors = cursors;
    pageAlert('');
  } catch (error) {
    state.members = [];
    state.page = null;
    pageAlert(describeError(error, { doing: 'viewing', ...WHAT }));
  }
  $('members-view').removeAttribute('aria-busy');
}

function memberRow(member) {
  const self = member.id === state.selfId;
  const active = member.state === 'ACTIVE';
  const email = cell('Email', el('span', { class: 'token-name', text: member.email }),
    self ? el('span', { class: 'badge badge-info', text: 'You' }) : null);
  let actions = null;
  if (!self && active && state.membersWrite && state.membersWrite.allowed && state.givable) {
    const edit = member.viewerMayEdit;
    const deactivate = member.viewerMayDeactivate;
    const buttons = [
      edit.allowed ? el('button', { type: 'button', class: 'secondary small', 'data-action': 'edit', 'data-id': member.id, 'aria-label': `Edit ${member.email}`, text: 'Edit' }) : null,
      deactivate.allowed ? el('button', { type: 'button', class: 'danger-outline small', 'data-action': 'deactivate', 'data-id': member.id, 'aria-label': `Deactivate ${member.email}`, text: 'Deactivate' }) : null,
    ].filter(Boolean);
    const refusal = !edit.allowed ? edit.reason : (!deactivate.allowed ? deactivate.reason : '');
    actions = el('div', { class: 'actions' }, ...buttons,
      refusal ? el('span', { class: 'hint', text: `${buttons.length ? 'Cannot deactivate' : 'You cannot change this member'}: ${sentence(refusal)}` }) : null);
  }
  return el('tr', { 'data-member-id': member.id, class: active ? null : 'deleted' },
    email,
    cell('License', (LICENSES[member.license] || { name: member.license }).name),
    cell('State', el('span', { class: `state state-${active ? 'active' : 'deactivated'}`, text: active ? 'Active' : 'Deactivated' })),
    cell('Permissions', grantList(member.grants, state.permissionSets)),
    cell('Actions', actions),
  );
}

function render() {
  $('member-rows').replaceChildren(...state.members.map(memberRow));
  $('member-table').hidden = state.members.length === 0;
  $('member-count').textContent = state.page ? `${state.totalCount} ${state.totalCount === 1 ? 'member' : 'members'}.` : '';
  const index = state.cursors.length - 1;
  $('previous-page').disabled = index === 0;
  $('next-page').disabled = !(state.page && state.page.hasNextPage);
  $('member-pager').hidden = !state.page || (index === 0 && !state.page.hasNextPage);
  $('page-number').textContent = `Page ${index + 1} of ${Math.max(1, Math.ceil(state.totalCount / PAGE_SIZE))}`;
  const invite = $('invite');
  const refusal = whyNot();
  invite.disabled = refusal !== '';
  $('members-note').textContent = refusal;
}

// Why the caller cannot invite (the server's checks), or '' when it can.
function whyNot() {
  if (!state.membersWrite) return 'What you may change could not be loaded: reload the page to try again.';
  if (!state.membersWrite.allowed) return `You can view the members but not change them: ${sentence(state.membersWrite.reason)}`;
  if (!state.givable) return 'What you may give could not be loaded: reload the page to try again.';
  if (!state.licensesWrite.allowed) return `You can change members' permission sets but not invite anyone, which sets a license: ${sentence(state.licensesWrite.reason)}`;
  return '';
}

async function reload() {
  await loadMembers();
  render();
}

// ---------------------------------------------------------------- invite and edit

const REFUSED = { allowed: false, reason: 'tokengate did not say whether you may give it' };

// The server's answer for giving `set` on each scope, as the grant editor shows it.
function giveOffer(set, granted) {
  const level = set.level === 'ACCOUNT' ? 'Account level' : 'Project level';
  const everywhere = state.givable.everywhere.get(set.key) || REFUSED;
  const onProject = (projectId) => {
    const answer = (state.givable.byProject.get(projectId) || new Map()).get(set.key) || REFUSED;
    return { allowed: answer.allowed, note: sentence(answer.reason) };
  };
  const somewhere = set.level !== 'ACCOUNT' && state.projects.some((project) => onProject(project.id).allowed);
  const available = everywhere.allowed || somewhere;
  let note = level;
  if (!available) note = `${level} · ${sentence(everywhere.reason)}`;
  else if (!everywhere.allowed) note = `${level} · You may give it on some projects only.`;
  if (granted && !available) note += ' Remove it, or saving changed permission sets will be refused.';
  return { available, note, everywhere: { allowed: everywhere.allowed, note: sentence(everywhere.reason) }, project: onProject };
}

function showLicenseMeaning() {
  $('member-license-hint').textContent = (LICENSES[$('member-license').value] || { meaning: '' }).meaning
    + (state.licensesWrite.allowed ? '' : ` Changing it needs LICENSES:WRITE, which you do not hold.`);
}

function openMemberForm(member, opener) {
  state.editing = member;
  const form = $('member-form');
  form.reset();
  $('member-form-error').textContent = '';
  $('member-dialog-title').textContent = member ? `Edit ${member.email}` : 'Invite a member';
  $('member-submit').textContent = member ? 'Save changes' : 'Invite member';
  $('email-field').hidden = member !== null;
  $('member-license').value = member ? member.license : 'DEVELOPER';
  $('member-license').disabled = !state.licensesWrite.allowed;
  showLicenseMeaning();
  renderGrantEditor($('grant-editor'), {
    sets: state.permissionSets, projects: state.projects, grants: member ? member.grants : [],
    idPrefix: member ? 'grant-edit' : 'grant-invite', offer: giveOffer,
    unavailableTitle: (count) => `Sets you cannot give (${count})`,
  });
  const givable = state.permissionSets.filter((set) => giveOffer(set, null).available).length;
  $('givable-note').textContent = `You may give ${givable} of ${state.permissionSets.length} permission sets: the ones you`
    + ' hold yourself, on the same projects (an account admin may give any).';
  openDialog($('member-dialog'), opener);
  (member ? $('member-license') : $('member-email')).focus();
}

function readMemberForm() {
  const email = $('member-email').value.trim();
  if (state.editing === null && !email) throw new FormProblem('Give the member’s email address.');
  const grants = readGrants($('grant-editor'), state.permissionSets, { required: false });
  return { email, license: $('member-license').value, grants };
}

async function submitMemberForm(event) {
  event.preventDefault();
  const error = $('member-form-error');
  error.textContent = '';
  let values;
  try {
    values = readMemberForm();
  } catch (problem) {
    if (!(problem instanceof FormProblem)) throw problem;
    error.textContent = problem.message;
    return;
  }
  const form = $('member-form');
  const member = state.editing;
  busy(form, true);
  try {
    if (member === null) {
      const created = (await state.session.call(CREATE_MUTATION, values)).createUser;
      announce(`${created.email} is now a member of the account.`);
    } else {
      const license = values.license !== member.license ? values.license : null;
      const grants = grantKey(values.grants) !== grantKey(member.grants) ? values.grants : null;
      if (license !== null || grants !== null) {
        await state.session.call(UPDATE_MUTATION, { id: member.id, license, grants });
        announce(`${member.email} saved. The change holds from their next request.`);
      }
    }
    $('member-dialog').close();
    await reload();
  } catch (problem) {
    error.textContent = describeError(problem, WHAT);
    if (problem instanceof ApiError && problem.code === 'NOT_FOUND') await reload();
  } finally {
    busy(form, false);
  }
}

// ---------------------------------------------------------------- deactivate

async function openDeactivate(member, opener) {
  state.deactivating = member;
  $('deactivate-title').textContent = `Deactivate ${member.email}?`;
  $('deactivate-error').textContent = '';
  $('deactivate-stops').textContent = 'Every personal token of this member stops working at once, and they cannot sign in again.';
  openDialog($('deactivate-dialog'), opener);
  $('deactivate-cancel').focus();  // the safe choice first
  try {
    const data = await state.session.call(TOKENS_OF_QUERY, { id: member.id });
    const active = data.node && data.node.tokens ? data.node.tokens.filter((token) => token.state === 'ACTIVE').length : null;
    if (active !== null && state.deactivating === member) {
      const tokens = active === 1 ? 'Their 1 active personal token stops' : `Their ${active} active personal tokens stop`;
      $('deactivate-stops').textContent = active === 0
        ? 'They have no active personal token; they cannot sign in again, and no new token can be made for them.'
        : `${tokens} working at once, on every tokengate instance, and they cannot sign in again.`;
    }
  } catch {
    // The general sentence stays: the count is a detail, and the deactivation itself reports its own errors.
  }
}

async function confirmDeactivate() {
  const dialog = $('deactivate-dialog');
  await runInDialog(dialog, $('deactivate-error'), async () => {
    const done = (await state.session.call(DEACTIVATE_MUTATION, { id: state.deactivating.id })).deactivateUser;
    dialog.returnFocusTo = $('invite').disabled ? $('main') : $('invite');
    dialog.close();
    announce(`${done.email} is deactivated: their personal tokens no longer work.`);
    await reload();
  }, { words: WHAT, reload });
}

// ---------------------------------------------------------------- wiring

function wire() {
  const backToList = { fallback: () => ($('invite').disabled ? $('main') : $('invite')) };
  wireDialog($('member-dialog'), { ...backToList, onClose: () => { state.editing = null; } });
  wireDialog($('deactivate-dialog'), { ...backToList, onClose: () => { state.deactivating = null; } });
  $('invite').addEventListener('click', (event) => openMemberForm(null, event.currentTarget));
  $('member-license').addEventListener('change', showLicenseMeaning);
  $('member-form').addEventListener('submit', submitMemberForm);
  $('deactivate-confirm').addEventListener('click', confirmDeactivate);
  $('member-rows').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    const member = button && state.members.find((candidate) => candidate.id === button.dataset.id);
    if (!member) return;
    if (button.dataset.action === 'edit') openMemberForm(member, button);
    else if (button.dataset.action === 'deactivate') openDeactivate(member, button);
  });
  $('next-page').addEventListener('click', async () => {
    if (!state.page || !state.page.hasNextPage) return;
    await loadMembers([...state.cursors, state.page.endCursor]);
    render();
    ($('next-page').disabled ? $('previous-page') : $('next-page')).focus();
  });
  $('previous-page').addEventListener('click', async () => {
    if (state.cursors.length < 2) return;
    await loadMembers(state.cursors.slice(0, -1));
    render();
    ($('previous-page').disabled ? $('next-page') : $('previous-page')).focus();
  });
}

wire();
startSettingsPage({ start, stop });

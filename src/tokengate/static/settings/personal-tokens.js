// Account settings → Personal tokens: the signed-in user's own tokens (viewer.userTokens), a new one with an
// expiry the account's token policy bounds (createUserToken; its secret in the one-time dialog only), and
// deleting one (deleteUserToken); the browsers signed in with a passkey (viewer.sessions), each signed out
// alone (endSession) or all at once (endAllSessions: "Sign out everywhere"). The policy is read when the caller may (ACCOUNT_SETTINGS:READ); otherwise
// the page offers the usual lifetimes and tokengate, which applies the policy and the sign-in token's own
// expiry in any case, says in its refusal what the limit is.
import { ApiError, describeError } from './api.js';
import { runInDialog } from './dialog-action.js';
import {
  $, FormProblem, announce, busy, cell, dateFormat, el, openDialog, pageAlert, timeElement, trashIcon, wireDialog,
} from './dom.js';
import { showSecret, wireSecretDialog } from './secret-dialog.js';
import { startSettingsPage } from './shell.js';

const TOKENS_QUERY = `query SettingsPersonalTokens {
  viewer { userTokens { id name displayPrefix state createdAt lastUsedAt expiresAt } }
}`;
const POLICY_QUERY = `query SettingsPersonalTokenPolicy {
  account { tokenPolicy { userTokenMaxLifetimeDays } }
}`;
const CREATE_MUTATION = `mutation SettingsCreatePersonalToken($name: String!, $expiresAt: DateTime) {
  createUserToken(name: $name, expiresAt: $expiresAt) { secret userToken { id name displayPrefix expiresAt } }
}`;
const DELETE_MUTATION = `mutation SettingsDeletePersonalToken($id: ID!) {
  deleteUserToken(id: $id) { id name state }
}`;
const SESSIONS_QUERY = `query SettingsSessions {
  viewer { sessions { id method createdAt lastSeenAt expiresAt clientAddress current } }
}`;
const END_SESSION = `mutation SettingsEndSession($id: ID!) { endSession(id: $id) { id } }`;
const END_ALL_SESSIONS = 'mutation SettingsEndAllSessions { endAllSessions }';
const METHODS = { invitation: 'Invitation', passkey: 'Passkey' };
const LIFETIMES = [7, 30, 60, 90, 180, 365];  // days offered, up to the policy's maximum
const DAY_MS = 86_400_000;
const WHAT = { what: 'personal tokens' };
const STATE_LABELS = { ACTIVE: 'Active', EXPIRED: 'Expired', DELETED: 'Deleted' };

const state = {
  session: null,
  tokens: [],
  sessions: [],
  maxDays: null,  // the policy's userTokenMaxLifetimeDays; null while it cannot be read
  policyRefusal: '',  // why it cannot be read
  includeDeleted: false,
  deleting: null,
};

// ---------------------------------------------------------------- the session (shell.js signs in and out)

async function start(session) {
  state.session = session;
  await Promise.all([loadPolicy(), loadTokens(), loadSessions()]);
}

function stop() {
  Object.assign(state, { session: null, tokens: [], sessions: [], maxDays: null, policyRefusal: '' });
  $('token-rows').replaceChildren();
  $('session-rows').replaceChildren();
  $('policy-line').textContent = '';
  pageAlert('');
  announce('');
}

async function loadPolicy() {
  try {
    const data = await state.session.call(POLICY_QUERY);
    state.maxDays = data.account.tokenPolicy.userTokenMaxLifetimeDays;
    state.policyRefusal = '';
    $('policy-line').textContent = `The account's token policy: a new personal token lives at most ${state.maxDays} days.`;
  } catch (error) {
    // Reading the policy is an account setting (FORBIDDEN without it): tokengate applies it all the same, and
    // its refusal of a later expiry says what the limit is. Other failures show with the list's.
    state.maxDays = null;
    state.policyRefusal = error instanceof ApiError && error.code === 'FORBIDDEN' ? error.serverMessage : '';
    $('policy-line').textContent = '';
  }
}

// ---------------------------------------------------------------- the list

async function loadTokens() {
  try {
    const data = await state.session.call(TOKENS_QUERY);
    state.tokens = data.viewer.userTokens;
    pageAlert('');
  } catch (error) {
    state.tokens = [];
    pageAlert(describeError(error, { doing: 'viewing', ...WHAT }));
  }
  render();
}

// The display prefix is the start of the token's text: the one the page is signed in with shows as such.
function isThisSignIn(token) {
  const prefix = token.displayPrefix.replace('…', '');
  return token.state === 'ACTIVE' && state.session !== null && state.session.token !== null
    && state.session.token.startsWith(prefix);
}

function tokenRow(token) {
  const name = el('span', { class: 'token-name', text: token.name });
  const nameCell = cell('Name', name, isThisSignIn(token) ? el('span', { class: 'badge badge-info', text: 'This sign-in' }) : null);
  const actions = token.state === 'DELETED' ? null : el('div', { class: 'actions' },
    el('button', {
      type: 'button', class: 'icon danger-outline', 'data-action': 'delete', 'data-id': token.id,
      'aria-label': `Delete ${token.name}`, title: 'Delete',
    }, trashIcon()));
  return el('tr', { 'data-token-id': token.id, class: token.state === 'DELETED' ? 'deleted' : null },
    nameCell,
    cell('Token', el('code', { text: token.displayPrefix })),
    cell('Created', timeElement(token.createdAt, '')),
    cell('Last used', timeElement(token.lastUsedAt, 'Never')),
    cell('Expires', timeElement(token.expiresAt, 'Never')),
    cell('State', el('span', { class: `state state-${token.state.toLowerCase()}`, text: STATE_LABELS[token.state] || token.state })),
    cell('Actions', actions),
  );
}

function render() {
  const shown = state.tokens.filter((token) => state.includeDeleted || token.state !== 'DELETED');
  $('token-rows').replaceChildren(...shown.map(tokenRow));
  $('token-table').hidden = shown.length === 0;
  $('empty-list').hidden = shown.length !== 0 || !$('page-alert').hidden;
}

// ---------------------------------------------------------------- browser sessions

async function loadSessions() {
  try {
    state.sessions = (await state.session.call(SESSIONS_QUERY)).viewer.sessions;
  } catch {
    state.sessions = [];  // the token list's alert says what went wrong
  }
  renderSessions();
}

function sessionRow(browser) {
  const signedIn = cell('Signed in', timeElement(browser.createdAt, ''),
    browser.current ? el('span', { class: 'badge badge-info', text: 'This browser' }) : null);
  const when = dateFormat.format(new Date(browser.createdAt));
  const action = el('button', {
    type: 'button', class: 'secondary', 'data-session': browser.id, text: 'End session',
    'aria-label': browser.current ? `End session: this browser, signed in ${when}` : `End session signed in ${when}`,
  });
  return el('tr', {},
    signedIn,
    cell('How', el('span', { text: METHODS[browser.method] || browser.method })),
    cell('Last used', timeElement(browser.lastSeenAt, '')),
    cell('Ends', timeElement(browser.expiresAt, '')),
    cell('From', el('span', { text: browser.clientAddress || 'unknown' })),
    cell('Actions', el('div', { class: 'actions' }, action)),
  );
}

function renderSessions() {
  $('session-rows').replaceChildren(...state.sessions.map(sessionRow));
  $('session-table').hidden = state.sessions.length === 0;
  $('no-sessions').hidden = state.sessions.length !== 0;
  $('sign-out-everywhere').hidden = state.sessions.length === 0;
}

async function endSessions(id) {
  const current = state.sessions.some((browser) => browser.current && (id === null || browser.id === id));
  try {
    if (id === null) await state.session.call(END_ALL_SESSIONS);
    else await state.session.call(END_SESSION, { id });
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 'UNAUTHENTICATED')) {
      pageAlert(describeError(error, { doing: 'signing out', what: 'browsers' }));
    }
    return;
  }
  if (current) {
    state.session.signOut(id === null ? 'You are signed out everywhere.' : 'You are signed out.');
    return;
  }
  announce(id === null ? 'Every browser is signed out.' : 'That browser is signed out.');
  await loadSessions();
}

// ---------------------------------------------------------------- a new token

function dateInputValue(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function lifetimeOptions() {
  const offered = LIFETIMES.filter((days) => state.maxDays === null || days < state.maxDays);
  const longest = state.maxDays === null
    ? 'the longest the account allows'
    : `${state.maxDays} ${state.maxDays === 1 ? 'day' : 'days'}, the longest the account allows`;
  return [
    ...offered.map((days) => el('option', { value: String(days), text: `in ${days} days` })),
    el('option', { value: '', text: `in ${longest}`, selected: true }),
    el('option', { value: 'date', text: 'on a date…' }),
  ];
}

function lifetimeHint() {
  const bound = 'It also never outlives the token you are signed in with.';
  if (state.maxDays !== null) return `At most ${state.maxDays} days from now: the account's token policy. ${bound}`;
  const why = state.policyRefusal ? `Your role cannot read the account's token policy (${state.policyRefusal}): ` : '';
  return `${why}tokengate applies the policy when you create the token, and says so if the expiry is later. ${bound}`;
}

function openCreate(opener) {
  $('token-form').reset();
  $('token-form-error').textContent = '';
  $('token-lifetime').replaceChildren(...lifetimeOptions());
  $('token-lifetime-hint').textContent = lifetimeHint();
  const tomorrow = new Date(Date.now() + DAY_MS);
  $('token-expiry-date').min = dateInputValue(tomorrow);
  $('token-expiry-date').max = state.maxDays === null ? '' : dateInputValue(new Date(Date.now() + state.maxDays * DAY_MS));
  $('expiry-date-field').hidden = true;
  openDialog($('token-dialog'), opener);
  $('token-name').focus();
}

// The expiry asked for, as the API takes it: null for the longest allowed (the server's default).
function readExpiry() {
  const lifetime = $('token-lifetime').value;
  if (lifetime === '') return null;
  if (lifetime !== 'date') return new Date(Date.now() + Number(lifetime) * DAY_MS).toISOString();
  const value = $('token-expiry-date').value;
  if (!value) throw new FormProblem('Choose the expiry date.');
  const [year, month, day] = value.split('-').map(Number);
  const now = new Date();
  const when = new Date(year, month - 1, day, now.getHours(), now.getMinutes());  // this time of day, that day
  if (Number.isNaN(when.getTime()) || when <= now) throw new FormProblem('Choose a date after today.');
  return when.toISOString();
}

async function submitCreate(event) {
  event.preventDefault();
  const error = $('token-form-error');
  error.textContent = '';
  let name;
  let expiresAt;
  try {
    name = $('token-name').value.trim();
    if (!name) throw new FormProblem('Give the token a name.');
    expiresAt = readExpiry();
  } catch (problem) {
    if (!(problem instanceof FormProblem)) throw problem;
    error.textContent = problem.message;
    return;
  }
  const form = $('token-form');
  busy(form, true);
  try {
    const data = await state.session.call(CREATE_MUTATION, { name, expiresAt });
    const created = data.createUserToken;
    const dialog = $('token-dialog');
    const opener = dialog.returnFocusTo;
    dialog.returnFocusTo = null;
    dialog.close();
    showSecret({
      title: 'Token created', opener, secret: created.secret,
      subject: `Personal token “${created.userToken.name}” (${created.userToken.displayPrefix}), `
        + `expires ${dateFormat.format(new Date(created.userToken.expiresAt))}`,
    });
    announce(`Token “${created.userToken.name}” created.`);
    await loadTokens();
  } catch (problem) {
    error.textContent = describeError(problem, WHAT);
  } finally {
    busy(form, false);
  }
}

// ---------------------------------------------------------------- delete

function openDelete(token, opener) {
  state.deleting = token;
  $('delete-title').textContent = `Delete “${token.name}”?`;
  $('delete-which').textContent = `Personal token “${token.name}” (${token.displayPrefix}), created ${dateFormat.format(new Date(token.createdAt))}.`;
  $('delete-self').hidden = !isThisSignIn(token);
  $('delete-error').textContent = '';
  openDialog($('delete-dialog'), opener);
  $('delete-cancel').focus();  // the safe choice first
}

async function confirmDelete() {
  const dialog = $('delete-dialog');
  const token = state.deleting;
  const signedInWithIt = isThisSignIn(token);
  await runInDialog(dialog, $('delete-error'), async () => {
    const deleted = (await state.session.call(DELETE_MUTATION, { id: token.id })).deleteUserToken;
    dialog.returnFocusTo = $('new-token');
    dialog.close();
    if (signedInWithIt) {
      state.session.signOut(`You deleted “${deleted.name}”, the token you were signed in with. Sign in with another personal token.`);
      return;
    }
    announce(`Token “${deleted.name}” deleted.`);
    await loadTokens();
  }, { words: WHAT, reload: loadTokens });
}

// ---------------------------------------------------------------- wiring

function wire() {
  const backToList = { fallback: () => $('new-token') };
  wireDialog($('token-dialog'), backToList);
  wireSecretDialog(backToList);
  wireDialog($('delete-dialog'), { ...backToList, onClose: () => { state.deleting = null; } });
  $('new-token').addEventListener('click', (event) => openCreate(event.currentTarget));
  $('token-lifetime').addEventListener('change', () => {
    $('expiry-date-field').hidden = $('token-lifetime').value !== 'date';
  });
  $('token-form').addEventListener('submit', submitCreate);
  $('include-deleted').addEventListener('change', (event) => {
    state.includeDeleted = event.currentTarget.checked;
    render();
  });
  $('token-rows').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action="delete"]');
    const token = button && state.tokens.find((candidate) => candidate.id === button.dataset.id);
    if (token) openDelete(token, button);
  });
  $('delete-confirm').addEventListener('click', confirmDelete);
  $('session-rows').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-session]');
    if (button) endSessions(button.dataset.session);
  });
  $('sign-out-everywhere').addEventListener('click', () => endSessions(null));
}

wire();
startSettingsPage({ start, stop });

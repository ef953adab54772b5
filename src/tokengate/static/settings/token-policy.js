// Account settings → Token policy: the account's three rules for the lifetime of new tokens
// (account.tokenPolicy, ACCOUNT_SETTINGS:READ) saved together with setTokenPolicy (ACCOUNT_SETTINGS:WRITE).
// The page checks whether the caller may change them (check, never an error) and shows them read-only if not;
// the server checks the numbers and its words are shown when it refuses.
import { describeError } from './api.js';
import { $, FormProblem, announce, busy, pageAlert } from './dom.js';
import { startSettingsPage } from './shell.js';

const POLICY_QUERY = `query SettingsTokenPolicy {
  account { tokenPolicy { requireServiceTokenExpiry serviceTokenMaxLifetimeDays userTokenMaxLifetimeDays } }
  check(resource: ACCOUNT_SETTINGS, access: WRITE) { allowed reason }
}`;
const SET_MUTATION = `mutation SettingsSetTokenPolicy($input: TokenPolicyInput!) {
  setTokenPolicy(input: $input) { requireServiceTokenExpiry serviceTokenMaxLifetimeDays userTokenMaxLifetimeDays }
}`;
const WHAT = { what: "the account's token policy" };

const state = { session: null, policy: null, writable: false };

async function start(session) {
  state.session = session;
  await load();
}

function stop() {
  Object.assign(state, { session: null, policy: null, writable: false });
  $('policy-form').reset();
  $('policy-form').hidden = true;
  $('policy-read-only').hidden = true;
  pageAlert('');
  announce('');
}

async function load() {
  try {
    const data = await state.session.call(POLICY_QUERY);
    state.policy = data.account.tokenPolicy;
    state.writable = data.check.allowed;
    $('policy-read-only').textContent = state.writable ? ''
      : `You can read this policy but not change it: your permission sets do not give ACCOUNT_SETTINGS:WRITE (${data.check.reason}).`;
    pageAlert('');
  } catch (error) {
    state.policy = null;
    pageAlert(describeError(error, { doing: 'viewing', ...WHAT }));
  }
  show();
}

function show() {
  const form = $('policy-form');
  form.hidden = state.policy === null;
  $('policy-read-only').hidden = state.policy === null || state.writable;
  if (state.policy === null) return;
  $('require-expiry').checked = state.policy.requireServiceTokenExpiry;
  $('service-max').value = state.policy.serviceTokenMaxLifetimeDays ?? '';
  $('user-max').value = String(state.policy.userTokenMaxLifetimeDays);
  $('policy-error').textContent = '';
  for (const control of form.querySelectorAll('input, button')) control.disabled = !state.writable;
}

// A whole number of days, or null for an empty field where that means "no limit"; the range is the server's.
function days(id, label, { optional }) {
  const text = $(id).value.trim();
  if (text === '' && optional) return null;
  if (!/^\d+$/.test(text)) throw new FormProblem(`${label}: give a whole number of days${optional ? ', or leave it empty' : ''}.`);
  return Number(text);
}

async function save(event) {
  event.preventDefault();
  $('policy-error').textContent = '';
  let input;
  try {
    input = {
      requireServiceTokenExpiry: $('require-expiry').checked,
      serviceTokenMaxLifetimeDays: days('service-max', 'Longest lifetime of a service token', { optional: true }),
      userTokenMaxLifetimeDays: days('user-max', 'Longest lifetime of a personal token', { optional: false }),
    };
  } catch (problem) {
    if (!(problem instanceof FormProblem)) throw problem;
    $('policy-error').textContent = problem.message;
    return;
  }
  const form = $('policy-form');
  busy(form, true);
  try {
    state.policy = (await state.session.call(SET_MUTATION, { input })).setTokenPolicy;
    busy(form, false);
    show();
    announce('Token policy saved. It applies to tokens created or rotated from now on.');
  } catch (problem) {
    busy(form, false);
    $('policy-error').textContent = describeError(problem, { doing: 'changing', ...WHAT });
  }
}

$('policy-form').addEventListener('submit', save);
$('policy-undo').addEventListener('click', () => {
  show();
  announce('Changes undone.');
});
startSettingsPage({ start, stop });

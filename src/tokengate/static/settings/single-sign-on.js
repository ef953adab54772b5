// Account settings → Single sign-on: the account's OpenID Connect provider (account.singleSignOn), saved with
// configureSingleSignOn and removed with removeSingleSignOn (AUTH_PROVIDER:WRITE; the server also asks a browser
// session for a recent sign-in: RECENT_SIGN_IN_REQUIRED, shown as "sign in again"). The client secret is
// write-only: never answered back, sent only when typed. Default grants and group mappings are shown, not edited
// here (GraphQL sets them); a save sends them back as they are. The page asks whether the caller may change the
// configuration (check, never an error) and only reads it if not; the server checks every value (the issuer's
// address rule, the no-escalation rule) and its words are shown when it refuses. docs/single-sign-on-providers.md.
import { describeError } from './api.js';
import { $, FormProblem, announce, busy, el, openDialog, pageAlert, timeElement, wireDialog } from './dom.js';
import { grantList } from './grants.js';
import { startSettingsPage } from './shell.js';

const GRANT = 'permissionSet allProjects projects { id name }';
const QUERY = `query SettingsSingleSignOn {
  account { id singleSignOn {
    issuer clientId emailDomains trustEmailsWithoutVerification defaultGrants { ${GRANT} } groupsClaim
    groupMappings { group grants { ${GRANT} } } enforced signInAgainAfterSeconds redirectUri signInPath
    linksExistingMembers updatedAt
  } }
  permissionSets { key name level }
  check(resource: AUTH_PROVIDER, access: WRITE) { allowed reason }
}`;
const CONFIGURE = `mutation SettingsConfigureSingleSignOn($input: SingleSignOnInput!) {
  configureSingleSignOn(input: $input) { issuer }
}`;
const REMOVE = 'mutation SettingsRemoveSingleSignOn { removeSingleSignOn { issuer } }';
const WHAT = { what: 'single sign-on' };
const CALLBACK_PATH = '/sign-in/sso/callback';
const DEFAULT_WINDOW = 86400;

const state = { session: null, sso: null, sets: [], writable: false, loaded: false };

async function start(session) {
  state.session = session;
  await load();
}

function stop() {
  Object.assign(state, { session: null, sso: null, sets: [], writable: false, loaded: false });
  $('sso-form').reset();
  $('sso-form').hidden = true;
  $('sso-current').hidden = true;
  $('sso-empty').hidden = true;
  $('sso-read-only').hidden = true;
  pageAlert('');
  announce('');
}

async function load() {
  try {
    const data = await state.session.call(QUERY);
    state.sso = data.account.singleSignOn;
    state.sets = data.permissionSets;
    state.writable = data.check.allowed;
    state.loaded = true;
    $('sso-read-only').textContent = state.writable ? ''
      : `You can read this configuration but not change it: your permission sets do not give AUTH_PROVIDER:WRITE (${data.check.reason}).`;
    pageAlert('');
  } catch (error) {
    state.sso = null;
    state.loaded = false;
    pageAlert(describeError(error, { doing: 'viewing', ...WHAT }));
  }
  show();
}

function duration(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} h (${seconds} s)`;
  if (seconds % 60 === 0) return `${seconds / 60} min (${seconds} s)`;
  return `${seconds} s`;
}

function mappings(list) {
  if (list.length === 0) return el('span', { class: 'muted', text: 'None' });
  return el('ul', { class: 'plain' }, ...list.map((mapping) => el('li', {},
    el('code', { text: mapping.group }), ' → ', grantList(mapping.grants, state.sets))));
}

function showCurrent(sso) {
  $('current-issuer').textContent = sso.issuer;
  $('current-client-id').textContent = sso.clientId;
  $('current-domains').textContent = sso.emailDomains.join(', ');
  $('current-trust').textContent = sso.trustEmailsWithoutVerification
    ? 'Trusted: the provider is the authority for these domains' : 'Refused unless the provider marks them verified';
  $('current-enforced').textContent = sso.enforced
    ? 'Yes: members other than account admins sign in only through the provider' : 'No';
  $('current-links').textContent = sso.linksExistingMembers
    ? 'Connected at their first sign-in when the e-mail matches (an account admin saved this configuration)'
    : 'Refused at their first sign-in (saved by someone who is not an account admin; an account admin\'s save turns this on)';
  $('current-window').textContent = duration(sso.signInAgainAfterSeconds);
  $('current-groups-claim').textContent = sso.groupsClaim;
  $('current-default-grants').replaceChildren(grantList(sso.defaultGrants, state.sets));
  $('current-mappings').replaceChildren(mappings(sso.groupMappings));
  $('current-updated').replaceChildren(timeElement(sso.updatedAt, ''));
}

function fillForm(sso) {
  $('sso-issuer').value = sso ? sso.issuer : '';
  $('sso-client-id').value = sso ? sso.clientId : '';
  $('sso-client-secret').value = '';
  $('sso-client-secret').required = sso === null;
  $('sso-domains').value = sso ? sso.emailDomains.join(', ') : '';
  $('sso-trust').checked = sso ? sso.trustEmailsWithoutVerification : false;
  $('sso-enforced').checked = sso ? sso.enforced : false;
  $('sso-window').value = String(sso ? sso.signInAgainAfterSeconds : DEFAULT_WINDOW);
  $('sso-groups-claim').value = sso ? sso.groupsClaim : 'groups';
  $('sso-error').textContent = '';
}

function show() {
  const sso = state.sso;
  const signedIn = state.session !== null && state.loaded;
  $('sso-redirect-uri').textContent = sso ? sso.redirectUri : `${window.location.origin}${CALLBACK_PATH}`;
  $('sso-redirect-hint').hidden = sso !== null;
  const link = $('sso-sign-in-link');
  if (sso) {
    const address = `${window.location.origin}${sso.signInPath}`;
    link.replaceChildren(el('a', { href: sso.signInPath, text: address }));
  } else {
    link.replaceChildren(el('span', { class: 'muted', text: 'Once single sign-on is saved.' }));
  }
  $('sso-current').hidden = !signedIn || sso === null;
  $('sso-empty').hidden = !signedIn || sso !== null;
  $('sso-read-only').hidden = !signedIn || state.writable;
  $('sso-remove').hidden = !state.writable;
  $('sso-form').hidden = !signedIn || !state.writable;
  if (sso) showCurrent(sso);
  fillForm(sso);
}

function required(id, label) {
  const value = $(id).value.trim();
  if (value === '') throw new FormProblem(`${label}: give a value.`);
  return value;
}

function domains() {
  const list = $('sso-domains').value.split(/[\s,]+/).map((domain) => domain.trim().toLowerCase()).filter(Boolean);
  if (list.length === 0) throw new FormProblem('E-mail domains: give at least one, e.g. acme.example.');
  return list;
}

function windowSeconds() {
  const text = $('sso-window').value.trim();
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw new FormProblem('Sign in again after: give a whole number of seconds, e.g. 86400 for 24 hours.');
  }
  return Number(text);
}

// Grants as the API answers them, as GrantInput: what is stored, sent back unchanged.
function grantInputs(grants) {
  return grants.map((grant) => ({
    permissionSet: grant.permissionSet,
    allProjects: grant.allProjects,
    projectIds: grant.projects.map((project) => project.id),
  }));
}

function formInput() {
  const secret = $('sso-client-secret').value;
  if (state.sso === null && secret === '') throw new FormProblem('Client secret: give the one the provider made.');
  const input = {
    issuer: required('sso-issuer', 'Issuer URL'),
    clientId: required('sso-client-id', 'Client id'),
    emailDomains: domains(),
    trustEmailsWithoutVerification: $('sso-trust').checked,
    enforced: $('sso-enforced').checked,
    signInAgainAfterSeconds: windowSeconds(),
    groupsClaim: required('sso-groups-claim', 'Groups claim'),
    defaultGrants: state.sso ? grantInputs(state.sso.defaultGrants) : [],
    groupMappings: state.sso
      ? state.sso.groupMappings.map((mapping) => ({ group: mapping.group, grants: grantInputs(mapping.grants) }))
      : [],
  };
  if (secret !== '') input.clientSecret = secret;
  return input;
}

async function save(event) {
  event.preventDefault();
  $('sso-error').textContent = '';
  let input;
  try {
    input = formInput();
  } catch (problem) {
    if (!(problem instanceof FormProblem)) throw problem;
    $('sso-error').textContent = problem.message;
    return;
  }
  const form = $('sso-form');
  busy(form, true);
  try {
    await state.session.call(CONFIGURE, { input });
    busy(form, false);
    await load();
    announce('Single sign-on saved.');
  } catch (problem) {
    busy(form, false);
    $('sso-client-secret').value = '';  // never kept in the page longer than one attempt
    $('sso-error').textContent = describeError(problem, { doing: 'changing', ...WHAT });
  }
}

async function confirmRemove() {
  try {
    await state.session.call(REMOVE);
    $('remove-dialog').close();
    await load();
    announce('Single sign-on removed.');
  } catch (problem) {
    $('remove-error').textContent = describeError(problem, { doing: 'removing', ...WHAT });
  }
}

$('sso-form').addEventListener('submit', save);
$('sso-undo').addEventListener('click', () => {
  fillForm(state.sso);
  announce('Changes undone.');
});
$('sso-remove').addEventListener('click', (event) => {
  $('remove-error').textContent = '';
  openDialog($('remove-dialog'), event.currentTarget);
});
$('remove-confirm').addEventListener('click', confirmRemove);
wireDialog($('remove-dialog'), { fallback: () => $('sso-title') });
startSettingsPage({ start, stop });

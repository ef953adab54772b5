// The settings shell: one sign-in for every page, the session bar, and the page's own
// module. A member signed in with a passkey has a browser session (an HttpOnly cookie no script reads): no
// token is kept in the page at all. A pasted personal token lives in this tab's sessionStorage only, so it
// carries from page to page and is gone with the tab. The shell then starts the page's own
// module, started after each sign-in and stopped at sign-out. Every API call of a page goes through
// `session.call`, so an expired sign-in anywhere brings the sign-in form back, saying so. A 429 (too many
// requests) never signs out: the shell says "slow down" with the wait the server asked for, and a query is
// asked again once that wait is over (or at once with "Retry now"); a refused mutation is left to its page.
// A sensitive change refused for an old sign-in (RECENT_SIGN_IN_REQUIRED, browser sessions only) is left to
// its page too, and the shell offers "Sign in again", which comes back to this page afterwards.
import { ApiError, describeError, gql } from './api.js';
import { $, busy } from './dom.js';

const SESSION_KEY = 'tokengate.settings.token';
const NOT_ACCEPTED = 'This token was not accepted: it is unknown, expired or deleted. Check that you pasted the whole personal token.';
const PLAN_NAMES = {
  DEVELOPER: 'Developer', STARTER: 'Starter', TEAM: 'Team', ENTERPRISE: 'Enterprise', ENTERPRISE_PLUS: 'Enterprise+',
};
const VIEWER_QUERY = `query SettingsViewer {
  viewer { kind user { email } account { id name plan } }
}`;

// Waits the server's Retry-After, or until "Retry now" is pressed; the "slow down" notice says how long.
function slowDown(error) {
  const notice = $('slow-down');
  const seconds = Math.max(1, error.retryAfter || 1);
  $('slow-down-text').textContent = `Slow down: tokengate is receiving too many requests from you. `
    + `Trying again in ${seconds} s.`;
  notice.hidden = false;
  return new Promise((resolve) => {
    const retry = $('slow-down-retry');
    const done = () => {
      clearTimeout(timer);
      retry.removeEventListener('click', done);
      resolve();
    };
    const timer = setTimeout(done, seconds * 1000);
    retry.addEventListener('click', done);
  });
}

function slowedDown() {
  $('slow-down').hidden = true;
}

// "Sign in again" to the sign-in page, which brings the person back to this page (only ever a settings page).
function askToSignInAgain() {
  $('sign-in-again-link').href = `/sign-in?next=${encodeURIComponent(window.location.pathname)}`;
  $('sign-in-again').hidden = false;
}

const isMutation = (query) => /^\s*mutation\b/.test(query);

// gql, with every 429 of a query waited out (the "slow down" notice shown meanwhile) and asked again.
async function patiently(token, query, variables) {
  for (;;) {
    try {
      const data = await gql(token, query, variables);
      slowedDown();
      return data;
    } catch (error) {
      if (!(error instanceof ApiError) || error.code !== 'RATE_LIMITED' || isMutation(query)) throw error;
      await slowDown(error);
    }
  }
}

export function planName(plan) {
  return PLAN_NAMES[plan] || plan;
}

// What a page module gives the shell:
//   start(session)  after each sign-in: load and show the page's data (session.viewer is set)
//   stop()          at sign-out: forget everything shown
export function startSettingsPage(page) {
  const view = document.querySelector('[data-page-view]');

  const session = {
    token: null,
    cookie: false,  // signed in by the browser session (a passkey), not by a pasted token
    viewer: null,
    async call(query, variables) {
      try {
        return await patiently(session.cookie ? null : session.token, query, variables);
      } catch (error) {
        if (error instanceof ApiError && error.code === 'UNAUTHENTICATED') signOut(describeError(error));
        if (error instanceof ApiError && error.code === 'RECENT_SIGN_IN_REQUIRED') askToSignInAgain();
        throw error;
      }
    },
    signOut: (message) => signOut(message),
  };

  function show(what) {
    $('loading').hidden = true;
    $('sign-in').hidden = what !== 'sign-in';
    view.hidden = what !== 'page';
    $('session').hidden = session.token === null && !session.cookie;
  }

  function showSignIn(message = '') {
    show('sign-in');
    $('sign-in-error').textContent = message;
    $('sign-in-token').value = '';
    $('sign-in-token').focus();
  }

  function signOut(message = '') {
    sessionStorage.removeItem(SESSION_KEY);
    if (session.cookie) {  // ends the session on the server (every instance) and clears the cookie
      fetch('/sign-out', {
        method: 'POST', headers: { 'X-Tokengate-CSRF': '1', 'Content-Type': 'application/json' }, body: '{}',
        credentials: 'same-origin', cache: 'no-store',
      }).catch(() => {});
    }
    session.cookie = false;
    session.token = null;
    session.viewer = null;
    $('sign-in-again').hidden = true;
    if (page.stop) page.stop();
    for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
    showSignIn(message);
  }

  // `resumed`: the token was kept from earlier in this tab (this page or another), rather than just pasted.
  async function signIn(token, { resumed = false } = {}) {
    let viewer;
    try {
      viewer = (await patiently(token, VIEWER_QUERY)).viewer;
    } catch (error) {
      sessionStorage.removeItem(SESSION_KEY);  // (a 429 never gets here: it is waited out above)
      const refused = error instanceof ApiError && error.code === 'UNAUTHENTICATED' && !resumed;
      showSignIn(refused ? NOT_ACCEPTED : describeError(error, { doing: 'viewing', what: 'account settings' }));
      return;
    }
    session.token = token;
    session.viewer = viewer;
    sessionStorage.setItem(SESSION_KEY, token);
    await enter(viewer, resumed);
  }

  // Signed in by the browser session's cookie, if there is a live one: no token anywhere in the page.
  async function resumeSession() {
    let viewer;
    try {
      viewer = (await patiently(null, VIEWER_QUERY)).viewer;
    } catch {
      return false;
    }
    session.cookie = true;
    session.viewer = viewer;
    await enter(viewer, true);
    return true;
  }

  async function enter(viewer, resumed) {
    $('session-who').textContent = `Signed in as ${viewer.user ? viewer.user.email : 'a service token'}`;
    $('account-line').textContent = `Account ${viewer.account.name} · ${planName(viewer.account.plan)} plan`;
    show('page');
    // After the sign-in form, focus goes to the page; a page opened signed in starts at the skip link.
    if (!resumed) $('main').focus();
    if (page.start) await page.start(session);
  }

  $('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = $('sign-in-token').value.trim();
    if (!token) {
      $('sign-in-error').textContent = 'Paste your personal token first.';
      return;
    }
    $('sign-in-error').textContent = '';
    busy($('sign-in-form'), true);
    try {
      await signIn(token);
    } finally {
      busy($('sign-in-form'), false);
      $('sign-in-token').value = '';
    }
  });
  $('sign-out').addEventListener('click', () => signOut('You are signed out.'));

  const saved = sessionStorage.getItem(SESSION_KEY);
  if (saved) signIn(saved, { resumed: true });
  else resumeSession().then((signedIn) => { if (!signedIn) showSignIn(); });
  return session;
}

// "Sign in with a passkey": a new session, then on to the settings pages: back to the page that asked for a new
// sign-in (`?next=/settings/...`, a sensitive change), else /settings.
import { signInWithPasskey } from './webauthn.js';

// Only a settings page of this origin: never another site or a scheme (no open redirect).
const SETTINGS_PATH = /^\/settings(\/[a-z0-9-]+)?\/?$/;

function returnPath() {
  const next = new URLSearchParams(window.location.search).get('next');
  return next && SETTINGS_PATH.test(next) ? next : '/settings';
}

const button = document.getElementById('passkey-sign-in');
const error = document.getElementById('sign-in-error');

button.addEventListener('click', async () => {
  error.textContent = '';
  button.disabled = true;
  try {
    await signInWithPasskey();
    window.location.assign(returnPath());
  } catch (problem) {
    error.textContent = problem.message;
    button.disabled = false;
    button.focus();
  }
});

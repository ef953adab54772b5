// "Sign in with a passkey": a new session, then on to the settings pages.
import { signInWithPasskey } from './webauthn.js';

const button = document.getElementById('passkey-sign-in');
const error = document.getElementById('sign-in-error');

button.addEventListener('click', async () => {
  error.textContent = '';
  button.disabled = true;
  try {
    await signInWithPasskey();
    window.location.assign('/settings');
  } catch (problem) {
    error.textContent = problem.message;
    button.disabled = false;
    button.focus();
  }
});

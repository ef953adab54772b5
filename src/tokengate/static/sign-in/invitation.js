// Accept an invitation: the link's secret is in the fragment (never sent in a URL to any server); it is
// dropped from the address bar at once, then used once to register a passkey, which signs the invitee in.
import { registerPasskey } from './webauthn.js';

const secret = window.location.hash.slice(1);
if (window.location.hash) window.history.replaceState(null, '', window.location.pathname);
const button = document.getElementById('create-passkey');
const error = document.getElementById('invitation-error');

if (!secret) {
  error.textContent = 'This invitation link is incomplete. Open the whole link you were given.';
  button.disabled = true;
}

button.addEventListener('click', async () => {
  error.textContent = '';
  button.disabled = true;
  try {
    await registerPasskey(secret);
    window.location.assign('/settings');
  } catch (problem) {
    error.textContent = problem.message;
    button.disabled = false;
    button.focus();
  }
});

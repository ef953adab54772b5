// The one-time secret dialog of the pages that make secrets (service tokens, personal tokens, webhooks):
// the secret lives in this dialog only, with a Copy button, and is wiped from the page when it closes.
// Its markup is templates/settings/partials/secret-dialog.html, put in a page with {{secret-dialog}}.
import { $, openDialog, wireDialog } from './dom.js';

let currentSecret = null;

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
    $('copy-status').textContent = `Copying was not allowed here: the ${$('secret-noun').textContent} is selected, press Ctrl+C (⌘C) to copy it.`;
  }
}

// `fallback()`: where focus goes when the dialog closes and what opened it is gone (see wireDialog).
// The secret goes as the dialog closes, not a task later with its `close` event (when whatever reads the page
// next may already have read it): at once on Done, and at the end of the closing task however else it
// closes (Escape, signing out), unless it was opened again with a new secret meanwhile.
export function wireSecretDialog({ fallback }) {
  const dialog = $('secret-dialog');
  wireDialog(dialog, { fallback });
  $('secret-done').addEventListener('click', forgetSecret);
  new MutationObserver(() => {
    if (!dialog.open) forgetSecret();
  }).observe(dialog, { attributeFilter: ['open'] });
  $('copy-secret').addEventListener('click', copySecret);
}

// title: the dialog's heading; subject: what the secret is for; noun and label: how the page names it;
// kept: how tokengate keeps it (a hash, for tokens); note: what else to know (the old token of a rotation).
export function showSecret({
  title, subject, secret, opener, noun = 'token', label = 'Token', kept = 'tokengate keeps only a hash of it', note = '',
}) {
  currentSecret = secret;
  $('secret-title').textContent = title;
  $('secret-for').textContent = subject;
  $('secret-noun').textContent = noun;
  $('secret-kept').textContent = kept;
  $('secret-label').textContent = label;
  $('secret-value').value = secret;
  $('copy-status').textContent = '';
  $('secret-old-note').textContent = note;
  openDialog($('secret-dialog'), opener);
  $('copy-secret').focus();
}

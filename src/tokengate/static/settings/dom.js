// DOM helpers shared by the settings pages: elements built from text only (never markup), dates, modal
// dialogs that give focus back to what opened them, busy forms, and the page's alert and status lines.

export const $ = (id) => document.getElementById(id);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name in node && typeof value !== 'string') node[name] = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function timeElement(iso, empty) {
  if (!iso) return el('span', { class: 'muted', text: empty });
  const when = new Date(iso);
  return el('time', { datetime: when.toISOString(), text: dateFormat.format(when) });
}

// A problem the page finds in a form before asking the server; its message is shown as it is.
export class FormProblem extends Error {}

export function openDialog(dialog, opener) {
  dialog.returnFocusTo = opener || document.activeElement;
  dialog.showModal();
  const target = dialog.querySelector('[data-autofocus]') || dialog.querySelector('input, select, textarea, button');
  if (target) target.focus();
}

function visible(node) {
  return Boolean(node) && node.isConnected && !node.closest('[hidden]');
}

// `fallback()`: where focus goes when the opener is gone (a re-rendered row) and has no twin on the new row.
export function wireDialog(dialog, { onClose = null, fallback = () => null } = {}) {
  for (const button of dialog.querySelectorAll('[data-close]')) {
    button.addEventListener('click', () => dialog.close());
  }
  dialog.addEventListener('close', () => {
    if (onClose) onClose();
    const back = dialog.returnFocusTo;
    dialog.returnFocusTo = null;
    if (back && back.isConnected) {
      back.focus();
      return;
    }
    let again = null;
    if (back && back.dataset && back.dataset.action && back.dataset.id !== undefined) {
      again = document.querySelector(`[data-action="${back.dataset.action}"][data-id="${CSS.escape(back.dataset.id)}"]`);
    }
    const target = again || fallback();
    if (visible(target)) target.focus();
  });
}

export function busy(form, on) {
  for (const control of form.querySelectorAll('button, input, select, textarea')) {
    if (on) {
      control.dataset.wasDisabled = control.disabled ? '1' : '';
      control.disabled = true;
    } else {
      control.disabled = control.dataset.wasDisabled === '1';
    }
  }
}

// Every page has one alert (what failed, in words) and one polite status line (what just happened).
export function pageAlert(message) {
  const alert = $('page-alert');
  alert.textContent = message;
  alert.hidden = !message;
}

export function announce(message) {
  $('status').textContent = message;
}

// DOM helpers shared by the settings pages: elements built from text only (never markup), table cells, dates,
// modal dialogs that give focus back to what opened them, busy forms, and the page's alert and status lines.

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

const SVG = 'http://www.w3.org/2000/svg';

// An SVG element (createElementNS: an element of the SVG namespace, attributes as text).
export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

export function trashIcon() {
  return svg('svg', { viewBox: '0 0 24 24', width: 18, height: 18, 'aria-hidden': 'true', focusable: 'false' },
    svg('path', { d: 'M9 3h6l1 2h4v2H4V5h4l1-2zm-3 6h12l-1 12H7L6 9zm4 2v8h2v-8h-2zm4 0v8h2v-8h-2z', fill: 'currentColor' }));
}

// One wrapper per cell, so that narrow screens can lay out "label | content" as two columns.
export function cell(label, ...children) {
  const content = children.filter((child) => child !== null && child !== undefined);
  return el('td', { 'data-label': label }, content.length > 0 ? el('div', { class: 'cell' }, ...content) : null);
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
// The browser fires `close` a task after the dialog closed (and puts focus back at once), so a person quick
// enough (Escape, then Enter on the same button) opens it again before that event arrives: such a late event
// belongs to the closing before, and must not forget what the new opening set up.
export function wireDialog(dialog, { onClose = null, fallback = () => null } = {}) {
  for (const button of dialog.querySelectorAll('[data-close]')) {
    button.addEventListener('click', () => dialog.close());
  }
  dialog.addEventListener('close', () => {
    if (dialog.open) return;  // opened again since: this close is over
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

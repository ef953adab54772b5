// Account settings → Webhooks: the account's endpoints with their events (account.webhooks), create (the
// signing secret in the one-time dialog only), edit and delete them, and each one's delivery log
// (Webhook.deliveries, newest first, in pages) with a Redeliver button per delivery (redeliverWebhookEvent:
// the same event again, as a new delivery).
import { ApiError, describeError } from './api.js';
import { runInDialog } from './dialog-action.js';
import {
  $, FormProblem, announce, busy, cell, dateFormat, el, openDialog, pageAlert, timeElement, wireDialog,
} from './dom.js';
import { showSecret, wireSecretDialog } from './secret-dialog.js';
import { startSettingsPage } from './shell.js';

const LIST_QUERY = `query SettingsWebhooks {
  account { webhooks { id url description events createdAt failingSince } }
}`;
const LOG_PAGE_SIZE = 20;
const DELIVERIES_QUERY = `query SettingsWebhookDeliveries($id: ID!, $first: Int!, $after: String) {
  node(id: $id) { ... on Webhook { deliveries(first: $first, after: $after) {
    edges { node { id eventId eventType status attempts responseCode latencyMs error createdAt lastAttemptAt
                   nextAttemptAt deliveredAt } }
    pageInfo { hasNextPage endCursor }
  } } }
}`;
const CREATE_MUTATION = `mutation SettingsCreateWebhook($url: String!, $events: [String!]!, $description: String) {
  createWebhook(url: $url, events: $events, description: $description) { secret webhook { id url } }
}`;
const UPDATE_MUTATION = `mutation SettingsUpdateWebhook($id: ID!, $url: String, $events: [String!], $description: String) {
  updateWebhook(id: $id, url: $url, events: $events, description: $description) { id url }
}`;
const DELETE_MUTATION = `mutation SettingsDeleteWebhook($id: ID!) { deleteWebhook(id: $id) { id url } }`;
const REDELIVER_MUTATION = `mutation SettingsRedeliver($id: ID!) { redeliverWebhookEvent(id: $id) { id status } }`;
// The event families a form offers (any other type can be typed); '*' is every event.
const FAMILIES = [
  ['*', 'Every event', 'everything below you may read, and any event a later version adds'],
  ['service_token.*', 'Service tokens', 'created, rotated, updated, deleted, leaked; expiring, expired, unused'],
  ['user_token.*', 'Personal tokens', 'created, deleted, leaked; expiring'],
  ['user.*', 'Members', 'created, updated, deactivated'],
  ['project.*', 'Projects', 'created'],
  ['ip_restrictions.*', 'IP restrictions', 'updated'],
  ['token_policy.*', 'Token policy', 'updated'],
  ['legacy_token.*', 'Legacy tokens', 'imported'],
  ['webhook.*', 'Webhooks', 'created, updated, deleted, redelivered, failing, recovered, test_sent, secret_rotated'],
];
const STATUS_LABELS = { PENDING: 'Pending', DELIVERED: 'Delivered', FAILED: 'Failed', SKIPPED: 'Not sent' };
const WHAT = { what: 'webhooks', missing: 'This webhook or delivery no longer exists. The list has been refreshed.' };
const REFRESHES = [1000, 2000, 4000];  // after a redelivery: look again while a delivery is pending

const state = {
  session: null,
  webhooks: [],
  logs: new Map(),  // webhook id → { open, cursors, page: { deliveries, hasNextPage, endCursor } | null, error }
  editing: null,
  deleting: null,
};

// ---------------------------------------------------------------- the session (shell.js signs in and out)

async function start(session) {
  state.session = session;
  await loadWebhooks();
}

function stop() {
  Object.assign(state, { session: null, webhooks: [], logs: new Map(), editing: null, deleting: null });
  $('webhook-list').replaceChildren();
  pageAlert('');
  announce('');
}

async function loadWebhooks() {
  try {
    state.webhooks = (await state.session.call(LIST_QUERY)).account.webhooks;
    pageAlert('');
  } catch (error) {
    state.webhooks = [];
    pageAlert(describeError(error, { doing: 'viewing', ...WHAT }));
  }
  render();
}

// ---------------------------------------------------------------- the list

function eventList(events) {
  return el('ul', { class: 'events' }, ...events.map((name) => el('li', {}, el('code', { text: name }))));
}

function webhookCard(webhook, index) {
  const titleId = `webhook-${index}-title`;  // ids of webhooks are opaque: not used in the DOM's ids
  const logId = `webhook-${index}-log`;
  const log = state.logs.get(webhook.id) || { open: false };
  const facts = el('dl', { class: 'facts' },
    el('dt', { text: 'Events' }), el('dd', {}, eventList(webhook.events)),
    el('dt', { text: 'Created' }), el('dd', {}, timeElement(webhook.createdAt, '')),
  );
  const failing = webhook.failingSince
    ? el('p', { class: 'warning' }, 'Failing since ', timeElement(webhook.failingSince, ''),
      ': deliveries gave up after 24 hours of retries. The next successful delivery clears this.')
    : null;
  const toggle = el('button', {
    type: 'button', class: 'secondary small', 'data-action': 'log', 'data-id': webhook.id,
    'aria-expanded': String(log.open), 'aria-controls': logId,
  }, log.open ? 'Hide delivery log' : 'Delivery log', el('span', { class: 'visually-hidden', text: ` of ${webhook.url}` }));
  const actions = el('div', { class: 'actions' }, toggle,
    el('button', { type: 'button', class: 'secondary small', 'data-action': 'edit', 'data-id': webhook.id, 'aria-label': `Edit ${webhook.url}`, text: 'Edit' }),
    el('button', { type: 'button', class: 'danger-outline small', 'data-action': 'delete', 'data-id': webhook.id, 'aria-label': `Delete ${webhook.url}`, text: 'Delete' }));
  return el('article', { class: 'panel webhook', 'data-webhook-id': webhook.id, 'aria-labelledby': titleId },
    el('div', { class: 'webhook-head' },
      el('h2', { id: titleId }, el('code', { class: 'wrap', text: webhook.url })), actions),
    webhook.description ? el('p', { class: 'webhook-description', text: webhook.description }) : null,
    failing, facts,
    el('div', { id: logId, class: 'delivery-log', hidden: !log.open }, log.open ? deliveryLog(webhook, log) : null));
}

function render() {
  $('webhook-list').replaceChildren(...state.webhooks.map(webhookCard));
  $('empty-list').hidden = state.webhooks.length !== 0 || !$('page-alert').hidden;
}

function renderCard(webhookId) {
  const index = state.webhooks.findIndex((webhook) => webhook.id === webhookId);
  const old = document.querySelector(`article[data-webhook-id="${CSS.escape(webhookId)}"]`);
  if (index < 0 || !old) return;
  const focused = document.activeElement && old.contains(document.activeElement)
    ? [document.activeElement.dataset.action, document.activeElement.dataset.id] : null;
  const card = webhookCard(state.webhooks[index], index);
  old.replaceWith(card);
  if (focused && focused[0]) {
    const again = card.querySelector(`[data-action="${focused[0]}"][data-id="${CSS.escape(focused[1])}"]`);
    if (again) again.focus();
  }
}

// ---------------------------------------------------------------- the delivery log

function statusCell(delivery) {
  const label = el('span', { class: `state delivery-${delivery.status.toLowerCase()}`, text: STATUS_LABELS[delivery.status] || delivery.status });
  const more = [];
  if (delivery.status === 'PENDING' && delivery.nextAttemptAt) more.push(el('span', { class: 'muted block' }, 'next try ', timeElement(delivery.nextAttemptAt, '')));
  if (delivery.error) more.push(el('span', { class: 'muted block', text: delivery.error }));
  return cell('Status', label, ...more);
}

function deliveryRow(webhook, delivery) {
  return el('tr', { 'data-delivery-id': delivery.id },
    cell('When', timeElement(delivery.lastAttemptAt || delivery.createdAt, '')),
    cell('Event', el('code', { text: delivery.eventType }), el('span', { class: 'muted block small-text', text: delivery.eventId })),
    statusCell(delivery),
    cell('Attempts', String(delivery.attempts)),
    cell('Response', delivery.responseCode === null ? el('span', { class: 'muted', text: 'none' }) : String(delivery.responseCode)),
    cell('Latency', delivery.latencyMs === null ? el('span', { class: 'muted', text: '–' }) : `${delivery.latencyMs} ms`),
    cell('Actions', el('button', {
      type: 'button', class: 'secondary small', 'data-action': 'redeliver', 'data-id': delivery.id, 'data-webhook': webhook.id,
      'aria-label': `Redeliver ${delivery.eventType} (${delivery.eventId})`, text: 'Redeliver',
    })),
  );
}

function deliveryLog(webhook, log) {
  if (log.error) return el('p', { class: 'form-error', role: 'alert', text: log.error });
  if (!log.page) return el('p', { class: 'muted', text: 'Loading the delivery log…' });
  const head = el('div', { class: 'log-head' },
    el('h3', { text: 'Delivery log' }),
    el('button', { type: 'button', class: 'secondary small', 'data-action': 'refresh', 'data-id': webhook.id, 'aria-label': `Refresh the delivery log of ${webhook.url}`, text: 'Refresh' }));
  if (log.page.deliveries.length === 0) {
    return el('div', {}, head, el('p', { class: 'empty', text: 'Nothing sent yet: events the webhook subscribes to appear here.' }));
  }
  const table = el('table', { class: 'list deliveries' },
    el('caption', { class: 'visually-hidden', text: `Deliveries to ${webhook.url}, newest first` }),
    el('thead', {}, el('tr', {}, ...['When', 'Event', 'Status', 'Attempts', 'Response', 'Latency'].map((name) => el('th', { scope: 'col', text: name })),
      el('th', { scope: 'col' }, el('span', { class: 'visually-hidden', text: 'Actions' })))),
    el('tbody', {}, ...log.page.deliveries.map((delivery) => deliveryRow(webhook, delivery))));
  const index = log.cursors.length - 1;
  const pager = el('nav', { class: 'pager', 'aria-label': `Pages of the delivery log of ${webhook.url}` },
    el('button', { type: 'button', class: 'secondary small', 'data-action': 'newer', 'data-id': webhook.id, disabled: index === 0, text: '← Newer' }),
    el('span', { class: 'muted', text: `Page ${index + 1}` }),
    el('button', { type: 'button', class: 'secondary small', 'data-action': 'older', 'data-id': webhook.id, disabled: !log.page.hasNextPage, text: 'Older →' }));
  return el('div', {}, head, el('div', { class: 'table-wrap' }, table), pager);
}

async function loadLog(webhookId, cursors) {
  const log = state.logs.get(webhookId) || { open: true, cursors: [null], page: null, error: '' };
  state.logs.set(webhookId, log);
  try {
    const data = await state.session.call(DELIVERIES_QUERY, { id: webhookId, first: LOG_PAGE_SIZE, after: cursors[cursors.length - 1] });
    if (!data.node) throw new ApiError('NOT_FOUND', 'webhook not found');
    const connection = data.node.deliveries;
    log.page = { deliveries: connection.edges.map((edge) => edge.node), ...connection.pageInfo };
    log.cursors = cursors;
    log.error = '';
  } catch (error) {
    log.error = describeError(error, { doing: 'viewing', ...WHAT });
  }
  renderCard(webhookId);
  return log;
}

async function toggleLog(webhookId) {
  const log = state.logs.get(webhookId);
  if (log && log.open) {
    log.open = false;
    renderCard(webhookId);
    return;
  }
  state.logs.set(webhookId, { open: true, cursors: [null], page: null, error: '' });
  renderCard(webhookId);
  await loadLog(webhookId, [null]);
}

function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

async function redeliver(button) {
  const webhookId = button.dataset.webhook;
  button.disabled = true;
  try {
    await state.session.call(REDELIVER_MUTATION, { id: button.dataset.id });
    announce('Sent again as a new delivery; it is at the top of the log.');
    let log = await loadLog(webhookId, [null]);
    for (const wait of REFRESHES) {  // the worker sends it within moments: show how it went
      if (!log.page || !log.page.deliveries.some((delivery) => delivery.status === 'PENDING')) break;
      await sleep(wait);
      if (!state.session || !(state.logs.get(webhookId) || {}).open) break;
      log = await loadLog(webhookId, [null]);
    }
  } catch (problem) {
    pageAlert(describeError(problem, WHAT));
    button.disabled = false;
    if (problem instanceof ApiError && problem.code === 'NOT_FOUND') await loadWebhooks();
  }
}

// ---------------------------------------------------------------- create and edit

function eventChoices(events) {
  return FAMILIES.map(([name, label, covers], index) => {
    const id = `event-${index}`;
    return el('div', { class: 'check' },
      el('input', { type: 'checkbox', id, value: name, 'data-event': '1', checked: events.includes(name), 'aria-describedby': `${id}-hint` }),
      el('label', { for: id }, `${label} `, el('code', { text: name })),
      el('span', { id: `${id}-hint`, class: 'hint', text: covers }));
  });
}

function openWebhookForm(webhook, opener) {
  state.editing = webhook;
  $('webhook-form').reset();
  for (const id of ['webhook-form-error', 'webhook-url-error', 'webhook-events-error']) $(id).textContent = '';
  $('webhook-url').removeAttribute('aria-invalid');
  $('webhook-dialog-title').textContent = webhook ? 'Edit webhook' : 'New webhook';
  $('webhook-submit').textContent = webhook ? 'Save changes' : 'Create webhook';
  const events = webhook ? webhook.events : ['service_token.*'];
  const known = new Set(FAMILIES.map(([name]) => name));
  $('event-choices').replaceChildren(...eventChoices(events));
  $('webhook-other-events').value = events.filter((name) => !known.has(name)).join(', ');
  $('webhook-url').value = webhook ? webhook.url : '';
  $('webhook-description').value = webhook ? webhook.description : '';
  openDialog($('webhook-dialog'), opener);
  $('webhook-url').focus();
}

function readWebhookForm() {
  const url = $('webhook-url').value.trim();
  if (!url) throw new FormProblem('Give the endpoint’s URL.');
  const chosen = [...$('event-choices').querySelectorAll('input[data-event]:checked')].map((box) => box.value);
  const typed = $('webhook-other-events').value.split(/[\s,]+/).filter(Boolean);
  const events = [...new Set([...chosen, ...typed])];
  if (events.length === 0) throw new FormProblem('Choose at least one family of events, or type an event type.');
  return { url, events, description: $('webhook-description').value.trim() };
}

// The server's BAD_USER_INPUT names what it refuses: shown next to the field it is about.
function showInputProblem(problem) {
  const message = describeError(problem, WHAT);
  const text = problem instanceof ApiError ? problem.serverMessage : '';
  if (problem instanceof ApiError && problem.code === 'BAD_USER_INPUT' && /^events\b/.test(text)) {
    $('webhook-events-error').textContent = message;
  } else if (problem instanceof ApiError && problem.code === 'BAD_USER_INPUT' && /\burl\b|https|address/i.test(text)) {
    $('webhook-url-error').textContent = message.replace(/^Url\b/, 'The URL');  // the server names the field "url"
    $('webhook-url').setAttribute('aria-invalid', 'true');
    $('webhook-url').focus();
  } else {
    $('webhook-form-error').textContent = message;
  }
}

async function submitWebhookForm(event) {
  event.preventDefault();
  for (const id of ['webhook-form-error', 'webhook-url-error', 'webhook-events-error']) $(id).textContent = '';
  $('webhook-url').removeAttribute('aria-invalid');
  let values;
  try {
    values = readWebhookForm();
  } catch (problem) {
    if (!(problem instanceof FormProblem)) throw problem;
    $('webhook-form-error').textContent = problem.message;
    return;
  }
  const form = $('webhook-form');
  const dialog = $('webhook-dialog');
  busy(form, true);
  try {
    if (state.editing === null) {
      const created = (await state.session.call(CREATE_MUTATION, values)).createWebhook;
      const opener = dialog.returnFocusTo;
      dialog.returnFocusTo = null;
      dialog.close();
      showSecret({
        title: 'Webhook created', opener, secret: created.secret,
        subject: `Signing secret of the webhook to ${created.webhook.url}`,
        noun: 'signing secret', label: 'Signing secret', kept: 'tokengate keeps it sealed, to sign every delivery',
        note: 'Store it with your receiver: it verifies each request’s Tokengate-Signature header with it.',
      });
      announce(`Webhook to ${created.webhook.url} created.`);
    } else {
      const saved = (await state.session.call(UPDATE_MUTATION, { id: state.editing.id, ...values })).updateWebhook;
      dialog.close();
      announce(`Webhook to ${saved.url} saved.`);
    }
    await loadWebhooks();
  } catch (problem) {
    showInputProblem(problem);
    if (problem instanceof ApiError && problem.code === 'NOT_FOUND') await loadWebhooks();
  } finally {
    busy(form, false);
  }
}

// ---------------------------------------------------------------- delete

function openDelete(webhook, opener) {
  state.deleting = webhook;
  $('delete-title').textContent = 'Delete this webhook?';
  $('delete-which').textContent = `The webhook to ${webhook.url}${webhook.description ? ` (${webhook.description})` : ''}, created ${dateFormat.format(new Date(webhook.createdAt))}.`;
  $('delete-error').textContent = '';
  openDialog($('delete-dialog'), opener);
  $('delete-cancel').focus();  // the safe choice first
}

async function confirmDelete() {
  const dialog = $('delete-dialog');
  await runInDialog(dialog, $('delete-error'), async () => {
    const deleted = (await state.session.call(DELETE_MUTATION, { id: state.deleting.id })).deleteWebhook;
    dialog.returnFocusTo = $('new-webhook');
    dialog.close();
    state.logs.delete(deleted.id);
    announce(`Webhook to ${deleted.url} deleted.`);
    await loadWebhooks();
  }, { words: WHAT, reload: loadWebhooks });
}

// ---------------------------------------------------------------- wiring

function wire() {
  const backToList = { fallback: () => $('new-webhook') };
  wireDialog($('webhook-dialog'), { ...backToList, onClose: () => { state.editing = null; } });
  wireSecretDialog(backToList);
  wireDialog($('delete-dialog'), { ...backToList, onClose: () => { state.deleting = null; } });
  $('new-webhook').addEventListener('click', (event) => openWebhookForm(null, event.currentTarget));
  $('webhook-form').addEventListener('submit', submitWebhookForm);
  $('delete-confirm').addEventListener('click', confirmDelete);
  $('webhook-list').addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const { action, id } = button.dataset;
    const webhook = state.webhooks.find((candidate) => candidate.id === (button.dataset.webhook || id));
    if (!webhook) return;
    const log = state.logs.get(webhook.id);
    if (action === 'edit') openWebhookForm(webhook, button);
    else if (action === 'delete') openDelete(webhook, button);
    else if (action === 'log') await toggleLog(webhook.id);
    else if (action === 'refresh') await loadLog(webhook.id, log ? log.cursors : [null]);
    else if (action === 'older' && log && log.page && log.page.hasNextPage) await loadLog(webhook.id, [...log.cursors, log.page.endCursor]);
    else if (action === 'newer' && log && log.cursors.length > 1) await loadLog(webhook.id, log.cursors.slice(0, -1));
    else if (action === 'redeliver') await redeliver(button);
  });
}

wire();
startSettingsPage({ start, stop });

// Passkey ceremonies from the pages: the server's options (JSON, base64url) become what navigator.credentials
// takes, and the browser's credential becomes JSON for the server. Every call goes to this origin with the
// pages' CSRF header; the session cookie it sets is HttpOnly: no script here ever sees it.

const CSRF = { 'X-Tokengate-CSRF': '1' };

export function fromBase64url(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)).buffer;
}

export function toBase64url(buffer) {
  let binary = '';
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json', ...CSRF },
      body: JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new Error('Could not reach tokengate. Check your network connection and try again.');
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (!response.ok) {
    const first = answer && Array.isArray(answer.errors) ? answer.errors[0] : null;
    const message = first && typeof first.message === 'string' ? first.message : `HTTP ${response.status}`;
    throw new Error(message.charAt(0).toUpperCase() + message.slice(1) + (/[.!?]$/.test(message) ? '' : '.'));
  }
  return answer;
}

function creationOptions(options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    user: { ...options.user, id: fromBase64url(options.user.id) },
    excludeCredentials: (options.excludeCredentials || []).map((c) => ({ ...c, id: fromBase64url(c.id) })),
  };
}

function requestOptions(options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    allowCredentials: (options.allowCredentials || []).map((c) => ({ ...c, id: fromBase64url(c.id) })),
  };
}

function credentialJSON(credential) {
  const response = credential.response;
  const json = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
    response: { clientDataJSON: toBase64url(response.clientDataJSON) },
  };
  if (response.attestationObject) {
    json.response.attestationObject = toBase64url(response.attestationObject);
    if (response.getTransports) json.response.transports = response.getTransports();
  } else {
    json.response.authenticatorData = toBase64url(response.authenticatorData);
    json.response.signature = toBase64url(response.signature);
    if (response.userHandle) json.response.userHandle = toBase64url(response.userHandle);
  }
  return json;
}

function ceremonyError(error) {
  if (error && error.name === 'NotAllowedError') {
    return new Error('The passkey request was cancelled or timed out. Try again.');
  }
  return error instanceof Error ? error : new Error(String(error));
}

// Register a passkey from an invitation; signed in when it resolves.
export async function registerPasskey(invitation) {
  if (!window.PublicKeyCredential) throw new Error('This browser does not support passkeys.');
  const start = await post('/sign-in/invitation/options', { invitation });
  let credential;
  try {
    credential = await navigator.credentials.create({ publicKey: creationOptions(start.publicKey) });
  } catch (error) {
    throw ceremonyError(error);
  }
  return post('/sign-in/invitation/verify', { invitation, ceremony: start.ceremony, credential: credentialJSON(credential) });
}

// Sign in with a passkey this device (or a security key) holds.
export async function signInWithPasskey() {
  if (!window.PublicKeyCredential) throw new Error('This browser does not support passkeys.');
  const start = await post('/sign-in/passkey/options', {});
  let credential;
  try {
    credential = await navigator.credentials.get({ publicKey: requestOptions(start.publicKey) });
  } catch (error) {
    throw ceremonyError(error);
  }
  return post('/sign-in/passkey/verify', { ceremony: start.ceremony, credential: credentialJSON(credential) });
}

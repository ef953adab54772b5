// The settings pages' GraphQL client: same origin, the signed-in token in Authorization (a pasted token) or
// the browser session's HttpOnly cookie with the pages' CSRF header (token null: signed in with a passkey),
// every failure turned into an ApiError whose code says what happened and describeError() into words.

const IP_REFUSED_MESSAGE = 'Forbidden: Access denied';

export class ApiError extends Error {
  constructor(code, serverMessage, { status = 0, requestId = null, retryAfter = null } = {}) {
    super(`${code}: ${serverMessage}`);
    this.name = 'ApiError';
    this.code = code;
    this.serverMessage = serverMessage;
    this.status = status;
    this.requestId = requestId;
    this.retryAfter = retryAfter;  // seconds, when the server asked to wait (429)
  }
}

export async function gql(token, query, variables = {}) {
  let response;
  const headers = { 'Content-Type': 'application/json', 'Accept': 'application/json' };
  if (token === null) headers['X-Tokengate-CSRF'] = '1';
  else headers['Authorization'] = `Bearer ${token}`;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
      cache: 'no-store',
      credentials: token === null ? 'same-origin' : 'omit',
    });
  } catch {
    throw new ApiError('NETWORK', 'the request did not reach the server');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const first = body && Array.isArray(body.errors) && body.errors.length > 0 ? body.errors[0] : null;
  const message = first && typeof first.message === 'string' ? first.message : '';
  const requestId = response.headers.get('X-Request-Id');
  if (response.status === 401) {
    throw new ApiError('UNAUTHENTICATED', message, { status: 401, requestId });
  }
  if (response.status === 403 && message === IP_REFUSED_MESSAGE) {
    throw new ApiError('IP_REFUSED', message, { status: 403, requestId });
  }
  if (response.status === 429) {
    const seconds = Number.parseInt(response.headers.get('Retry-After') || '', 10);
    throw new ApiError('RATE_LIMITED', message, { status: 429, requestId, retryAfter: Number.isNaN(seconds) ? 1 : seconds });
  }
  if (!response.ok || body === null) {
    throw new ApiError('HTTP', message, { status: response.status, requestId });
  }
  if (first) {
    const code = (first.extensions && first.extensions.code) || 'UNKNOWN';
    throw new ApiError(code, message, { status: response.status, requestId });
  }
  return body.data;
}

export function sentence(text) {
  const trimmed = (text || '').trim();
  if (!trimmed) return '';
  const capitalised = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capitalised) ? capitalised : `${capitalised}.`;
}

const MISSING_TOKEN = 'This token no longer exists; it may have been deleted elsewhere. The list has been refreshed.';

// What to tell a person; `doing` is the activity refused ("managing", "viewing"), `what` its object, `missing`
// what NOT_FOUND means on that page.
export function describeError(error, { doing = 'managing', what = 'service tokens', missing = MISSING_TOKEN } = {}) {
  if (!(error instanceof ApiError)) {
    return 'Something went wrong in this page. Reload it and try again.';
  }
  switch (error.code) {
    case 'NETWORK':
      return 'Could not reach tokengate. Check your network connection and try again.';
    case 'UNAUTHENTICATED':
      return 'Your sign-in is no longer valid (the token is unknown, expired or deleted). Please sign in again.';
    case 'IP_REFUSED':
      return "Your network address is not allowed by this account's IP restrictions. "
        + 'Connect from an allowed network, or ask an account admin to allow your address.';
    case 'FORBIDDEN':
      return `Your account role doesn't allow ${doing} ${what}: ${sentence(error.serverMessage)}`;
    case 'PLAN_RESTRICTED':
      return `Not available on this account's plan: ${sentence(error.serverMessage)}`;
    case 'BAD_USER_INPUT':
      return sentence(error.serverMessage);
    case 'NOT_FOUND':
      return missing;
    case 'RECENT_SIGN_IN_REQUIRED':
      return 'Sign in again to do this: it is a sensitive change, and your sign-in is not recent. '
        + 'Use "Sign in again" at the top of the page, then try once more.';
    case 'RATE_LIMITED':
      return `tokengate is receiving too many requests from you: wait ${error.retryAfter || 1} s and try again.`;
    case 'INTERNAL_SERVER_ERROR':
      return 'Something went wrong on the server. Try again; if it keeps happening, give your administrator '
        + `this request id: ${error.requestId || 'unknown'}.`;
    default:
      return `tokengate answered with an unexpected error (HTTP ${error.status || '?'}). Try again later.`;
  }
}

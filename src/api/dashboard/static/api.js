// The dashboard's one way to the daemon: the same HTTP API and JSON every
// other client uses. The session cookie travels by itself (HttpOnly, the
// script never sees it); the CSRF token is kept in this module's memory
// only, and sent with every request that changes something.

let csrfToken = null;
const signedOutListeners = [];

export function setCsrf(token) { csrfToken = token; }

/** Calls `f` when a request finds the session gone. */
export function onSignedOut(f) { signedOutListeners.push(f); }

/** An API answer that was not a success, with Mux's error message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** `method path` with an optional JSON body; the parsed JSON answer. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `reeld did not answer (${e.message})`);
  }
  if (response.status === 204) return null;
  let json = null;
  try { json = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const message = json?.error?.messages?.join(' ') ?? `HTTP ${response.status}`;
    if (response.status === 401 && !path.startsWith('/ui/session')) {
      for (const f of signedOutListeners) f();
    }
    throw new ApiError(response.status, message);
  }
  return json;
}

export const get = (path) => api('GET', path);

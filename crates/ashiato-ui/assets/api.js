// Fetches from /api/v1. Errors carry the HTTP status so pages can tell
// "not there" (404) from "broken".

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Builds a query string from an object, skipping empty values; arrays repeat. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (Array.isArray(value)) {
      for (const item of value) if (item !== '' && item != null) search.append(key, item);
    } else if (value !== '' && value != null && value !== false) {
      search.set(key, value === true ? 'true' : String(value));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

async function request(method, path, params, body) {
  // the server refuses cookie-authenticated writes without this header,
  // which a cross-site form cannot send
  const options = { method, headers: { accept: 'application/json', 'x-ashiato-csrf': '1' } };
  if (body !== undefined) {
    options.headers['content-type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}${query(params)}`, options);
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  if (!response.ok) {
    const message = (json && json.error) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return json;
}

export const api = {
  get: (path, params) => request('GET', path, params),
  patch: (path, body) => request('PATCH', path, undefined, body),
  /** `{auth, logged_in, name?, scope?}` of the web session. */
  session: () => request('GET', '/session'),
  /** Trades a read or admin token for the session cookie. */
  login: (token) => request('POST', '/session', undefined, { token }),
  logout: () => request('DELETE', '/session'),
};

// Calls to the gateway's REST API with the pasted bearer token, and the
// words that tell a person what went wrong.

const TOKEN_KEY = 'segments.token';

// The token lives in sessionStorage only: gone when the tab closes.
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  // status 0: the gateway could not be reached.
  constructor(status, type, infos) {
    super(infos.join('; ') || type);
    this.status = status;
    this.type = type;
    this.infos = infos;
  }
}

// get('/segments/list', {pageSize: 10}) answers the decoded JSON body, or
// throws an ApiError. Array values repeat the parameter; empty ones are left
// out.
export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of [].concat(value)) {
      if (v !== undefined && v !== null && v !== '') query.append(key, String(v));
    }
  }
  const bearer = token.get();
  if (!bearer) throw new ApiError(401, 'unauthenticated', ['no token yet']);
  let response;
  try {
    response = await fetch(query.size ? `${path}?${query}` : path, {
      headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' },
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'unreachable', []);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, or a cut connection
  }
  if (!response.ok) {
    const errors = Array.isArray(body?.errors) ? body.errors : [];
    throw new ApiError(response.status, errors[0]?.type || `http_${response.status}`,
      errors.map((e) => e.info).filter(Boolean));
  }
  if (body === null) throw new ApiError(response.status, 'bad_answer', ['the answer is not JSON']);
  return body;
}

// describe(err, 'list segments') is one sentence for the page; `action`
// completes "your token's role cannot ...".
export function describe(err, action) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err.message || err}`;
  const info = err.infos.join('; ');
  switch (err.status) {
    case 0: return 'The gateway is unreachable: check that it is running, then try again.';
    case 401: return err.infos[0] === 'no token yet'
      ? 'Paste a bearer token above to use the console.'
      : `Your token was refused (${info || 'unauthenticated'}). Paste a new token above.`;
    case 403: return `Your token's role cannot ${action}: ${info || 'permission denied'}.`;
    case 404: return `Not found: ${info || 'no such thing'}.`;
    case 501: return `This server cannot ${action} yet: it does not implement the call.`;
    case 503: return 'The service is unavailable right now; try again in a moment.';
    case 400: return `Not accepted: ${info}.`;
    default: return `${err.type}: ${info || 'error'} (HTTP ${err.status}).`;
  }
}

// The items of every page of a paged list call (`field` of each page), at
// most maxPages of them; truncated when more were left.
export async function all(path, params, field, maxPages = 20) {
  const items = [];
  let pageToken = '';
  for (let i = 0; i < maxPages; i++) {
    const page = await get(path, { ...params, pageToken });
    items.push(...(page[field] || []));
    pageToken = page.nextPageToken || '';
    if (!pageToken) break;
  }
  return { items, truncated: pageToken !== '' };
}

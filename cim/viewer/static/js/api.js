// The API, from the page's own origin: JSON in and out, problem+json errors as messages, the API key when one is set.

const KEY = 'cim-api-key';

export function apiKey() {
  return sessionStorage.getItem(KEY) || '';
}

export function setApiKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

export function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, 'X-API-Key': key } : extra;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function answer(response) {
  if (response.ok) return response.json();
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    detail = body.detail || body.title || detail;
  } catch { /* not JSON */ }
  throw new ApiError(response.status, detail);
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function get(path, params) {
  return answer(await fetch(path + query(params), { headers: headers({ Accept: 'application/json, application/geo+json' }) }));
}

export async function post(path, body, params) {
  return answer(await fetch(path + query(params), {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json', Accept: 'application/json, application/geo+json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  }));
}

export function wsUrl(path) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (apiKey()) url.searchParams.set('api_key', apiKey());
  return url.toString();
}

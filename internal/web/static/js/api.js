// The REST API with the signed-in token. The token lives in this tab's
// session storage and travels only in the Authorization header, which a
// browser never adds by itself: another site cannot make requests that
// act for the person (no cookie is ever set or sent).

const KEY = 'gpufleet.token';

export function token() {
  return sessionStorage.getItem(KEY) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

function headers(extra) {
  const hd = new Headers(extra);
  const t = token();
  if (t) hd.set('Authorization', 'Bearer ' + t);
  return hd;
}

async function failure(res) {
  const text = await res.text();
  try {
    const e = JSON.parse(text).error;
    if (e) return new ApiError(res.status, e.code, e.message, e.field);
  } catch {
    // Not the API's error body: report the status line.
  }
  return new ApiError(res.status, 'http', `${res.status} ${res.statusText}`);
}

// request calls the API and returns the decoded JSON (or text).
export async function request(method, path, { body, type, extraHeaders, signal } = {}) {
  const hd = headers(extraHeaders);
  if (type) hd.set('Content-Type', type);
  let res;
  try {
    res = await fetch(path, { method, headers: hd, body, signal, cache: 'no-store', credentials: 'omit', redirect: 'error' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'the server cannot be reached');
  }
  if (!res.ok) throw await failure(res);
  const ct = res.headers.get('Content-Type') || '';
  return ct.startsWith('application/json') ? res.json() : res.text();
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, opts) => request('POST', path, opts);

// query builds a path with the parameters that are set.
export function query(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const qs = q.toString();
  return qs ? `${path}?${qs}` : path;
}

// stream follows a server-sent event stream with the bearer header
// (EventSource cannot send one): it reads the answer as it comes, calls
// onEvent(type, data, id) for each event, and reconnects after a drop
// with the last id it saw, waiting longer after each failure (up to 15 s).
// onState gets 'open', 'retrying' or 'closed'. It stops when signal
// aborts, when the stream ends by itself and once is set (a log that is
// over), or when the token is refused. path may be a function, called at
// each connection (a log resumes from the offset it reached).
export function stream(path, { onEvent, onState = () => {}, signal, once = false }) {
  let lastId = '';
  let backoff = 1000;
  const run = async () => {
    while (!signal.aborted) {
      let ended = false;
      try {
        const hd = headers({ Accept: 'text/event-stream' });
        if (lastId) hd.set('Last-Event-ID', lastId);
        const url = typeof path === 'function' ? path() : path;
        const res = await fetch(url, { headers: hd, signal, cache: 'no-store', credentials: 'omit', redirect: 'error' });
        if (!res.ok) {
          const err = await failure(res);
          if (res.status === 401 || res.status === 403 || res.status === 404 || res.status === 422) {
            onState('closed', err);
            return;
          }
          throw err;
        }
        onState('open');
        backoff = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        let ev = { type: 'message', data: [], id: '' };
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).replace(/\r$/, '');
            buf = buf.slice(nl + 1);
            if (line === '') {
              if (ev.data.length > 0) {
                if (ev.id) lastId = ev.id;
                let data = ev.data.join('\n');
                try {
                  data = JSON.parse(data);
                } catch {
                  // Not JSON: hand the text over.
                }
                onEvent(ev.type, data, ev.id);
              }
              ev = { type: 'message', data: [], id: '' };
              continue;
            }
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const name = colon < 0 ? line : line.slice(0, colon);
            const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (name === 'event') ev.type = val;
            else if (name === 'data') ev.data.push(val);
            else if (name === 'id') ev.id = val;
          }
        }
        ended = true;
      } catch (e) {
        if (signal.aborted) return;
      }
      if (ended && once) {
        onState('closed');
        return;
      }
      onState('retrying');
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
  };
  run();
}

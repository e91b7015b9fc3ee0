// Calls to the service's API from the dashboard: the browser session's token on every call
// (live streams included: they are read with fetch, so the token travels in a header, never in
// a URL), errors as values with the API's own message.

const TOKEN_KEY = 'rfuav-token';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const tokenWaiters = new Set();

/** Resolves once the user has entered a token (the header form asks for one). */
function askForToken() {
  const form = document.getElementById('token-form');
  form.hidden = false;
  document.getElementById('token').focus();
  return new Promise((resolve) => tokenWaiters.add(resolve));
}

export function installTokenForm() {
  const form = document.getElementById('token-form');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const input = document.getElementById('token');
    setToken(input.value.trim());
    input.value = '';
    form.hidden = true;
    for (const resolve of tokenWaiters) resolve();
    tokenWaiters.clear();
  });
}

function headers(extra = {}) {
  const h = { accept: 'application/json', ...extra };
  const t = token();
  if (t) h.authorization = `Bearer ${t}`;
  return h;
}

/** JSON from the API; a 401 asks for a token and tries again; other errors throw ApiError. */
export async function api(path, { method = 'GET', body } = {}) {
  for (;;) {
    const res = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401) {
      setToken('');
      await askForToken();
      continue;
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { message: text };
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }
}

/** Binary content (an image) from the API, with the token; errors throw ApiError as api() does. */
export async function apiBlob(path, { signal } = {}) {
  for (;;) {
    const res = await fetch(path, { headers: headers({ accept: '*/*' }), signal });
    if (res.status === 401) {
      setToken('');
      await askForToken();
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    return res.blob();
  }
}

/**
 * Follows a Server-Sent Events stream: `onEvent({id, event, data})` per event. A dropped
 * connection is resumed from the last id seen (Last-Event-ID), so nothing is missed or repeated.
 * Returns a function that stops following. `onState('live' | 'reconnecting' | 'ended')`.
 */
export function follow(path, { onEvent, onState = () => {} }) {
  const abort = new AbortController();
  let lastId = null;
  let stopped = false;
  const run = async () => {
    let delay = 500;
    while (!stopped) {
      let ended = false;
      try {
        const h = headers({ accept: 'text/event-stream' });
        if (lastId !== null) h['last-event-id'] = lastId;
        const res = await fetch(path, { headers: h, signal: abort.signal });
        if (res.status === 401) {
          setToken('');
          await askForToken();
          continue;
        }
        if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
        onState('live');
        delay = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const ev = parseEvent(block);
            if (!ev) continue;
            if (ev.id !== null) lastId = ev.id;
            if (onEvent(ev) === 'end') ended = true;
          }
        }
        // The server closes the stream after the final status: nothing more will come.
        if (ended) break;
      } catch (err) {
        if (stopped) break;
        if (err instanceof ApiError && err.status === 404) {
          onState('ended', err);
          return;
        }
      }
      if (stopped) break;
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
    onState('ended');
  };
  void run();
  return () => {
    stopped = true;
    abort.abort();
  };
}

function parseEvent(block) {
  let id = null;
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return null;
  let parsed;
  try {
    parsed = JSON.parse(data.join('\n'));
  } catch {
    parsed = data.join('\n');
  }
  return { id, event, data: parsed };
}

// HTTP for the page: the stored bearer token, the error envelope, and server-sent events read
// from a fetch body (EventSource can only GET, and sending a message is a POST).

export const KEYS = {
  token: "chatgate.token",
  session: "chatgate.session",
  assistant: "chatgate.assistant",
};

// localStorage can throw (private modes, full quota): the page still works without it.
export const storage = {
  get(key) {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      if (value === null || value === undefined) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch {
      /* not kept: the next visit starts fresh */
    }
  },
};

export class ApiError extends Error {
  constructor({ status, code, message, traceId = null, retryAfter = null, body = null }) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.traceId = traceId;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON: a proxy's page, say */
  }
  const error = (body && body.error) || {};
  return new ApiError({
    status: response.status,
    code: error.code || `http_${response.status}`,
    message: error.message || response.statusText,
    traceId: error.trace_id || response.headers.get("X-Trace-Id"),
    retryAfter: response.headers.get("Retry-After"),
    body,
  });
}

/** fetch with the token and JSON; throws ApiError for a non-2xx answer or no answer at all.
 * `cache: "no-cache"` lets the browser keep an answer and ask again with its ETag each time
 * (a history page: 304 when it has not changed); nothing else is kept. */
export async function request(
  path,
  { method = "GET", body, signal, accept, headers: extra, cache = "no-store" } = {},
) {
  const headers = { ...extra, Accept: accept || "application/json" };
  const token = storage.get(KEYS.token);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache,
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError({ status: 0, code: "network_error", message: String(err) });
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJSON(path, options) {
  const response = await request(path, options);
  return response.json();
}

export async function sendJSON(method, path, body, options = {}) {
  const response = await request(path, { ...options, method, body });
  if (response.status === 204) return null;
  return response.json();
}

function parseBlock(block) {
  const event = { event: "message", id: null, data: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event.event = value;
    else if (field === "id") event.id = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  event.data = JSON.parse(data.join("\n"));
  return event;
}

/** Yields {event, id, data} from a text/event-stream body as the bytes arrive. */
export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      // Normalise line ends, but keep a trailing "\r" until we know whether "\n" follows.
      buffer = (buffer + value).replace(/\r\n|\r(?!$)/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseBlock(block);
        if (event) yield event;
      }
    }
    const last = parseBlock(buffer.replace(/\r/g, "\n").trim());
    if (last) yield last;
  } finally {
    reader.releaseLock();
  }
}

/** A random UUID, even where crypto.randomUUID is missing (plain-HTTP pages on a LAN). */
export function uuid() {
  if (globalThis.crypto && crypto.randomUUID) {
    try {
      return crypto.randomUUID();
    } catch {
      /* insecure context: fall through */
    }
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

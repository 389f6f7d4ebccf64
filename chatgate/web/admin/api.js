// The console's HTTP: the chat page's (../api.js: the stored token, the error envelope), plus
// the few calls only the console makes.

import { ApiError, KEYS, errorFrom, getJSON, request, sendJSON, storage } from "../api.js";

export { ApiError, KEYS, getJSON, sendJSON, storage };

/** A path with its query: empty values are left out. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** A multipart upload (a knowledge base's document): the browser sets the boundary. */
export async function upload(path, form) {
  const headers = { Accept: "application/json" };
  const token = storage.get(KEYS.token);
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: form, cache: "no-store" });
  } catch (err) {
    throw new ApiError({ status: 0, code: "network_error", message: String(err) });
  }
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

/** A header's value as its UTF-8 bytes, one character each: fetch sends only ISO-8859-1 in a
 * header, and chatgate reads a header's bytes back as UTF-8 (a user id in Chinese, say). */
function headerBytes(text) {
  return String.fromCharCode(...new TextEncoder().encode(text));
}

/** A user's conversation, read by an admin for that user (the history's newest page). */
export async function conversationOf(sessionId, userId, signal) {
  return getJSON(`/v1/history/${encodeURIComponent(sessionId)}?limit=200`, {
    signal,
    headers: { "X-Chatgate-User": headerBytes(userId) },
  });
}

/** Whether the caller may use the console: "admin", "signin" (no or a refused token) or
 * "denied" (signed in, not an admin). Anything else is thrown. */
export async function whoAmI() {
  try {
    await request("/v1/admin/assistants");
    return "admin";
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return "signin";
    if (error instanceof ApiError && error.status === 403) return "denied";
    throw error;
  }
}

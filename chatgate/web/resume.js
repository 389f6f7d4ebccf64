// An answer's events to its end, across broken connections and reloads: the stream that started
// it, then GET …/events after the last event id seen (API.md, "Resuming a stream"). Also the
// answers on screen that another page is writing, which this page follows through their events.

import { ApiError, getJSON, readEvents, request } from "./api.js";

export const RETRY_DELAYS_MS = [500, 1000, 2000, 4000]; // the tries after a break, in turn
// `handoff`: the message went to a person, and no answer is written (handoff.js).
const END_EVENTS = new Set(["message_end", "error", "handoff"]);
const DRAINING = "server_shutting_down"; // its process ends: the answer is read again elsewhere
const POLL_MS = 1500; // when its events can't be read: how often an answer is re-read
const POLL_TRIES = 40;
const HISTORY_PAGE = 30;

export function eventsPath(sessionId, messageId) {
  return `/v1/sessions/${encodeURIComponent(sessionId)}/messages/${encodeURIComponent(messageId)}/events`;
}

function aborted() {
  return new DOMException("The answer was stopped", "AbortError");
}

/** Waits `ms`, or rejects with an AbortError as soon as `signal` aborts. */
export function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(aborted());
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted());
    };
    const timer = setTimeout(() => {
      if (signal) signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** A failure another try may get past: no answer at all, a body cut short, a proxy's 5xx. */
function passing(error) {
  if (!(error instanceof ApiError)) return true;
  return error.status === 0 || [408, 502, 503, 504].includes(error.status);
}

function lost() {
  return new ApiError({ status: 0, code: "connection_lost", message: "the stream ended early" });
}

/**
 * Yields each event of one answer once, until message_end or error: those of `response` (the
 * stream that started it, or null), then, whenever a body breaks off before the end, those after
 * the last id seen, from the events endpoint (`messageId`, or the one message_start names).
 * Throws AbortError when `signal` aborts, and the last failure when the tries run out.
 */
export async function* answerEvents({ sessionId, messageId = null, response = null, signal }) {
  let lastId = 0;
  let tries = 0;
  let draining = null; // the end its process gave when it drained: said if nothing comes after
  for (;;) {
    let failure = null;
    const seen = lastId;
    try {
      const source =
        response ||
        (await request(eventsPath(sessionId, messageId), {
          signal,
          accept: "text/event-stream",
          headers: lastId ? { "Last-Event-ID": String(lastId) } : {},
        }));
      response = null;
      for await (const event of readEvents(source)) {
        const id = Number.parseInt(event.id, 10);
        if (Number.isFinite(id)) {
          if (id <= lastId) continue; // seen before the break
          lastId = id;
        }
        tries = 0;
        if (event.event === "message_start") messageId = event.data.message_id;
        if (event.event === "error" && event.data.error && event.data.error.code === DRAINING) {
          draining = event;
          break;
        }
        yield event;
        if (END_EVENTS.has(event.event)) return;
      }
      if (draining && lastId === seen) {
        // Read again, and nothing follows that end (another process has the same log): final.
        yield draining;
        return;
      }
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      if (!passing(error)) throw error;
      failure = error;
    }
    if (!messageId) throw failure || lost();
    if (tries >= RETRY_DELAYS_MS.length) {
      if (!draining) throw failure || lost();
      yield draining;
      return;
    }
    await pause(RETRY_DELAYS_MS[tries], signal);
    tries += 1;
  }
}

/** The user's message an answer answers: the nearest before it. */
function questionOf(messages, answer) {
  for (let at = messages.indexOf(answer) - 1; at >= 0; at -= 1) {
    if (messages[at].role === "user") return messages[at];
  }
  return null;
}

/**
 * Answers on screen still being written elsewhere (before a reload, in another tab): the newest
 * is followed through its events by the composer (Stop works on it); the others, and it when its
 * events can't be read, are re-read from history until they end.
 */
export function watchUnfinished({ sessionId, composer, timeline, messages, onScreen }) {
  const unfinished = () => messages().filter((m) => m.status === "streaming" && !composer.owns(m));
  let polling = false;
  const poll = async () => {
    if (polling) return;
    polling = true;
    try {
      await pollUnfinished({ sessionId, timeline, unfinished, onScreen });
    } finally {
      polling = false;
    }
  };
  const waiting = unfinished();
  const newest = waiting[waiting.length - 1];
  if (!newest) return;
  composer.resume(sessionId, newest, questionOf(messages(), newest)).then((followed) => {
    if (!followed && onScreen()) poll();
  });
  if (waiting.length > 1) poll();
}

async function pollUnfinished({ sessionId, timeline, unfinished, onScreen }) {
  for (let tries = 0; tries < POLL_TRIES && unfinished().length; tries += 1) {
    await pause(POLL_MS);
    if (!onScreen()) return;
    try {
      const page = await getJSON(`/v1/history/${sessionId}?limit=${HISTORY_PAGE}`, {
        cache: "no-cache",
      });
      if (!onScreen()) return;
      for (const fresh of page.data) {
        const shown = unfinished().find((m) => m.id === fresh.id);
        if (shown) {
          Object.assign(shown, fresh);
          timeline.update(shown);
        }
      }
    } catch {
      /* try again on the next round */
    }
  }
}

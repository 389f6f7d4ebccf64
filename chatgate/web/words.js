// What the page says: failures in plain words, the marks on unfinished answers, and times.

const GUARD = /guard|blocked|pii|injection|policy|sensitive|moderation/;

function seconds(value) {
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) && n > 0 ? n : null;
}

/** A sentence a person can act on, for an ApiError or an answer's {code, message} error. */
export function describeError(error) {
  const code = String(error.code || "");
  const status = Number(error.status || 0);
  const wait = seconds(error.retryAfter);
  if (code === "network_error") {
    return "Can't reach chatgate right now. Check your connection and try again.";
  }
  if (code === "connection_lost") {
    return "The connection dropped before the answer finished. The text that arrived is kept.";
  }
  if (code === "server_shutting_down" || code === "shutdown" || code === "process_restarted") {
    return "chatgate restarted before the answer finished. The text that arrived is kept.";
  }
  if (status === 401) return "Please sign in to continue.";
  if (code === "turn_in_progress") {
    return "An answer is still being written in this conversation. Stop it or wait for it to finish.";
  }
  if (code === "upstream_rate_limited" || (code.startsWith("upstream_") && status === 429)) {
    return "The AI engine is overloaded — wait a moment and try again.";
  }
  if (status === 429 || code === "rate_limited" || code === "too_many_requests") {
    return wait
      ? `Too many requests — wait ${wait} second${wait === 1 ? "" : "s"} and try again.`
      : "Too many requests — wait a moment and try again.";
  }
  if (code === "engine_busy") {
    return "The assistant is busy answering other people. Try again in a moment.";
  }
  if (code === "context_length_exceeded") {
    return "This message is more than the assistant can read at once. Shorten it or split it into parts.";
  }
  if (code === "content_too_large" || status === 413) {
    const limit = /limit is (\d+)/.exec(error.message || "");
    return limit
      ? `Your message is too long — the limit is ${Number(limit[1]).toLocaleString()} characters. Shorten it and try again.`
      : "Your message is too long. Shorten it and try again.";
  }
  if (code === "empty_content") return "Type a message first.";
  if (GUARD.test(code)) {
    return "This message was blocked by a safety check — for example, it may contain personal data such as a phone, ID or card number. Rephrase it and try again.";
  }
  if (code.startsWith("upstream_") || code === "provider_not_configured" || [502, 504].includes(status)) {
    return "The AI engine is not answering right now. Try again in a little while.";
  }
  if (status === 503) return "chatgate is briefly unavailable. Try again in a moment.";
  if (code === "session_not_found") return "This conversation no longer exists.";
  if (code === "assistant_not_found" || code === "assistant_disabled") {
    return "This assistant is not available any more.";
  }
  if (status === 403) return "You don't have permission to do that.";
  if (status >= 500 || code === "internal_error") {
    return "Something went wrong on our side. Try again; if it keeps happening, contact support with the trace id.";
  }
  return error.message ? `That didn't work: ${error.message}.` : "Something went wrong. Please try again.";
}

const ENDED = {
  stopped: "You stopped this answer; the text so far is kept.",
  client_disconnected: "The connection closed before the answer finished; the text so far is kept.",
  connection_lost: "The connection dropped before the answer finished; the text so far is kept.",
  process_restarted: "The service restarted while answering; the text so far is kept.",
  shutdown: "The service was shutting down while answering; the text so far is kept.",
};

/** {badge, note, kind} for a message that is not simply complete, or null. */
export function messageMark(message) {
  const error = message.error || {};
  if (message.status === "streaming") return { badge: "Writing…", note: "", kind: "streaming" };
  if (message.status === "interrupted") {
    const stopped = error.code === "stopped";
    return {
      badge: stopped ? "Stopped" : "Interrupted",
      note: ENDED[error.code] || "This answer was cut off; the text so far is kept.",
      kind: "interrupted",
    };
  }
  if (message.status === "failed") {
    return { badge: "Failed", note: describeError({ ...error, status: -1 }), kind: "failed" };
  }
  if (message.fallback && !message.model) {
    // chatgate's own words (the hand-off notice): from no engine, and no failure either.
    return { badge: "Notice", note: "", kind: "notice" };
  }
  if (message.fallback) {
    return {
      badge: "Canned answer",
      note: "The assistant could not answer, so this is a prepared reply.",
      kind: "fallback",
    };
  }
  if (message.cached) return { badge: "Cached", note: "", kind: "cached" };
  return null;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayAndClock = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const fullDate = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function parse(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? new Date() : date;
}

/** "14:05" today, "Mar 3, 14:05" this year, with the year otherwise. */
export function shortTime(iso) {
  const date = parse(iso);
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return clock.format(date);
  if (date.getFullYear() === now.getFullYear()) return dayAndClock.format(date);
  return fullDate.format(date);
}

export function longTime(iso) {
  return full.format(parse(iso));
}

/** "just now", "5 minutes ago", "yesterday"… for the conversation list. */
export function agoTime(iso) {
  const diff = (parse(iso).getTime() - Date.now()) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return "just now";
  if (abs < 3600) return relative.format(Math.round(diff / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(diff / 3600), "hour");
  if (abs < 86400 * 7) return relative.format(Math.round(diff / 86400), "day");
  return shortTime(iso);
}

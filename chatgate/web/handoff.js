// A conversation handed to a person (API.md, "Hand-off to a person"): a banner says so, and
// while a person has it the page asks for its newest history page every POLL_MS (with its ETag:
// a 304 when nothing changed) and for the session (to learn when it is given back), so the
// person's replies appear without a reload. Polling stops once the session is released.

import { ApiError, getJSON } from "./api.js";
import { $ } from "./layout.js";

export const POLL_MS = 2000;
const HISTORY_PAGE = 30;
const WORDS = {
  waiting: "You asked for a person. Someone will answer you here shortly — 已为您转接人工客服。",
  with_agent: "A person is answering you in this conversation — 人工客服正在为您服务。",
};

/** The messages of `page` that `messages` does not hold yet. */
export function unseen(messages, page) {
  const known = new Set(messages.map((m) => m.id));
  return page.filter((m) => !known.has(m.id));
}

export class HandoffWatch {
  /**
   * `onPage(sessionId, messages)`: the newest history page of the session being watched;
   * `onSession(session)`: the session as it is now (its `handoff` included).
   */
  constructor({ onPage, onSession }) {
    Object.assign(this, { onPage, onSession, banner: $("handoff-banner"), text: $("handoff-text") });
    this.sessionId = null;
    this.round = 0; // bumped to end the polling loop that runs
  }

  /** Shows the session's hand-off, and polls while a person has it. */
  watch(session) {
    const status = session && session.handoff ? session.handoff.status : null;
    const active = status === "waiting" || status === "with_agent";
    this.banner.hidden = !active;
    this.banner.dataset.status = status || "";
    if (active) this.text.textContent = WORDS[status];
    if (!active) {
      this.stop();
      return;
    }
    if (this.sessionId === session.id) return;
    this.stop();
    this.sessionId = session.id;
    this.poll(session.id, this.round);
  }

  stop() {
    this.round += 1;
    this.sessionId = null;
  }

  async poll(sessionId, round) {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (round !== this.round) return;
      try {
        const path = `/v1/history/${encodeURIComponent(sessionId)}?limit=${HISTORY_PAGE}`;
        const page = await getJSON(path, { cache: "no-cache" });
        if (round !== this.round) return;
        this.onPage(sessionId, page.data);
        const session = await getJSON(`/v1/sessions/${encodeURIComponent(sessionId)}`);
        if (round !== this.round) return;
        this.onSession(session);
      } catch (error) {
        // Signed out, or the conversation is gone: nothing more to watch. Else the next round
        // asks again.
        if (error instanceof ApiError && [401, 403, 404].includes(error.status)) {
          if (round === this.round) this.stop();
          return;
        }
      }
    }
  }
}

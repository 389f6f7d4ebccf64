// The message box and the answers it starts: Enter sends (never while an input method is
// composing), the answer streams in over SSE (resumed when the connection breaks, and after a
// reload: resume.js), and Stop asks the server to end it.

import { ApiError, getJSON, request, sendJSON } from "./api.js";
import { answerEvents } from "./resume.js";
import { localKey } from "./timeline.js";
import { describeError } from "./words.js";

const STOP_GRACE_MS = 4000; // after Stop, how long the server gets to end the stream itself
const MAX_INPUT_HEIGHT = 0.4; // of the window

export class Composer {
  constructor({ form, input, send, stop, timeline, view }) {
    Object.assign(this, { form, input, send, stop, timeline, view });
    this.streams = new Map(); // session id -> the answer being received for it
    this.composing = false;

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    stop.addEventListener("click", () => this.stopCurrent());
    input.addEventListener("compositionstart", () => (this.composing = true));
    input.addEventListener("compositionend", () => (this.composing = false));
    input.addEventListener("keydown", (event) => this.onKeyDown(event));
    input.addEventListener("input", () => this.autosize());
  }

  onKeyDown(event) {
    if (event.key === "Escape" && this.current()) {
      event.preventDefault();
      this.stopCurrent();
      return;
    }
    if (event.key !== "Enter" || event.shiftKey || event.altKey) return;
    // An input method (Chinese, Japanese…) uses Enter to pick its candidate: that is not a send.
    // Safari reports such a keydown after compositionend, with keyCode 229.
    if (event.isComposing || this.composing || event.keyCode === 229) return;
    event.preventDefault();
    this.submit();
  }

  autosize() {
    const input = this.input;
    input.style.height = "auto";
    const max = Math.round(window.innerHeight * MAX_INPUT_HEIGHT);
    input.style.height = `${Math.min(input.scrollHeight + 2, max)}px`;
    input.style.overflowY = input.scrollHeight + 2 > max ? "auto" : "hidden";
  }

  current() {
    const session = this.view.session();
    return session ? this.streams.get(session.id) || null : null;
  }

  /** Shows Send or Stop for the conversation on screen. */
  sync() {
    const stream = this.current();
    this.send.hidden = Boolean(stream);
    this.stop.hidden = !stream;
    this.stop.disabled = Boolean(stream && stream.stopping);
    this.stop.lastChild.textContent = stream && stream.stopping ? " Stopping…" : " Stop";
    this.input.disabled = !this.view.session();
  }

  owns(message) {
    for (const stream of this.streams.values()) if (stream.answer === message) return true;
    return false;
  }

  /**
   * A history page for a session whose answer is still arriving here: swap the server's copies
   * for the live ones, so the text keeps growing on screen.
   */
  adopt(sessionId, messages) {
    const stream = this.streams.get(sessionId);
    if (!stream) return messages;
    const ids = new Set([stream.user && stream.user.id, stream.answer.id].filter(Boolean));
    let kept = messages.filter((m) => !ids.has(m.id));
    if (!stream.answer.id) {
      // Before message_start we don't know the ids yet: drop the stored copies by their shape.
      const last = kept.length - 1;
      if (kept[last] && kept[last].role === "assistant" && kept[last].status === "streaming") {
        kept = kept.slice(0, last);
      }
      const user = kept[kept.length - 1];
      if (user && user.role === "user" && user.content === stream.user.content) kept = kept.slice(0, -1);
    }
    return [...kept, stream.user, stream.answer].filter(Boolean);
  }

  abortAll() {
    for (const stream of this.streams.values()) stream.controller.abort();
  }

  submit() {
    const session = this.view.session();
    const text = this.input.value;
    if (!session || !text.trim()) {
      this.input.focus();
      return;
    }
    if (this.streams.has(session.id)) {
      this.view.showNotice(
        "Wait for this answer to finish, or press Stop, before sending the next message.",
        {
          kind: "info",
        },
      );
      return;
    }
    this.input.value = "";
    this.autosize();
    this.view.clearNotice();
    this.run(session, text);
  }

  stopCurrent() {
    const stream = this.current();
    if (stream) this.stopStream(stream);
  }

  async stopStream(stream) {
    if (stream.stopping) return;
    stream.stopping = true;
    this.sync();
    try {
      const result = await sendJSON("POST", `/v1/sessions/${stream.sessionId}/stop`);
      // Nothing was running yet: our request has not reached the engine, so end it here.
      if (!result.stopped && !stream.started) stream.controller.abort();
    } catch (error) {
      stream.controller.abort();
      if (error instanceof ApiError && error.status !== 404) this.view.handleError(error);
      return;
    }
    // The server ends the stream with the answer marked "interrupted"; don't wait forever.
    setTimeout(() => {
      if (this.streams.get(stream.sessionId) === stream) stream.controller.abort();
    }, STOP_GRACE_MS);
  }

  show(stream, message, { text = false } = {}) {
    if (text) this.timeline.updateText(message);
    else this.timeline.update(message);
    if (this.view.session() && this.view.session().id === stream.sessionId) this.sync();
  }

  async run(session, text) {
    const now = new Date().toISOString();
    const assistant = this.view.assistant();
    const user = {
      key: localKey(),
      role: "user",
      content: text,
      status: "complete",
      created_at: now,
      sending: true,
    };
    const answer = {
      key: localKey(),
      role: "assistant",
      content: "",
      status: "streaming",
      created_at: now,
      model: assistant ? assistant.model : null,
    };
    const stream = {
      sessionId: session.id,
      controller: new AbortController(),
      user,
      answer,
      started: false,
      stopping: false,
    };
    this.streams.set(session.id, stream);
    this.view.setMessages([...this.view.messages(), user, answer]);
    this.timeline.append(user);
    this.timeline.append(answer);
    this.sync();

    try {
      const response = await request(`/v1/sessions/${session.id}/messages`, {
        method: "POST",
        body: { content: text, response_mode: "streaming" },
        signal: stream.controller.signal,
        accept: "text/event-stream",
      });
      const { signal } = stream.controller;
      await this.follow(stream, answerEvents({ sessionId: session.id, response, signal }));
    } catch (error) {
      if (error && error.name === "AbortError") {
        this.cutOff(stream, "stopped");
      } else if (stream.started) {
        // The body broke off mid-answer and it could not be resumed: the text so far is kept.
        this.cutOff(stream, "connection_lost");
      } else if (error instanceof ApiError && error.body && error.body.message) {
        // The turn was stored, then the engine failed before its first word.
        user.sending = false;
        Object.assign(answer, error.body.message);
        this.show(stream, user);
        this.show(stream, answer);
        this.report(stream, error);
      } else if (error instanceof ApiError) {
        this.unsend(stream, text);
        this.report(stream, error);
      } else {
        this.unsend(stream, text);
        this.report(stream, new ApiError({ status: 0, code: "network_error", message: String(error) }));
      }
    } finally {
      this.streams.delete(session.id);
      this.afterTurn(stream);
    }
  }

  /**
   * An answer this tab did not start, still being written (the page was reloaded, or another
   * tab asked): its events from the first rebuild its text, then the live ones follow, with Stop
   * as for our own. False when its events can't be read at all.
   */
  async resume(sessionId, answer, user) {
    if (this.streams.has(sessionId)) return false;
    const stream = {
      sessionId,
      controller: new AbortController(),
      user,
      answer,
      started: true,
      stopping: false,
      replay: true, // the events replay the text already shown: it starts again from nothing
      heard: false,
    };
    this.streams.set(sessionId, stream);
    this.sync();
    try {
      const { signal } = stream.controller;
      await this.follow(stream, answerEvents({ sessionId, messageId: answer.id, signal }));
    } catch (error) {
      if (error && error.name === "AbortError") this.cutOff(stream, "stopped");
      else if (stream.heard) this.cutOff(stream, "connection_lost");
      else return false;
    } finally {
      this.streams.delete(sessionId);
      this.afterTurn(stream);
    }
    return true;
  }

  /** Shows an answer's events as they come; throws when they end before message_end or error. */
  async follow(stream, events) {
    const { user, answer } = stream;
    for await (const event of events) {
      stream.heard = true;
      if (event.event === "message_start") {
        stream.started = true;
        answer.id = event.data.message_id;
        if (user && !user.id) user.id = event.data.user_message_id;
        if (user && user.sending) {
          user.sending = false;
          this.show(stream, user);
        }
      } else if (event.event === "citations") {
        // The passages the answer draws on: before its first word, or (Dify) at its end.
        answer.citations = event.data.citations;
        this.show(stream, answer);
      } else if (event.event === "delta") {
        // "replace": the engine rewrote the answer so far (output moderation, say).
        const before = stream.replay ? "" : answer.content;
        stream.replay = false;
        answer.content = event.data.replace ? event.data.text : before + event.data.text;
        this.show(stream, answer, { text: true });
      } else if (event.event === "handoff") {
        // A person has the conversation: the message went to them, not to the assistant.
        this.handedOff(stream, event.data);
        return;
      } else if (event.event === "message_end") {
        Object.assign(answer, event.data.message);
        this.show(stream, answer);
        return;
      } else if (event.event === "error") {
        Object.assign(answer, event.data.message || { status: "failed", error: event.data.error });
        this.show(stream, answer);
        this.report(
          stream,
          new ApiError({ status: -1, ...event.data.error, traceId: event.data.error.trace_id }),
        );
        return;
      }
    }
  }

  /** The message is stored for a person; the answer is the hand-off notice, or none. */
  handedOff(stream, { user_message: stored, message }) {
    const { user, answer } = stream;
    Object.assign(user, stored, { sending: false });
    this.show(stream, user);
    if (message) {
      Object.assign(answer, message);
      this.show(stream, answer);
      return;
    }
    this.timeline.remove(answer);
    if (this.view.session() && this.view.session().id === stream.sessionId) {
      this.view.setMessages(this.view.messages().filter((m) => m !== answer));
    }
  }

  /** The answer ended without its last event: keep the text, mark it as cut off. */
  cutOff(stream, code) {
    const { answer, user } = stream;
    if (answer.status !== "streaming") return;
    answer.status = "interrupted";
    answer.error = { code };
    if (user && user.sending) {
      user.sending = false;
      this.show(stream, user);
    }
    this.show(stream, answer);
    if (code === "connection_lost") {
      this.report(stream, new ApiError({ status: 0, code, message: "the stream ended early" }));
    }
  }

  /** Nothing was stored: take the message off the timeline and give its text back. */
  unsend(stream, text) {
    const viewing = this.view.session() && this.view.session().id === stream.sessionId;
    this.timeline.remove(stream.user);
    this.timeline.remove(stream.answer);
    if (viewing) {
      this.view.setMessages(this.view.messages().filter((m) => m !== stream.user && m !== stream.answer));
      if (!this.input.value) {
        this.input.value = text;
        this.autosize();
      }
    }
  }

  report(stream, error) {
    const session = this.view.session();
    if (!session || session.id !== stream.sessionId) return;
    if (error.status === 401) this.view.handleError(error);
    else this.view.showNotice(describeError(error), { traceId: error.traceId });
  }

  async afterTurn(stream) {
    const session = this.view.session();
    if (session && session.id === stream.sessionId) {
      this.sync();
      if (document.activeElement === document.body || document.activeElement === this.stop)
        this.input.focus();
    }
    try {
      this.view.titleChanged(await getJSON(`/v1/sessions/${stream.sessionId}`));
    } catch {
      /* the list refresh below tells the same story */
    }
    this.view.refreshList();
  }
}

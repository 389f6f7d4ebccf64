// The conversation as a timeline: one list item per message, with its role, time and marks.
// Messages are plain objects; `key` names their element even before the server gives an id.

import { renderMarkdown } from "./markdown.js";
import { longTime, messageMark, shortTime } from "./words.js";

const STICK_DISTANCE = 96; // px from the bottom within which new text keeps the view pinned

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

let localCounter = 0;
export function localKey() {
  localCounter += 1;
  return `local-${localCounter}`;
}

function addCopyButtons(body) {
  for (const pre of body.querySelectorAll("pre")) {
    const button = el("button", {
      type: "button",
      class: "copy-code",
      "aria-label": "Copy code",
      text: "Copy",
    });
    pre.classList.add("has-copy");
    pre.append(button);
  }
}

export class Timeline {
  constructor({ scroller, list, empty }) {
    this.scroller = scroller;
    this.list = list;
    this.empty = empty;
    this.nodes = new Map();
    this.pending = new Map();
    this.names = { user: "You", assistant: "Assistant", system: "System" };
    list.addEventListener("click", (event) => this.onClick(event));
  }

  setAssistantName(name) {
    this.names.assistant = name;
  }

  clear() {
    this.list.replaceChildren();
    this.nodes.clear();
    this.empty.hidden = true;
  }

  showEmpty(show, content) {
    this.empty.hidden = !show;
    if (content) this.empty.replaceChildren(content);
  }

  /** Replaces everything with these messages (oldest first) and shows the newest. */
  setMessages(messages) {
    this.clear();
    const fragment = document.createDocumentFragment();
    for (const message of messages) fragment.append(this.build(message));
    this.list.append(fragment);
    this.scrollToBottom();
  }

  /** Adds older messages above, keeping what the reader looks at where it was. */
  prepend(messages) {
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    const fragment = document.createDocumentFragment();
    for (const message of messages) fragment.append(this.build(message));
    this.list.prepend(fragment);
    this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
  }

  append(message) {
    this.empty.hidden = true;
    this.list.append(this.build(message));
    this.scrollToBottom();
  }

  remove(message) {
    const node = this.nodes.get(message.key);
    if (node) node.remove();
    this.nodes.delete(message.key);
  }

  has(message) {
    return this.nodes.has(message.key);
  }

  /** Re-renders one message now (status, marks and text). */
  update(message) {
    const node = this.nodes.get(message.key);
    if (!node) return;
    const stick = this.nearBottom();
    node.replaceWith(this.build(message));
    if (stick) this.scrollToBottom();
  }

  /** Re-renders the text of a growing answer at most once per frame. */
  updateText(message) {
    if (this.pending.has(message.key)) return;
    this.pending.set(
      message.key,
      requestAnimationFrame(() => {
        this.pending.delete(message.key);
        const node = this.nodes.get(message.key);
        if (!node) return;
        const stick = this.nearBottom();
        this.fillBody(node.querySelector(".msg-body"), message);
        if (stick) this.scrollToBottom();
      }),
    );
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < STICK_DISTANCE;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  build(message) {
    const pending = this.pending.get(message.key);
    if (pending) {
      cancelAnimationFrame(pending);
      this.pending.delete(message.key);
    }
    const mark = messageMark(message);
    const role = message.role in this.names ? message.role : "system";
    const streaming = message.status === "streaming";
    const headingId = `msg-${message.key}`;
    const body = el("div", {
      class: "msg-body md",
      "aria-live": streaming ? "polite" : null,
      "aria-busy": streaming ? "true" : null,
    });
    this.fillBody(body, message);
    const node = el(
      "li",
      {
        class: `msg msg-${role}${mark ? ` msg-${mark.kind}` : ""}${message.sending ? " msg-sending" : ""}`,
        "data-key": message.key,
        "data-id": message.id || null,
        "data-status": message.status,
        "aria-labelledby": headingId,
      },
      el(
        "div",
        { class: "msg-head", id: headingId },
        el("span", { class: "msg-role", text: this.names[role] }),
        el("time", {
          class: "msg-time",
          datetime: message.created_at,
          title: longTime(message.created_at),
          text: shortTime(message.created_at),
        }),
        mark ? el("span", { class: `badge badge-${mark.kind}`, text: mark.badge }) : null,
        message.sending ? el("span", { class: "badge badge-sending", text: "Sending…" }) : null,
      ),
      body,
      mark && mark.note ? el("p", { class: "msg-note", text: mark.note }) : null,
    );
    this.nodes.set(message.key, node);
    return node;
  }

  fillBody(body, message) {
    if (message.status === "streaming" && !message.content) {
      body.replaceChildren(
        el(
          "span",
          { class: "typing", role: "img", "aria-label": "Writing an answer" },
          el("span"),
          el("span"),
          el("span"),
        ),
      );
      return;
    }
    body.replaceChildren(renderMarkdown(message.content));
    addCopyButtons(body);
  }

  onClick(event) {
    const button = event.target.closest("button.copy-code");
    if (!button) return;
    const code = button.parentElement.querySelector("code");
    const text = code ? code.textContent : "";
    const done = (label) => {
      button.textContent = label;
      setTimeout(() => (button.textContent = "Copy"), 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(() => done("Copied"), () => done("Copy failed"));
    } else {
      done("Copy failed");
    }
  }
}

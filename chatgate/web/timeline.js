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

/** A header on each code block: its language, when known, and a Copy button. */
function decorateCode(body) {
  for (const pre of body.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    const language = code && /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
    pre.classList.add("has-copy");
    if (language) pre.append(el("span", { class: "code-lang", "aria-hidden": "true", text: language[1] }));
    pre.append(el("button", { type: "button", class: "copy-code", "aria-label": "Copy code", text: "Copy" }));
  }
}

/**
 * The passages an answer cites: each a collapsed entry naming its document and page, opening on
 * a click to show the passage. Text only (textContent), never markup: documents are not trusted.
 */
export function citationList(message) {
  const citations = Array.isArray(message.citations) ? message.citations : [];
  if (!citations.length) return null;
  const items = citations.map((c) =>
    el(
      "li",
      { class: "citation" },
      el(
        "details",
        {},
        el(
          "summary",
          {},
          el("span", { class: "citation-index", text: `[${c.index}]` }),
          el("span", { class: "citation-doc", text: ` ${c.document_name || "Untitled document"}` }),
          c.page !== null && c.page !== undefined
            ? el("span", { class: "citation-page", text: ` · page ${c.page}` })
            : null,
        ),
        el("p", { class: "citation-text", text: c.text || "" }),
      ),
    ),
  );
  return el(
    "div",
    { class: "msg-citations" },
    el("p", { class: "citations-title", text: citations.length === 1 ? "Source" : "Sources" }),
    el("ol", { class: "citations" }, ...items),
  );
}

/**
 * The calls of the client's tools an answer made (recorded by the Responses API): a small line
 * each, naming the function and its arguments. Text only, never markup.
 */
export function toolCallList(message) {
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  if (!calls.length) return null;
  return el(
    "ul",
    { class: "msg-tool-calls" },
    ...calls.map((c) =>
      el(
        "li",
        { class: "tool-call" },
        el("span", { class: "tool-call-label", text: "Called " }),
        el("code", { text: `${c.name || "a tool"}(${c.arguments || ""})` }),
      ),
    ),
  );
}

export class Timeline {
  constructor({ scroller, list, empty }) {
    this.scroller = scroller;
    this.list = list;
    this.empty = empty;
    this.nodes = new Map();
    this.pending = new Map();
    this.names = { user: "You", assistant: "Assistant", system: "System", tool: "Tool", agent: "Agent" };
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

  /**
   * Re-renders one message now (status, marks and text), in place: the answer's body stays the
   * same element, so a screen reader announces its final text when aria-busy drops.
   */
  update(message) {
    const node = this.nodes.get(message.key);
    if (!node) return;
    this.cancelPending(message);
    const stick = this.nearBottom();
    const mark = messageMark(message);
    this.decorate(node, message, mark);
    node
      .querySelector(".msg-head")
      .replaceWith(this.head(message, mark, node.getAttribute("aria-labelledby")));
    const body = node.querySelector(".msg-body");
    if (body.hasAttribute("aria-live"))
      body.setAttribute("aria-busy", message.status === "streaming" ? "true" : "false");
    this.fillBody(body, message);
    const oldCalls = node.querySelector(".msg-tool-calls");
    const calls = toolCallList(message);
    if (oldCalls) oldCalls.remove();
    if (calls) body.after(calls);
    const oldCitations = node.querySelector(".msg-citations");
    const citations = citationList(message);
    if (oldCitations) oldCitations.remove();
    if (citations) body.after(citations);
    const note = node.querySelector(".msg-note");
    if (note) note.remove();
    if (mark && mark.note) node.append(el("p", { class: "msg-note", text: mark.note }));
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

  cancelPending(message) {
    const pending = this.pending.get(message.key);
    if (pending) {
      cancelAnimationFrame(pending);
      this.pending.delete(message.key);
    }
  }

  role(message) {
    return message.role in this.names ? message.role : "system";
  }

  decorate(node, message, mark) {
    const classes = ["msg", `msg-${this.role(message)}`];
    if (mark) classes.push(`msg-${mark.kind}`);
    if (message.sending) classes.push("msg-sending");
    node.className = classes.join(" ");
    node.dataset.status = message.status;
    if (message.id) node.dataset.id = message.id;
  }

  head(message, mark, id) {
    return el(
      "div",
      { class: "msg-head", id },
      el("span", { class: "msg-role", text: this.names[this.role(message)] }),
      el("time", {
        class: "msg-time",
        datetime: message.created_at,
        title: longTime(message.created_at),
        text: shortTime(message.created_at),
      }),
      mark ? el("span", { class: `badge badge-${mark.kind}`, text: mark.badge }) : null,
      message.sending ? el("span", { class: "badge badge-sending", text: "Sending…" }) : null,
    );
  }

  build(message) {
    this.cancelPending(message);
    const mark = messageMark(message);
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
      { "data-key": message.key, "aria-labelledby": headingId },
      this.head(message, mark, headingId),
      body,
      toolCallList(message),
      citationList(message),
      mark && mark.note ? el("p", { class: "msg-note", text: mark.note }) : null,
    );
    this.decorate(node, message, mark);
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
    if (message.role === "tool") {
      // A tool's result, as the client's code gave it: collapsed, shown as it is.
      body.replaceChildren(
        el(
          "details",
          { class: "tool-result" },
          el("summary", { text: "Tool result" }),
          el("pre", { class: "tool-result-text", text: message.content || "" }),
        ),
      );
      return;
    }
    if (!message.content) {
      const calls = Array.isArray(message.tool_calls) && message.tool_calls.length;
      body.replaceChildren(
        el("p", { class: "no-text", text: calls ? "Called a tool." : "No text was written." }),
      );
      return;
    }
    body.replaceChildren(renderMarkdown(message.content));
    decorateCode(body);
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
      navigator.clipboard.writeText(text).then(
        () => done("Copied"),
        () => done("Copy failed"),
      );
    } else {
      done("Copy failed");
    }
  }
}

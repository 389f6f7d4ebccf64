// The conversations of one assistant: open, rename, delete (after asking), and page on.

import { getJSON, sendJSON } from "./api.js";
import { el } from "./timeline.js";
import { agoTime, longTime } from "./words.js";

const LIST_PAGE = 20;

const ICONS = {
  rename: "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4",
  delete: "M5 7h14M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
};

function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

export function titleOf(session) {
  return session.title || "New conversation";
}

export class Sidebar {
  constructor({ list, more, status, dialog, current, onOpen, onRenamed, onDeleted, onError }) {
    Object.assign(this, { list, more, status, dialog, current, onOpen, onRenamed, onDeleted, onError });
    this.sessions = [];
    this.cursor = null;
    this.assistantId = null;
    this.generation = 0;
    more.addEventListener("click", () => this.loadMore());
    // Enter in the title field confirms (the form's default button would be Cancel).
    dialog.querySelector("#dialog-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        dialog.close("ok");
      }
    });
  }

  async load(assistantId, { quiet = false } = {}) {
    const generation = ++this.generation;
    this.assistantId = assistantId;
    if (!quiet) {
      this.status.textContent = "Loading conversations…";
      this.list.setAttribute("aria-busy", "true");
    }
    try {
      const page = await getJSON(
        `/v1/sessions?assistant_id=${encodeURIComponent(assistantId)}&limit=${LIST_PAGE}`,
      );
      if (generation !== this.generation) return;
      this.sessions = page.data;
      this.cursor = page.has_more ? page.next_cursor : null;
      this.render();
    } catch (error) {
      if (generation !== this.generation) return;
      this.status.textContent = "The conversations could not be loaded.";
      this.onError(error);
    } finally {
      if (generation === this.generation) this.list.removeAttribute("aria-busy");
    }
  }

  async loadMore() {
    if (!this.cursor) return;
    const generation = this.generation;
    this.more.disabled = true;
    this.more.textContent = "Loading…";
    try {
      const page = await getJSON(
        `/v1/sessions?assistant_id=${encodeURIComponent(this.assistantId)}&limit=${LIST_PAGE}&cursor=${encodeURIComponent(this.cursor)}`,
      );
      if (generation !== this.generation) return;
      const known = new Set(this.sessions.map((s) => s.id));
      this.sessions.push(...page.data.filter((s) => !known.has(s.id)));
      this.cursor = page.has_more ? page.next_cursor : null;
      this.render();
    } catch (error) {
      this.onError(error);
    } finally {
      this.more.disabled = false;
      this.more.textContent = "Show more";
    }
  }

  render() {
    const current = this.current();
    const sessions = [...this.sessions];
    // The open conversation is listed even before its first message lands in the list.
    if (current && current.assistant_id === this.assistantId && !sessions.some((s) => s.id === current.id)) {
      sessions.unshift(current);
    }
    this.status.textContent = sessions.length ? "" : "No conversations yet.";
    this.list.replaceChildren(...sessions.map((session) => this.item(session, current)));
    this.more.hidden = !this.cursor;
  }

  item(session, current) {
    const title = titleOf(session);
    const isCurrent = current && current.id === session.id;
    const count = session.message_count;
    return el(
      "li",
      { class: `session${isCurrent ? " session-current" : ""}`, "data-session": session.id },
      el(
        "button",
        {
          type: "button",
          class: "session-open",
          "aria-current": isCurrent ? "true" : null,
          onclick: () => this.onOpen(session),
        },
        el("span", { class: "session-title", text: title }),
        el(
          "span",
          { class: "session-meta" },
          el("time", {
            datetime: session.updated_at,
            title: longTime(session.updated_at),
            text: agoTime(session.updated_at),
          }),
          ` · ${count} message${count === 1 ? "" : "s"}`,
        ),
      ),
      el(
        "span",
        { class: "session-actions" },
        el(
          "button",
          {
            type: "button",
            class: "icon-button",
            "aria-label": `Rename “${title}”`,
            title: "Rename",
            onclick: () => this.rename(session),
          },
          icon("rename"),
        ),
        el(
          "button",
          {
            type: "button",
            class: "icon-button danger",
            "aria-label": `Delete “${title}”`,
            title: "Delete",
            onclick: () => this.remove(session),
          },
          icon("delete"),
        ),
      ),
    );
  }

  async rename(session) {
    const title = await this.ask({
      title: "Rename conversation",
      text: "",
      value: session.title || "",
      confirm: "Rename",
    });
    if (title === null || title.trim() === (session.title || "")) return;
    try {
      const renamed = await sendJSON("PATCH", `/v1/sessions/${session.id}`, { title: title.trim() });
      this.sessions = this.sessions.map((s) => (s.id === renamed.id ? renamed : s));
      this.onRenamed(renamed);
      this.render();
    } catch (error) {
      this.onError(error);
    }
  }

  async remove(session) {
    const yes = await this.ask({
      title: "Delete this conversation?",
      text: `“${titleOf(session)}” and all its messages will be deleted for good.`,
      confirm: "Delete",
      danger: true,
    });
    if (yes === null) return;
    try {
      await sendJSON("DELETE", `/v1/sessions/${session.id}`);
      this.sessions = this.sessions.filter((s) => s.id !== session.id);
      this.render();
      await this.onDeleted(session);
      this.render();
    } catch (error) {
      this.onError(error);
    }
  }

  /** A modal question: resolves to the typed text (or "" without an input), or null. */
  ask({ title, text, value = null, confirm, danger = false }) {
    const dialog = this.dialog;
    const input = dialog.querySelector("#dialog-input");
    const label = dialog.querySelector("#dialog-label");
    const button = dialog.querySelector("#dialog-confirm");
    const opener = document.activeElement;
    dialog.querySelector("#dialog-title").textContent = title;
    dialog.querySelector("#dialog-text").textContent = text;
    dialog.querySelector("#dialog-text").hidden = !text;
    input.hidden = label.hidden = value === null;
    input.value = value ?? "";
    button.textContent = confirm;
    button.className = `button ${danger ? "button-danger" : "button-primary"}`;
    dialog.returnValue = "cancel";
    dialog.showModal();
    if (value !== null) input.select();
    else dialog.querySelector("button[value=cancel]").focus();
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          if (opener && opener.isConnected) opener.focus();
          resolve(dialog.returnValue === "ok" ? input.value : null);
        },
        { once: true },
      );
    });
  }
}

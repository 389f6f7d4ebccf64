// The page around the conversation, drawn from the page's state: notices, the assistant tabs, the
// header, the timeline's placeholders (loading, empty, older pages) and the drawer of narrow
// screens. app.js decides what happens; this only shows it.

import { el } from "./timeline.js";

export const $ = (id) => document.getElementById(id);

// ---------- notices ----------

export function showNotice(text, { traceId = null, kind = "error" } = {}) {
  const notice = $("notice");
  notice.dataset.kind = kind;
  notice.setAttribute("role", kind === "error" ? "alert" : "status");
  $("notice-text").textContent = text;
  $("notice-trace").hidden = !traceId;
  $("notice-trace").textContent = traceId ? `Trace id for support: ${traceId}` : "";
  notice.hidden = false;
}

export function clearNotice() {
  $("notice").hidden = true;
}

export function wireNotice() {
  $("notice-close").addEventListener("click", () => {
    clearNotice();
    $("composer-input").focus();
  });
}

// ---------- assistants ----------

export function renderTabs({ assistants, assistant }) {
  const tabs = $("assistant-tabs");
  const ids = assistants.map((a) => a.id).join("\n");
  if (tabs.dataset.ids !== ids) {
    tabs.dataset.ids = ids;
    tabs.replaceChildren(
      ...assistants.map((a) =>
        el("button", {
          type: "button",
          role: "tab",
          id: `tab-${a.id}`,
          class: "tab",
          "aria-controls": "chat",
          title: a.description || a.name,
          "data-assistant": a.id,
          text: a.name,
        }),
      ),
    );
  }
  // Updated in place, so a tab chosen from the keyboard keeps the focus.
  for (const tab of tabs.querySelectorAll("[role=tab]")) {
    const selected = Boolean(assistant) && tab.dataset.assistant === assistant.id;
    tab.setAttribute("aria-selected", selected ? "true" : "false");
    tab.tabIndex = selected ? 0 : -1;
    if (selected) tab.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  if (assistant) $("chat").setAttribute("aria-labelledby", `tab-${assistant.id}`);
}

/** A click or the arrow keys (Home, End) on the tabs pick an assistant: `onSelect(id)`. */
export function wireTabs(onSelect) {
  $("assistant-tabs").addEventListener("click", (event) => {
    const tab = event.target.closest("[role=tab]");
    if (tab) onSelect(tab.dataset.assistant);
  });
  $("assistant-tabs").addEventListener("keydown", (event) => {
    const tabs = [...$("assistant-tabs").querySelectorAll("[role=tab]")];
    const at = tabs.indexOf(document.activeElement);
    if (at === -1) return;
    const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
    next.focus();
    onSelect(next.dataset.assistant);
  });
}

// ---------- the conversation ----------

export function showLoading(timeline, text) {
  timeline.clear();
  $("older").replaceChildren(
    el("span", { class: "loading" }, el("span", { class: "spinner", "aria-hidden": "true" }), text),
  );
  $("scroller").setAttribute("aria-busy", "true");
}

export function hideLoading() {
  $("older").replaceChildren();
  $("scroller").removeAttribute("aria-busy");
}

export function renderHeader({ session, assistant }) {
  $("chat-title").textContent = (session && session.title) || "New conversation";
  $("chat-subtitle").textContent = assistant
    ? [assistant.name, assistant.description].filter(Boolean).join(" — ")
    : "";
  document.title = session && session.title ? `${session.title} · chatgate` : "chatgate";
  $("composer-input").placeholder = assistant ? `Message ${assistant.name}…` : "Write a message…";
}

export function renderEmpty(timeline, { messages, nextBefore, assistant }) {
  const empty = messages.length === 0 && !nextBefore;
  timeline.showEmpty(
    empty,
    empty
      ? el(
          "div",
          { class: "empty-card" },
          el("h2", { text: `Start a conversation with ${assistant ? assistant.name : "the assistant"}` }),
          assistant && assistant.description ? el("p", { text: assistant.description }) : null,
          el("p", {
            class: "muted small",
            text: "Answers appear as they are written. Markdown is supported.",
          }),
        )
      : null,
  );
}

export function renderOlder({ loadingOlder, nextBefore, pagedBack }, loadOlder) {
  const older = $("older");
  if (loadingOlder) {
    older.replaceChildren(
      el(
        "span",
        { class: "loading" },
        el("span", { class: "spinner", "aria-hidden": "true" }),
        "Loading older messages…",
      ),
    );
  } else if (nextBefore) {
    older.replaceChildren(
      el("button", {
        type: "button",
        class: "button button-quiet",
        id: "load-older",
        text: "Load older messages",
        onclick: loadOlder,
      }),
    );
  } else if (pagedBack) {
    older.replaceChildren(el("span", { class: "muted small", text: "Start of the conversation" }));
  } else {
    older.replaceChildren();
  }
}

// ---------- the drawer (narrow screens) ----------

function openDrawer() {
  $("app").classList.add("drawer-open");
  $("backdrop").hidden = false;
  $("drawer-toggle").setAttribute("aria-expanded", "true");
  $("new-session").focus();
}

export function closeDrawer() {
  if (!$("app").classList.contains("drawer-open")) return;
  $("app").classList.remove("drawer-open");
  $("backdrop").hidden = true;
  $("drawer-toggle").setAttribute("aria-expanded", "false");
}

export function wireDrawer() {
  $("drawer-toggle").addEventListener("click", () => {
    if ($("app").classList.contains("drawer-open")) closeDrawer();
    else openDrawer();
  });
  $("backdrop").addEventListener("click", closeDrawer);
  $("drawer-close").addEventListener("click", () => {
    closeDrawer();
    $("drawer-toggle").focus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && $("app").classList.contains("drawer-open")) {
      closeDrawer();
      $("drawer-toggle").focus();
    }
  });
}

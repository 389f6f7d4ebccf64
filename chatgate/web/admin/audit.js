// The audit log: who did what to which, newest first, filtered by action, user and a start
// day, a page at a time (the API's cursor).

import { getJSON, withQuery } from "./api.js";
import { empty, failure, h, field, header, loading, table, values, when } from "./ui.js";

function details(event) {
  const text = JSON.stringify(event.details || {});
  return h("code", { class: "clip", title: text }, text.length > 160 ? `${text.slice(0, 159)}…` : text);
}

const COLUMNS = [
  { label: "When", cell: (e) => when(e.created_at) },
  { label: "Action", cell: (e) => h("code", {}, e.action) },
  { label: "By", cell: (e) => e.user_id },
  { label: "Target", cell: (e) => `${e.target_type} ${e.target_id}` },
  { label: "Details", cell: details },
];

export function render(root, _rest, signal) {
  const form = h(
    "form",
    { class: "inline-form", role: "search", "aria-label": "Filter the audit log" },
    field({ label: "Action", name: "action", autocomplete: "off", hint: "e.g. assistant.updated" }),
    field({ label: "User id", name: "user_id", autocomplete: "off" }),
    field({ label: "Since", name: "since", type: "date" }),
    h("button", { type: "submit", class: "button button-primary" }, "Filter"),
  );
  const box = h("div", {});
  const rows = [];
  let cursor = null;
  let filters = {};
  let asked = 0; // a page asked for by an older filter is dropped when it comes

  const page = async (more) => {
    const turn = more ? asked : ++asked;
    const moreButton = box.querySelector(".more");
    if (!more) box.replaceChildren(loading("Loading the audit log…"));
    else if (moreButton) {
      moreButton.disabled = true;
      moreButton.textContent = "Loading…";
    }
    let answer;
    try {
      const query = { ...filters, limit: 50, cursor: more ? cursor : null };
      answer = await getJSON(withQuery("/v1/admin/audit", query), { signal });
    } catch (error) {
      if (error.name === "AbortError" || turn !== asked) return;
      box.replaceChildren(failure(error, () => page(more)));
      return;
    }
    if (turn !== asked) return;
    if (!more) rows.length = 0;
    rows.push(...answer.data);
    cursor = answer.next_cursor;
    if (!rows.length) return box.replaceChildren(empty("No events match."));
    const status = h(
      "p",
      { class: "muted small", role: "status", tabindex: "-1" },
      `${rows.length} events shown.`,
    );
    const next = answer.has_more
      ? h("button", { type: "button", class: "button more", onclick: () => page(true) }, "Show older events")
      : h("p", { class: "muted small" }, "That is all of them.");
    box.replaceChildren(status, table("Audit events", COLUMNS, rows), next);
    // The button that was pressed is gone: the focus goes on to the next one, or the count.
    if (more) (answer.has_more ? next : status).focus();
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const v = values(form);
    filters = {
      action: v.action.trim(),
      user_id: v.user_id.trim(),
      since: v.since ? `${v.since}T00:00:00Z` : "",
    };
    page(false);
  });
  root.append(header("Audit log"), form, box);
  page(false);
  return null;
}

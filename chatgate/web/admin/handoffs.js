// The hand-off queue: conversations waiting for a person, refreshed every few seconds; one
// opened (#handoffs/<session_id>) shows its messages, a reply box, and a hand back.

import { conversationOf, getJSON, sendJSON, withQuery } from "./api.js";
import {
  empty,
  errorText,
  fill,
  h,
  field,
  header,
  say,
  section,
  submitting,
  table,
  values,
  when,
} from "./ui.js";

const EVERY_MS = 4000;
const STATUS = { waiting: "Waiting", with_agent: "With a person", released: "Handed back" };
const ROLE = { user: "User", assistant: "Assistant", agent: "Person", system: "System", tool: "Tool" };

let lastStatus = "waiting";

const COLUMNS = [
  {
    label: "Conversation",
    cell: (x) =>
      h(
        "a",
        { href: `#handoffs/${encodeURIComponent(x.session_id)}?user=${encodeURIComponent(x.user_id)}` },
        `Open ${x.user_id}'s conversation`,
      ),
  },
  { label: "User", cell: (x) => x.user_id },
  { label: "Assistant", cell: (x) => x.assistant_id },
  { label: "Status", cell: (x) => STATUS[x.status] || x.status },
  { label: "Why", cell: (x) => x.reason },
  { label: "Asked", cell: (x) => when(x.requested_at) },
  { label: "Webhook", cell: webhookText },
];

function webhookText(x) {
  const hook = x.webhook;
  if (!hook || !hook.status) return "none";
  const tries = hook.attempts ? ` (${hook.attempts} tries)` : "";
  return `${hook.status}${tries}${hook.error ? `: ${hook.error}` : ""}`;
}

export function render(root, rest, signal) {
  if (rest) return renderOne(root, rest, signal);
  const form = h(
    "form",
    { class: "inline-form", "aria-label": "Which hand-offs" },
    field({
      label: "Show",
      name: "status",
      type: "select",
      value: lastStatus,
      options: [
        ["waiting", "Waiting"],
        ["with_agent", "With a person"],
        ["all", "All"],
      ],
    }),
  );
  const box = h("div", {});
  const line = h("p", { class: "muted small" });
  const queue = async () => {
    lastStatus = values(form).status;
    const { data } = await getJSON(withQuery("/v1/admin/handoffs", { status: lastStatus }), { signal });
    line.textContent = `Updated ${new Date().toLocaleTimeString("en-GB")} · refreshed every few seconds.`;
    return data.length ? table("Hand-offs", COLUMNS, data) : empty("Nobody is waiting for a person.");
  };
  // A refresh replaces the list only with a new one; a failure says so and keeps the old list.
  const refresh = async () => {
    try {
      box.replaceChildren(await queue());
    } catch (error) {
      if (error.name !== "AbortError") line.textContent = `Could not refresh: ${errorText(error)}`;
    }
  };
  form.elements.status.addEventListener("change", () => fill(box, queue, "Loading the queue…"));
  root.append(header("Hand-offs"), form, line, box);
  fill(box, queue, "Loading the queue…");
  const timer = setInterval(refresh, EVERY_MS);
  return () => clearInterval(timer);
}

function messageItem(m) {
  return h(
    "li",
    { class: `convo-msg convo-${m.role}`, "data-role": m.role },
    h(
      "p",
      { class: "convo-head" },
      h("strong", {}, ROLE[m.role] || m.role),
      ` · ${when(m.created_at)}`,
      m.status !== "complete" ? ` · ${m.status}` : "",
    ),
    h("p", { class: "convo-text" }, m.content || ""),
  );
}

function renderOne(root, rest, signal) {
  const [encoded, query] = rest.split("?");
  const sessionId = decodeURIComponent(encoded);
  const userId = new URLSearchParams(query || "").get("user") || "";
  const list = h("ol", { class: "convo", "aria-label": "Messages" });
  const convoBox = h("div", {}, list);
  const line = h("p", { class: "muted small", role: "status" });
  const base = `/v1/admin/handoffs/${encodeURIComponent(sessionId)}`;

  const loadMessages = async () => {
    const { data } = await conversationOf(sessionId, userId, signal);
    list.replaceChildren(
      ...(data.length ? data.map(messageItem) : [h("li", { class: "muted" }, "No messages.")]),
    );
    return list;
  };
  const form = h(
    "form",
    { class: "reply-form" },
    field({
      label: "Your reply",
      name: "content",
      type: "textarea",
      rows: 3,
      required: true,
      hint: "Ctrl+Enter sends.",
    }),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "button button-primary" }, "Send reply"),
      h("button", { type: "button", class: "button", id: "release" }, "Hand back to the assistant"),
      line,
    ),
  );
  form.elements.content.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const { content } = values(form);
    if (!content.trim()) return say(line, "Write a reply first.", true);
    submitting(form, line, async () => {
      await sendJSON("POST", `${base}/reply`, { content });
      form.reset();
      say(line, "Sent.");
      await loadMessages();
    });
  });
  form.querySelector("#release").addEventListener("click", () =>
    submitting(form, line, async () => {
      const handoff = await sendJSON("POST", `${base}/release`, {});
      say(line, `Handed back: ${STATUS[handoff.status] || handoff.status}.`);
    }),
  );

  root.append(
    h("p", {}, h("a", { href: "#handoffs" }, "← The queue")),
    header("Conversation"),
    h("p", { class: "muted" }, `User ${userId} · `, h("code", {}, sessionId)),
    section("Messages", convoBox),
    section("Reply", form),
  );
  fill(convoBox, loadMessages, "Loading the conversation…");
  const timer = setInterval(
    () =>
      loadMessages().catch((error) => {
        if (error.name !== "AbortError") say(line, `Could not refresh: ${errorText(error)}`, true);
      }),
    EVERY_MS,
  );
  return () => clearInterval(timer);
}

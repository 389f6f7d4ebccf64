// One assistant: its prompt and settings as a form; the changes are the draft, which can be
// tried beside the live assistant before it is saved (PATCH), and its versions below.

import { getJSON, sendJSON } from "./api.js";
import { renderVersions } from "./assistant-versions.js";
import { fill, h, field, header, say, section, submitting, uid, values } from "./ui.js";

const ON_DISCONNECT = [
  ["", "As the server is set"],
  ["continue", "Go on and keep the answer"],
  ["stop", "Stop the answer"],
];

/** The form's fields, each read back into the API's type. */
const FIELDS = [
  { name: "name", label: "Name", kind: "text", required: true, maxlength: 200 },
  { name: "description", label: "Description", kind: "textarea", rows: 2 },
  { name: "system_prompt", label: "System prompt", kind: "textarea", rows: 8 },
  { name: "provider", label: "Engine (provider id)", kind: "text", required: true },
  { name: "model", label: "Model", kind: "text", required: true },
  { name: "max_context_tokens", label: "Context window (tokens)", kind: "int", min: 64 },
  { name: "max_answer_tokens", label: "Longest answer (tokens)", kind: "int", min: 1 },
  {
    name: "temperature",
    label: "Temperature",
    kind: "number",
    min: 0,
    max: 2,
    step: 0.1,
    hint: "Empty: the engine's default.",
  },
  {
    name: "fallback_providers",
    label: "Fallback engines",
    kind: "list",
    hint: "Provider ids, separated by commas, tried in turn.",
  },
  {
    name: "fallback_answer",
    label: "Canned answer when every engine fails",
    kind: "textarea",
    rows: 2,
    nullable: true,
  },
  {
    name: "knowledge_bases",
    label: "Knowledge bases",
    kind: "list",
    hint: "Knowledge base ids, separated by commas.",
  },
  {
    name: "retention_days",
    label: "Keep conversations (days)",
    kind: "int",
    min: 1,
    nullable: true,
    hint: "Empty: the server's retention.",
  },
  {
    name: "stream_on_disconnect",
    label: "When a streaming client goes away",
    kind: "choice",
    options: ON_DISCONNECT,
  },
  { name: "cache_answers", label: "Answer repeated questions from the cache", kind: "bool" },
  { name: "enabled", label: "On (people can chat with it)", kind: "bool" },
  {
    name: "handoff",
    label: "Hand-off policy (JSON)",
    kind: "json",
    rows: 5,
    hint: 'Empty: no hand-off. E.g. {"on_request": true, "on_engine_failure": true, "on_guard_blocks": 2, "webhook_url": null, "message": "A person will answer soon."}',
  },
];

function shown(spec, value) {
  if (value === null || value === undefined) return "";
  if (spec.kind === "list") return value.join(", ");
  if (spec.kind === "json") return JSON.stringify(value, null, 2);
  return value;
}

function parsed(spec, text) {
  if (spec.kind === "bool") return Boolean(text);
  if (spec.kind === "list")
    return text
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  if (spec.kind === "int" || spec.kind === "number") {
    if (text.trim() === "") return null;
    const n = Number(text);
    if (!Number.isFinite(n)) throw new Error(`${spec.label} must be a number`);
    return n;
  }
  if (spec.kind === "json") {
    if (text.trim() === "") return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`${spec.label} is not valid JSON`);
    }
  }
  if (spec.kind === "choice") return text || null;
  if (spec.nullable && text === "") return null;
  return text;
}

/** The fields the form changes, as an AssistantUpdate (the draft). */
function draftOf(form, assistant) {
  const read = values(form);
  const draft = {};
  for (const spec of FIELDS) {
    const value = parsed(spec, read[spec.name]);
    const before = assistant[spec.name] ?? (spec.kind === "list" ? [] : null);
    if (JSON.stringify(value) !== JSON.stringify(before)) draft[spec.name] = value;
  }
  return draft;
}

function control(spec, assistant) {
  const value = shown(spec, assistant[spec.name]);
  const { name, label, hint } = spec;
  const extra = {
    required: spec.required,
    maxlength: spec.maxlength,
    min: spec.min,
    max: spec.max,
    step: spec.step,
    rows: spec.rows,
  };
  if (spec.kind === "bool") return field({ label, name, type: "checkbox", value: assistant[name] });
  if (spec.kind === "choice")
    return field({ label, name, type: "select", value: value || "", options: spec.options, hint });
  if (spec.kind === "textarea" || spec.kind === "json")
    return field({
      label,
      name,
      type: "textarea",
      value,
      hint,
      spellcheck: spec.kind === "json" ? "false" : null,
      ...extra,
    });
  const type = spec.kind === "int" || spec.kind === "number" ? "number" : "text";
  return field({
    label,
    name,
    type,
    value,
    hint,
    inputmode: spec.kind === "int" ? "numeric" : null,
    ...extra,
  });
}

function answerCard(title, side) {
  const card = h("article", { class: "try-answer", "aria-label": title }, h("h3", {}, title));
  if (!side) return card;
  if (side.error) {
    const e = side.error;
    card.append(
      h(
        "p",
        { class: "form-error", role: "alert" },
        typeof e === "string" ? e : `${e.message || ""} (${e.code || "error"})`,
      ),
    );
  }
  if (side.answer !== undefined && side.answer !== null)
    card.append(h("p", { class: "try-text" }, side.answer));
  const usage = side.usage
    ? ` · ${side.usage.prompt_tokens ?? "?"} + ${side.usage.completion_tokens ?? "?"} tokens`
    : "";
  card.append(
    h("p", { class: "muted small" }, `${side.engine || "no engine"} · ${side.model || ""}${usage}`),
  );
  return card;
}

function tryPanel(assistant, form) {
  const line = h("p", { class: "muted small", role: "status" });
  const results = h("div", { class: "try-results", "aria-live": "polite" });
  const tryForm = h(
    "form",
    { class: "inline-form" },
    field({
      label: "Question to try",
      name: "question",
      type: "text",
      required: true,
      maxlength: 4000,
      autocomplete: "off",
    }),
    h("button", { type: "submit", class: "button" }, "Try live and draft"),
  );
  tryForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = values(tryForm).question.trim();
    if (!question) return say(line, "Write a question to try first.", true);
    submitting(tryForm, line, async () => {
      const draft = draftOf(form, assistant);
      results.replaceChildren(
        h("p", { class: "loading" }, h("span", { class: "spinner", "aria-hidden": "true" }), "Asking both…"),
      );
      try {
        const answer = await sendJSON(
          "POST",
          `/v1/admin/assistants/${encodeURIComponent(assistant.id)}/try`,
          { question, draft },
        );
        results.replaceChildren(
          answerCard(`Live (v${assistant.version})`, answer.live),
          answerCard(Object.keys(draft).length ? "Draft (unsaved)" : "Draft (no changes)", answer.draft),
        );
      } catch (error) {
        results.replaceChildren();
        throw error;
      }
    });
  });
  return section(
    "Try a question",
    h(
      "p",
      { class: "muted small" },
      "Asks the live assistant and your unsaved draft at once; nothing is stored.",
    ),
    tryForm,
    line,
    results,
  );
}

export function renderEditor(root, assistantId, signal) {
  const box = h("div", { class: "view-body" });
  root.append(h("p", {}, h("a", { href: "#assistants" }, "← All assistants")), box);
  const load = async () => {
    const assistant = await getJSON(`/v1/admin/assistants/${encodeURIComponent(assistantId)}`, { signal });
    return editor(assistant, () => fill(box, load, "Loading the assistant…"));
  };
  fill(box, load, "Loading the assistant…");
  return null;
}

function editor(assistant, reload) {
  const line = h("p", { class: "muted small", role: "status" });
  const form = h(
    "form",
    { class: "edit-form", "aria-label": `Settings of ${assistant.name}` },
    h(
      "div",
      { class: "form-grid" },
      FIELDS.map((spec) => control(spec, assistant)),
    ),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "button button-primary" }, "Save"),
      line,
    ),
  );
  // What Save would write, said as the form changes (the draft that Try asks too).
  form.addEventListener("input", () => {
    try {
      const changed = Object.keys(draftOf(form, assistant));
      say(line, changed.length ? `Not saved yet: ${changed.join(", ")}.` : "");
    } catch (error) {
      say(line, `Not saved yet: ${error.message}.`);
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, line, async () => {
      let draft;
      try {
        draft = draftOf(form, assistant);
      } catch (error) {
        return say(line, error.message, true);
      }
      if (!Object.keys(draft).length) return say(line, "Nothing has changed.");
      const saved = await sendJSON(
        "PATCH",
        `/v1/admin/assistants/${encodeURIComponent(assistant.id)}`,
        draft,
      );
      await reload();
      const status = document.querySelector("[data-saved]");
      if (status) say(status, `Saved as version ${saved.version}.`);
    });
  });
  const versions = h("div", { class: "versions" });
  renderVersions(versions, assistant, reload);
  const saved = h("p", { class: "muted small", role: "status", "data-saved": "" });
  const titleId = uid("title");
  return h(
    "div",
    { "aria-labelledby": titleId },
    header(`${assistant.name}`),
    h(
      "p",
      { class: "muted", id: titleId },
      h("code", {}, assistant.id),
      ` · version ${assistant.version} · ${assistant.enabled ? "on" : "off"}`,
    ),
    saved,
    section("Prompt and settings", form),
    tryPanel(assistant, form),
    section("Versions", versions),
  );
}

// Small pieces every view uses: elements, the loading / empty / error states, tables that
// scroll on a phone, forms read as objects, a confirmation, and how numbers and times read.

import { ApiError, sendJSON } from "./api.js";

/** An element: attributes (on* are listeners; `text` is textContent), then children. Text is
 * always text: nothing here parses HTML. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") element.textContent = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

let idCount = 0;
/** An id no other element has, for label `for` and aria references. */
export function uid(prefix) {
  idCount += 1;
  return `${prefix}-${idCount}`;
}

/** Plain words for a refusal, with its code and trace id for support. */
export function errorText(error) {
  if (!(error instanceof ApiError)) return (error && error.message) || `Something went wrong: ${error}`;
  if (error.status === 0) return "Can't reach chatgate right now. Check the connection and try again.";
  const trace = error.traceId ? ` Trace id: ${error.traceId}.` : "";
  if (error.status === 404 && error.code === "not_found") {
    return `This part of the console is not available on this server yet (${error.code}).${trace}`;
  }
  return `${error.message} (${error.code}).${trace}`;
}

/** A refusal of the caller itself (signed out, or no longer an admin) is the console's to
 * handle, whichever view met it: app.js listens. */
function noticeAccess(error) {
  if (!(error instanceof ApiError)) return;
  if (error.status === 401 || (error.status === 403 && error.code === "admin_required")) {
    window.dispatchEvent(new CustomEvent("console:refused", { detail: error.status }));
  }
}

export function loading(text = "Loading…") {
  return h(
    "p",
    { class: "loading state", role: "status" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    text,
  );
}

export function empty(text) {
  return h("p", { class: "state state-empty muted", role: "status" }, text);
}

/** The error state: what went wrong, and a way to try again. */
export function failure(error, retry) {
  noticeAccess(error);
  return h(
    "div",
    { class: "state state-error", role: "alert" },
    h("p", { text: errorText(error) }),
    retry ? h("button", { type: "button", class: "button", onclick: retry }, "Try again") : null,
  );
}

const filling = new WeakMap(); // box -> the latest fill asked of it

/** Fills `box` with what `load` draws: loading first, then its content or the error state. When
 * a box is filled again before an earlier fill ends, the earlier one's answer is dropped. */
export async function fill(box, load, label) {
  const turn = (filling.get(box) || 0) + 1;
  filling.set(box, turn);
  box.replaceChildren(loading(label));
  box.setAttribute("aria-busy", "true");
  let content;
  try {
    content = await load();
  } catch (error) {
    if (filling.get(box) !== turn || (error && error.name === "AbortError")) return;
    content = failure(error, () => fill(box, load, label));
  }
  if (filling.get(box) !== turn) return;
  box.replaceChildren(...[content].flat().filter(Boolean));
  box.removeAttribute("aria-busy");
}

/** A table in a region that scrolls sideways on a narrow screen (keyboard too: it takes focus).
 * columns: [{label, cell(row) -> Node|string, numeric?}] */
export function table(label, columns, rows) {
  const head = h(
    "tr",
    {},
    columns.map((c) => h("th", { scope: "col", class: c.numeric ? "num" : null }, c.label)),
  );
  const body = rows.map((row) =>
    h(
      "tr",
      {},
      columns.map((c) => h("td", { class: c.numeric ? "num" : null }, c.cell(row) ?? "")),
    ),
  );
  return h(
    "div",
    { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, label),
      h("thead", {}, head),
      h("tbody", {}, body),
    ),
  );
}

/** A labelled control: {label, name, type?, value?, options?, hint?, ...attributes} */
export function field({ label, name, type = "text", value, options, hint, ...attrs }) {
  const id = uid(`f-${name}`);
  const hintId = hint ? `${id}-hint` : null;
  let control;
  if (type === "select") {
    control = h(
      "select",
      { id, name, ...attrs },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
    );
  } else if (type === "textarea") {
    control = h("textarea", { id, name, ...attrs });
    control.value = value ?? "";
  } else if (type === "checkbox") {
    control = h("input", { id, name, type, checked: Boolean(value), ...attrs });
    return h("div", { class: "field field-check" }, control, h("label", { for: id }, label));
  } else {
    control = h("input", { id, name, type, ...attrs });
    control.value = value ?? "";
  }
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("p", { id: hintId, class: "muted small" }, hint) : null,
  );
}

/** A form's controls as an object of strings (checkboxes as booleans). */
export function values(form) {
  const out = {};
  for (const control of form.elements) {
    if (!control.name) continue;
    out[control.name] = control.type === "checkbox" ? control.checked : control.value;
  }
  return out;
}

/** A form's status line, for what a submit did (role=status) or why it failed (role=alert). */
export function say(line, text, isError = false) {
  line.textContent = text;
  line.classList.toggle("form-error", isError);
  line.setAttribute("role", isError ? "alert" : "status");
}

/** Runs `action` with the form's submit button off, saying what went wrong in `line`. */
export async function submitting(form, line, action) {
  const button = form.querySelector("[type=submit]");
  if (button) button.disabled = true;
  say(line, "");
  try {
    await action();
  } catch (error) {
    noticeAccess(error);
    say(line, errorText(error), true);
  } finally {
    if (button) button.disabled = false;
  }
}

/** Asks before something that cannot be undone; resolves true for OK (Escape is Cancel). */
export function confirmAction(title, text, ok = "OK") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

/** Asks (`title`, `text`, the button's `ok`), then DELETEs `path`; says `done` or the error in
 * `line`, and `reload`s after a removal. */
export async function removeAfterAsking({ title, text, ok, path, done, line, reload }) {
  if (!(await confirmAction(title, text, ok))) return;
  try {
    await sendJSON("DELETE", path);
    say(line, done);
    reload();
  } catch (error) {
    say(line, errorText(error), true);
  }
}

const numbers = new Intl.NumberFormat("en-US");
export const count = (n) => numbers.format(n ?? 0);
export const money = (n) =>
  (n ?? 0).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 });
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" }) + " UTC";
}

/** A heading with the view's actions beside it. */
export function header(title, ...actions) {
  return h("div", { class: "view-head" }, h("h1", { id: "view-title", tabindex: "-1" }, title), ...actions);
}

/** A section with a heading, for the parts of a view. */
export function section(title, ...children) {
  const id = uid("section");
  return h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

// API keys: create one (its secret shown this once, with a copy button), revoke one, and what
// each has used (the usage ledger grouped by key).

import { getJSON, sendJSON, withQuery } from "./api.js";
import {
  count,
  empty,
  errorText,
  fill,
  h,
  field,
  header,
  money,
  removeAfterAsking,
  say,
  section,
  submitting,
  table,
  values,
  when,
} from "./ui.js";

function secretBox(created, onDone) {
  const line = h("p", { class: "muted small", role: "status" });
  const secret = h("input", {
    type: "text",
    readonly: true,
    id: "new-secret",
    class: "secret",
    "aria-describedby": "new-secret-note",
    spellcheck: "false",
  });
  secret.value = created.secret;
  const copy = h("button", { type: "button", class: "button" }, "Copy");
  copy.addEventListener("click", async () => {
    secret.select();
    try {
      await navigator.clipboard.writeText(created.secret);
      say(line, "Copied.");
    } catch {
      say(line, "The browser did not allow copying: the secret is selected, copy it with Ctrl+C.");
    }
  });
  const done = h("button", { type: "button", class: "button button-primary" }, "I have kept it");
  const box = h(
    "div",
    { class: "secret-box", role: "alert" },
    h("h3", {}, `The secret of “${created.name}”`),
    h("p", { id: "new-secret-note" }, "Shown this once: chatgate keeps only its hash. Copy it now."),
    h("label", { for: "new-secret", class: "visually-hidden" }, "The new key's secret"),
    h("div", { class: "secret-row" }, secret, copy),
    line,
    done,
  );
  const close = () => {
    secret.value = "";
    box.remove();
    onDone();
  };
  done.addEventListener("click", close);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  queueMicrotask(() => copy.focus());
  return box;
}

export function render(root, _rest, signal) {
  const list = h("div", {});
  const created = h("div", {});
  const line = h("p", { class: "muted small", role: "status" });
  const listLine = h("p", { class: "muted small", role: "status" });
  const form = h(
    "form",
    { class: "form-grid" },
    field({ label: "Name", name: "name", required: true, maxlength: 200, autocomplete: "off" }),
    field({
      label: "Kind",
      name: "kind",
      type: "select",
      value: "user",
      options: [
        ["user", "User key (acts as one user)"],
        ["service", "Service key (a back end acting for its users)"],
      ],
    }),
    field({
      label: "User id",
      name: "user_id",
      maxlength: 255,
      autocomplete: "off",
      hint: "For a user key: the user it acts as.",
    }),
    field({
      label: "Allowed networks",
      name: "allowed_cidrs",
      autocomplete: "off",
      hint: "Optional: CIDRs separated by commas, e.g. 10.0.0.0/8.",
    }),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "button button-primary" }, "Create key"),
      line,
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, line, async () => {
      const v = values(form);
      const body = {
        name: v.name.trim(),
        kind: v.kind,
        user_id: v.user_id.trim() || null,
        allowed_cidrs: v.allowed_cidrs
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean),
      };
      const key = await sendJSON("POST", "/v1/admin/keys", body);
      form.reset();
      created.replaceChildren(secretBox(key, () => form.elements.name.focus()));
      load();
    });
  });

  const revoke = (key) =>
    removeAfterAsking({
      title: `Revoke “${key.name}”?`,
      text: "Calls with this key are refused from now on. This cannot be undone.",
      ok: "Revoke",
      path: `/v1/admin/keys/${encodeURIComponent(key.id)}`,
      done: `“${key.name}” is revoked.`,
      line: listLine,
      reload: load,
    });

  const load = () =>
    fill(
      list,
      async () => {
        const [{ data: keys }, usage] = await Promise.all([
          getJSON("/v1/admin/keys", { signal }),
          getJSON(withQuery("/v1/admin/usage", { group_by: "key" }), { signal }).catch((error) => ({
            error,
          })),
        ]);
        if (!keys.length) return empty("No API keys yet.");
        const used = new Map((usage.data || []).map((row) => [row.group, row]));
        const usageCell = (k) => {
          if (usage.error) return h("span", { class: "muted" }, "not available");
          const row = used.get(k.id);
          return row
            ? `${count(row.requests)} ${row.requests === 1 ? "request" : "requests"} · ${count(row.prompt_tokens + row.completion_tokens)} tokens · ${money(row.cost)}`
            : "none";
        };
        const parts = [
          table(
            "API keys",
            [
              { label: "Name", cell: (k) => k.name },
              { label: "Kind", cell: (k) => k.kind },
              { label: "User", cell: (k) => k.user_id || "" },
              { label: "Starts with", cell: (k) => h("code", {}, k.prefix) },
              { label: "Created", cell: (k) => when(k.created_at) },
              { label: "Usage", cell: usageCell },
              { label: "State", cell: (k) => (k.revoked_at ? `Revoked ${when(k.revoked_at)}` : "Active") },
              {
                label: "Actions",
                cell: (k) =>
                  k.revoked_at
                    ? ""
                    : h(
                        "button",
                        {
                          type: "button",
                          class: "button button-quiet",
                          "aria-label": `Revoke ${k.name}`,
                          onclick: () => revoke(k),
                        },
                        "Revoke",
                      ),
              },
            ],
            keys,
          ),
        ];
        if (usage.error)
          parts.push(
            h("p", { class: "muted small", role: "status" }, `Usage per key: ${errorText(usage.error)}`),
          );
        return parts;
      },
      "Loading the keys…",
    );

  root.append(header("API keys"), section("New key", form, created), section("Keys", listLine, list));
  load();
  return null;
}

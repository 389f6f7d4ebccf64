// Budgets per user and per API key: what each has spent of its maximum this period, and a form
// to set one (PUT /v1/admin/budgets/{scope}/{id}) or remove it.

import { getJSON, sendJSON } from "./api.js";
import {
  count,
  empty,
  fill,
  h,
  field,
  money,
  removeAfterAsking,
  say,
  submitting,
  table,
  values,
  when,
} from "./ui.js";

function meter(spent, max, format) {
  if (max === null || max === undefined) return h("span", { class: "muted" }, "no limit");
  const share = max > 0 ? Math.min(spent / max, 1) : 1;
  return h(
    "span",
    { class: "spent" },
    h("meter", {
      min: "0",
      max: "1",
      value: String(share),
      low: "0.75",
      high: "0.9",
      optimum: "0",
      "aria-label": `${format(spent)} of ${format(max)}`,
    }),
    ` ${format(spent)} of ${format(max)}`,
  );
}

export function renderBudgets(box, signal) {
  const list = h("div", {});
  const line = h("p", { class: "muted small", role: "status" });
  const form = h(
    "form",
    { class: "form-grid", "aria-label": "Set a budget" },
    field({
      label: "For",
      name: "scope",
      type: "select",
      value: "user",
      options: [
        ["user", "A user"],
        ["key", "An API key"],
      ],
    }),
    field({ label: "User id or key id", name: "id", required: true, maxlength: 255, autocomplete: "off" }),
    field({
      label: "Period",
      name: "period",
      type: "select",
      value: "month",
      options: [
        ["day", "Per day"],
        ["month", "Per month"],
      ],
    }),
    field({
      label: "Most tokens",
      name: "max_tokens",
      type: "number",
      min: 1,
      step: 1,
      inputmode: "numeric",
    }),
    field({
      label: "Most cost",
      name: "max_cost",
      type: "number",
      min: 0,
      step: "any",
      hint: "At least one of the two.",
    }),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "button button-primary" }, "Set budget"),
      line,
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const v = values(form);
    if (!v.id.trim()) return say(line, "Name the user or key first.", true);
    if (v.max_tokens === "" && v.max_cost === "")
      return say(line, "Give the most tokens, the most cost, or both.", true);
    submitting(form, line, async () => {
      const body = { period: v.period };
      if (v.max_tokens !== "") body.max_tokens = Number(v.max_tokens);
      if (v.max_cost !== "") body.max_cost = Number(v.max_cost);
      const saved = await sendJSON(
        "PUT",
        `/v1/admin/budgets/${v.scope}/${encodeURIComponent(v.id.trim())}`,
        body,
      );
      say(line, `Budget set for ${saved.scope} ${saved.id}.`);
      load();
    });
  });
  const remove = (b) =>
    removeAfterAsking({
      title: `Remove the budget of ${b.scope} ${b.id}?`,
      text: "Its calls are no longer limited by it.",
      ok: "Remove",
      path: `/v1/admin/budgets/${b.scope}/${encodeURIComponent(b.id)}`,
      done: `The budget of ${b.scope} ${b.id} is removed.`,
      line,
      reload: load,
    });
  const load = () =>
    fill(
      list,
      async () => {
        const { data } = await getJSON("/v1/admin/budgets", { signal });
        if (!data.length) return empty("No budgets: nothing limits what users and keys spend.");
        return table(
          "Budgets",
          [
            { label: "For", cell: (b) => `${b.scope} ${b.id}` },
            { label: "Period", cell: (b) => b.period },
            { label: "Tokens", cell: (b) => meter(b.spent_tokens, b.max_tokens, count) },
            { label: "Cost", cell: (b) => meter(b.spent_cost, b.max_cost, money) },
            { label: "Resets", cell: (b) => when(b.resets_at) },
            {
              label: "Actions",
              cell: (b) =>
                h(
                  "button",
                  {
                    type: "button",
                    class: "button button-quiet",
                    "aria-label": `Remove ${b.scope} ${b.id}`,
                    onclick: () => remove(b),
                  },
                  "Remove",
                ),
            },
          ],
          data,
        );
      },
      "Loading the budgets…",
    );
  box.append(list, form);
  load();
}

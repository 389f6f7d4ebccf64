// Usage and cost: a date range, its totals, columns by day, bars by assistant, user, key and
// model (the numbers in a table under each), and the budgets.

import { getJSON, withQuery } from "./api.js";
import { renderBudgets } from "./budgets.js";
import { renderPrices } from "./prices.js";
import { bars, columns } from "./chart.js";
import { count, empty, fill, h, field, header, money, section, table, values } from "./ui.js";

const GROUPS = [
  ["assistant", "By assistant"],
  ["user", "By user"],
  ["key", "By API key"],
  ["model", "By model"],
];
const MEASURES = {
  cost: { label: "Cost", of: (r) => r.cost, format: money },
  tokens: { label: "Tokens", of: (r) => r.prompt_tokens + r.completion_tokens, format: count },
  requests: { label: "Requests", of: (r) => r.requests, format: count },
};

const isoDay = (date) => date.toISOString().slice(0, 10);
function nextDay(day) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + 1);
  return isoDay(date);
}

/** Every day from `first` to `last`, both included (at most a year and a bit). */
function daysOf(first, last) {
  const days = [];
  for (let day = first; day <= last && days.length < 400; day = nextDay(day)) days.push(day);
  return days;
}

function totals(rows) {
  const sum = (f) => rows.reduce((n, r) => n + (r[f] || 0), 0);
  const items = [
    ["Requests", count(sum("requests"))],
    ["Prompt tokens", count(sum("prompt_tokens"))],
    ["Answer tokens", count(sum("completion_tokens"))],
    ["Cost", money(sum("cost"))],
    ["From the cache", count(sum("cached_requests"))],
  ];
  return h(
    "dl",
    { class: "totals", "aria-label": "Totals" },
    items.map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", { "data-total": name }, value))),
  );
}

function numbers(label, rows, name) {
  return table(
    label,
    [
      { label: name, cell: (r) => r.label },
      { label: "Requests", cell: (r) => count(r.requests), numeric: true },
      { label: "Prompt tokens", cell: (r) => count(r.prompt_tokens), numeric: true },
      { label: "Answer tokens", cell: (r) => count(r.completion_tokens), numeric: true },
      { label: "Cost", cell: (r) => money(r.cost), numeric: true },
    ],
    rows,
  );
}

export function render(root, _rest, signal) {
  const today = new Date();
  const monthAgo = new Date(today.getTime() - 29 * 86400_000);
  const form = h(
    "form",
    { class: "inline-form", "aria-label": "Date range" },
    field({ label: "From", name: "since", type: "date", value: isoDay(monthAgo), required: true }),
    field({ label: "To (included)", name: "to", type: "date", value: isoDay(today), required: true }),
    field({
      label: "Measure",
      name: "measure",
      type: "select",
      value: "cost",
      options: Object.entries(MEASURES).map(([k, m]) => [k, m.label]),
    }),
    h("button", { type: "submit", class: "button button-primary" }, "Show"),
    h(
      "details",
      { class: "usage-only" },
      h("summary", {}, "Only one user, key or assistant"),
      h(
        "div",
        { class: "inline-form" },
        field({ label: "User id", name: "user_id", autocomplete: "off" }),
        field({ label: "API key id", name: "key_id", autocomplete: "off" }),
        field({ label: "Assistant id", name: "assistant_id", autocomplete: "off" }),
      ),
    ),
  );
  const body = h("div", { class: "usage" });
  const budgets = h("div", {});
  const prices = h("div", {});
  root.append(header("Usage & cost"), form, body, section("Budgets", budgets), section("Prices", prices));

  const load = () =>
    fill(
      body,
      async () => {
        const v = values(form);
        const measure = MEASURES[v.measure];
        const range = {
          since: v.since,
          until: v.to ? nextDay(v.to) : "",
          user_id: v.user_id.trim(),
          key_id: v.key_id.trim(),
          assistant_id: v.assistant_id.trim(),
        };
        const ask = (group_by) =>
          getJSON(withQuery("/v1/admin/usage", { group_by, ...range }), { signal }).then((r) => r.data);
        const [days, keyNames, ...grouped] = await Promise.all([
          ask("day"),
          getJSON("/v1/admin/keys", { signal }).then(
            (r) => new Map(r.data.map((k) => [k.id, k.name])),
            () => new Map(),
          ),
          ...GROUPS.map(([group]) => ask(group)),
        ]);
        if (!days.length) return [totals([]), empty("Nothing was used in this range.")];
        const labelOf = (group, value) => {
          if (value === null || value === undefined) return group === "key" ? "(no key)" : "(none)";
          return group === "key" && keyNames.has(value) ? keyNames.get(value) : String(value);
        };
        const parts = [totals(days)];
        const dayRows = days.map((r) => ({ ...r, label: r.group }));
        const byDay = new Map(dayRows.map((r) => [r.group, measure.of(r)]));
        parts.push(
          section(
            "By day",
            columns(
              `${measure.label} by day`,
              daysOf(v.since, v.to).map((day) => ({ label: day.slice(5), value: byDay.get(day) || 0 })),
              measure.format,
            ),
            numbers("Usage by day", dayRows, "Day"),
          ),
        );
        GROUPS.forEach(([group, title], i) => {
          const rows = grouped[i].map((r) => ({ ...r, label: labelOf(group, r.group) }));
          const top = [...rows].sort((a, b) => measure.of(b) - measure.of(a)).slice(0, 10);
          parts.push(
            section(
              title,
              rows.length
                ? bars(
                    `${measure.label} ${title.toLowerCase()}`,
                    top.map((r) => ({ label: r.label, value: measure.of(r) })),
                    measure.format,
                  )
                : empty("Nothing."),
              rows.length
                ? numbers(
                    `Usage ${title.toLowerCase()}`,
                    rows,
                    title.replace("By ", "").replace(/^./, (c) => c.toUpperCase()),
                  )
                : null,
            ),
          );
        });
        return parts;
      },
      "Loading the usage…",
    );

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  form.elements.measure.addEventListener("change", load);
  load();
  renderBudgets(budgets, signal);
  renderPrices(prices, signal);
  return null;
}

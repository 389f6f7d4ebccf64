// Prices per model (per million prompt and answer tokens), which the ledger costs usage at:
// the list, and a form to set or remove one. A change applies to usage recorded after it.

import { getJSON, sendJSON } from "./api.js";
import { empty, fill, h, field, removeAfterAsking, say, submitting, table, values } from "./ui.js";

/** A model's name in a path: it may hold "/" (openai/gpt-4o), which the route keeps. */
const modelPath = (model) => `/v1/admin/prices/${model.split("/").map(encodeURIComponent).join("/")}`;

export function renderPrices(box, signal) {
  const list = h("div", {});
  const line = h("p", { class: "muted small", role: "status" });
  const form = h(
    "form",
    { class: "form-grid", "aria-label": "Set a price" },
    field({ label: "Model", name: "model", required: true, maxlength: 200, autocomplete: "off" }),
    field({
      label: "Prompt, per million tokens",
      name: "input",
      type: "number",
      min: 0,
      step: "any",
      required: true,
    }),
    field({
      label: "Answer, per million tokens",
      name: "output",
      type: "number",
      min: 0,
      step: "any",
      required: true,
    }),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "button button-primary" }, "Set price"),
      line,
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const v = values(form);
    if (!v.model.trim() || v.input === "" || v.output === "") {
      return say(line, "Give the model and both prices.", true);
    }
    submitting(form, line, async () => {
      const body = { input_per_million: Number(v.input), output_per_million: Number(v.output) };
      const saved = await sendJSON("PUT", modelPath(v.model.trim()), body);
      say(line, `The price of ${saved.model} is set: it costs what is used from now on.`);
      form.reset();
      load();
    });
  });
  const remove = (price) =>
    removeAfterAsking({
      title: `Remove the price of ${price.model}?`,
      text: "What it is used for from now on costs nothing in the ledger.",
      ok: "Remove",
      path: modelPath(price.model),
      done: `The price of ${price.model} is removed.`,
      line,
      reload: load,
    });
  const load = () =>
    fill(
      list,
      async () => {
        const { data } = await getJSON("/v1/admin/prices", { signal });
        if (!data.length) return empty("No prices: usage is counted in tokens and costs nothing.");
        return table(
          "Prices",
          [
            { label: "Model", cell: (p) => p.model },
            { label: "Prompt / million", cell: (p) => String(p.input_per_million), numeric: true },
            { label: "Answer / million", cell: (p) => String(p.output_per_million), numeric: true },
            {
              label: "Actions",
              cell: (p) =>
                h(
                  "button",
                  {
                    type: "button",
                    class: "button button-quiet",
                    "aria-label": `Remove the price of ${p.model}`,
                    onclick: () => remove(p),
                  },
                  "Remove",
                ),
            },
          ],
          data,
        );
      },
      "Loading the prices…",
    );
  box.append(list, form);
  load();
}

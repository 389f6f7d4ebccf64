// Assistants: the list, and one assistant's editor (#assistants/<id>).

import { getJSON } from "./api.js";
import { renderEditor } from "./assistant-edit.js";
import { empty, fill, h, header, table } from "./ui.js";

export function render(root, rest, signal) {
  if (rest) return renderEditor(root, decodeURIComponent(rest), signal);
  const box = h("div", { class: "view-body" });
  root.append(
    header("Assistants"),
    h(
      "p",
      { class: "muted" },
      "Open an assistant to edit its prompt and settings, try a draft, and see or restore its versions.",
    ),
    box,
  );
  fill(
    box,
    async () => {
      const { data } = await getJSON("/v1/admin/assistants", { signal });
      if (!data.length)
        return empty(
          "No assistants yet. They are created in the YAML file or with POST /v1/admin/assistants.",
        );
      return table(
        "Assistants",
        [
          { label: "Name", cell: (a) => h("a", { href: `#assistants/${encodeURIComponent(a.id)}` }, a.name) },
          { label: "Id", cell: (a) => h("code", {}, a.id) },
          { label: "Engine", cell: (a) => `${a.provider} · ${a.model}` },
          { label: "Version", cell: (a) => `v${a.version}`, numeric: true },
          { label: "State", cell: (a) => (a.enabled ? "On" : "Off") },
        ],
        data,
      );
    },
    "Loading the assistants…",
  );
  return null;
}

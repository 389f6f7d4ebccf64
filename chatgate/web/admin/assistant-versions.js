// An assistant's versions: who saved which when, a diff between any of them and the current one
// (jsdiff, vendored: window.Diff), and a roll back to an old one (a new version with its config).

import { getJSON, sendJSON } from "./api.js";
import { confirmAction, empty, errorText, fill, h, field, say, table, when } from "./ui.js";

const CONTEXT = 3;

/** A config as stable text: keys sorted, so a diff shows changes and not reorderings. */
export function configText(config) {
  const sorted = (value) => {
    if (Array.isArray(value)) return value.map(sorted);
    if (value && typeof value === "object") {
      return Object.fromEntries(
        Object.keys(value)
          .sort()
          .map((k) => [k, sorted(value[k])]),
      );
    }
    return value;
  };
  return `${JSON.stringify(sorted(config ?? {}), null, 2)}\n`;
}

/** Line by line, "- " for what the old version had and "+ " for what the current one has. */
export function diffView(oldText, newText) {
  const pre = h("pre", { class: "diff", tabindex: "0", "aria-label": "Differences" });
  const parts = window.Diff.diffLines(oldText, newText);
  if (parts.every((p) => !p.added && !p.removed))
    return h("p", { class: "muted" }, "No differences: this version is the same as the current one.");
  for (const part of parts) {
    const mark = part.added ? "+ " : part.removed ? "- " : "  ";
    const kind = part.added ? "diff-add" : part.removed ? "diff-del" : "diff-same";
    let lines = part.value.replace(/\n$/, "").split("\n");
    if (!part.added && !part.removed && lines.length > 2 * CONTEXT + 1) {
      // Long runs of unchanged lines are folded to a few either side of a change.
      const hidden = lines.length - 2 * CONTEXT;
      lines = [...lines.slice(0, CONTEXT), `… ${hidden} lines the same …`, ...lines.slice(-CONTEXT)];
    }
    pre.append(
      h(
        part.added ? "ins" : part.removed ? "del" : "span",
        { class: kind },
        lines.map((l) => `${mark}${l}\n`).join(""),
      ),
    );
  }
  return pre;
}

export function renderVersions(box, assistant, reload) {
  fill(
    box,
    async () => {
      const { data } = await getJSON(`/v1/admin/assistants/${encodeURIComponent(assistant.id)}/versions`);
      if (!data.length) return empty("No versions are recorded yet.");
      const current = data[0];
      const line = h("p", { class: "muted small", role: "status" });
      const diffBox = h("div", { class: "diff-box" });
      const older = data.slice(1);
      const picker = h(
        "form",
        { class: "inline-form" },
        field({
          label: `Compare with the current version (v${current.version})`,
          name: "version",
          type: "select",
          value: older.length ? String(older[0].version) : String(current.version),
          options: data.map((v) => [String(v.version), `v${v.version} · ${when(v.created_at)}`]),
        }),
        h("button", { type: "submit", class: "button" }, "Show the differences"),
      );
      const show = () => {
        const chosen = data.find((v) => String(v.version) === picker.elements.version.value);
        diffBox.replaceChildren(
          h("p", { class: "muted small" }, `- v${chosen.version}   + v${current.version} (current)`),
          diffView(configText(chosen.config), configText(current.config)),
        );
      };
      picker.addEventListener("submit", (event) => {
        event.preventDefault();
        show();
      });
      const restore = async (version) => {
        const ok = await confirmAction(
          `Roll back to v${version}?`,
          `The assistant gets v${version}'s prompt and settings again, as a new version. Nothing is lost: the current one stays in the list.`,
          "Roll back",
        );
        if (!ok) return;
        say(line, `Rolling back to v${version}…`);
        try {
          const back = await sendJSON(
            "POST",
            `/v1/admin/assistants/${encodeURIComponent(assistant.id)}/rollback`,
            { version },
          );
          await reload();
          const status = document.querySelector("[data-saved]");
          if (status) say(status, `Rolled back to v${version}: now version ${back.version}.`);
        } catch (error) {
          say(line, errorText(error), true);
        }
      };
      const list = table(
        "Versions",
        [
          { label: "Version", cell: (v) => `v${v.version}${v === current ? " (current)" : ""}` },
          { label: "Saved", cell: (v) => when(v.created_at) },
          { label: "By", cell: (v) => v.user_id || "the YAML file" },
          {
            label: "Prompt",
            cell: (v) => h("span", { class: "clip" }, (v.config && v.config.system_prompt) || ""),
          },
          {
            label: "Actions",
            cell: (v) =>
              v === current
                ? ""
                : h(
                    "button",
                    { type: "button", class: "button button-quiet", onclick: () => restore(v.version) },
                    `Roll back to v${v.version}`,
                  ),
          },
        ],
        data,
      );
      if (!older.length)
        return [
          list,
          line,
          h("p", { class: "muted small" }, "Only one version so far: save a change to compare."),
        ];
      show();
      return [list, picker, line, diffBox];
    },
    "Loading the versions…",
  );
}

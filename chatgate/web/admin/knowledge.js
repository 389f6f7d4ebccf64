// Knowledge bases: the list; one base's documents with their status (watched while any is
// being processed), an upload, and a search box showing what a question retrieves.

import { getJSON, sendJSON, upload } from "./api.js";
import { count, empty, fill, h, field, header, say, section, submitting, table, values, when } from "./ui.js";

const BASE = "/v1/admin/knowledge-bases";
const STATUS = { processing: "Processing", ready: "Ready", failed: "Failed" };

export function render(root, rest, signal) {
  if (rest) return renderBase(root, decodeURIComponent(rest), signal);
  const box = h("div", { class: "view-body" });
  root.append(header("Knowledge bases"), box);
  fill(
    box,
    async () => {
      const { data } = await getJSON(BASE, { signal });
      if (!data.length)
        return empty("No knowledge bases yet. Create one with POST /v1/admin/knowledge-bases.");
      return table(
        "Knowledge bases",
        [
          { label: "Name", cell: (b) => h("a", { href: `#knowledge/${encodeURIComponent(b.id)}` }, b.name) },
          { label: "Id", cell: (b) => h("code", {}, b.id) },
          { label: "Documents", cell: (b) => count(b.document_count), numeric: true },
          { label: "Embedder", cell: (b) => b.embedder },
          { label: "Updated", cell: (b) => when(b.updated_at) },
        ],
        data,
      );
    },
    "Loading the knowledge bases…",
  );
  return null;
}

function size(bytes) {
  if (bytes < 1024) return `${count(bytes)} B`;
  if (bytes < 1024 * 1024) return `${count(Math.round(bytes / 1024))} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function statusCell(d) {
  const text =
    d.status === "processing"
      ? `Processing ${Math.round((d.progress || 0) * 100)}%`
      : STATUS[d.status] || d.status;
  return h(
    "span",
    { class: `status status-${d.status}`, title: d.error ? d.error.message : null },
    text,
    d.error ? ` — ${d.error.message}` : "",
  );
}

function renderBase(root, kbId, signal) {
  const path = `${BASE}/${encodeURIComponent(kbId)}`;
  const documents = h("div", { class: "documents" });
  let timer = null;
  const loadDocuments = async () => {
    const { data } = await getJSON(`${path}/documents`, { signal });
    clearTimeout(timer);
    if (data.some((d) => d.status === "processing")) timer = setTimeout(() => refresh(), 1500);
    if (!data.length) return empty("No documents yet: upload one above.");
    return table(
      "Documents",
      [
        { label: "Name", cell: (d) => d.name },
        { label: "Status", cell: statusCell },
        { label: "Chunks", cell: (d) => count(d.chunk_count), numeric: true },
        { label: "Size", cell: (d) => size(d.size), numeric: true },
        { label: "Updated", cell: (d) => when(d.updated_at) },
      ],
      data,
    );
  };
  const refresh = async () => {
    // A quiet refresh: the table is replaced only when the new one is in.
    try {
      documents.replaceChildren(await loadDocuments());
    } catch {
      /* the next look or a reload tries again */
    }
  };

  const uploadLine = h("p", { class: "muted small", role: "status" });
  const uploadForm = h(
    "form",
    { class: "inline-form" },
    field({
      label: "Document (PDF, Word, HTML, Markdown or text)",
      name: "file",
      type: "file",
      required: true,
    }),
    h("button", { type: "submit", class: "button button-primary" }, "Upload"),
  );
  uploadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = uploadForm.elements.file.files[0];
    if (!file) return say(uploadLine, "Choose a file first.", true);
    submitting(uploadForm, uploadLine, async () => {
      const form = new FormData();
      form.append("file", file, file.name);
      const document = await upload(`${path}/documents`, form);
      say(uploadLine, `${document.name} is uploaded: its status is in the list.`);
      uploadForm.reset();
      await refresh();
    });
  });

  const results = h("div", { class: "search-results", "aria-live": "polite" });
  const searchLine = h("p", { class: "muted small", role: "status" });
  const searchForm = h(
    "form",
    { class: "inline-form", role: "search" },
    field({
      label: "Question",
      name: "query",
      type: "search",
      required: true,
      maxlength: 4000,
      autocomplete: "off",
    }),
    field({
      label: "Search by",
      name: "mode",
      type: "select",
      value: "hybrid",
      options: [
        ["hybrid", "Both (as assistants do)"],
        ["vector", "Meaning (vectors)"],
        ["keyword", "Words (keywords)"],
      ],
    }),
    h("button", { type: "submit", class: "button" }, "Search"),
  );
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const { query, mode } = values(searchForm);
    if (!query.trim()) return say(searchLine, "Write a question first.", true);
    submitting(searchForm, searchLine, async () => {
      const { data } = await sendJSON("POST", `${path}/search`, { query, mode }, { signal });
      say(
        searchLine,
        data.length
          ? `${data.length} ${data.length === 1 ? "passage" : "passages"} retrieved, best first.`
          : "Nothing retrieved for this question.",
      );
      results.replaceChildren(
        h(
          "ol",
          { class: "passages" },
          data.map((p) =>
            h(
              "li",
              { class: "passage" },
              h(
                "p",
                { class: "passage-head" },
                h("strong", {}, p.document_name),
                p.page ? ` · page ${p.page}` : "",
                ` · score ${p.score.toFixed(3)}`,
              ),
              h("p", { class: "passage-text" }, p.text),
            ),
          ),
        ),
      );
    });
  });

  const head = h("div", {});
  root.append(h("p", {}, h("a", { href: "#knowledge" }, "← All knowledge bases")), head);
  fill(
    head,
    async () => {
      const base = await getJSON(path, { signal });
      return [
        header(base.name),
        h(
          "p",
          { class: "muted" },
          h("code", {}, base.id),
          ` · ${base.embedder} · top ${base.top_k} · threshold ${base.score_threshold}`,
        ),
        section("Documents", uploadForm, uploadLine, documents),
        section("What a question retrieves", searchForm, searchLine, results),
      ];
    },
    "Loading the knowledge base…",
  ).then(() => fill(documents, loadDocuments, "Loading the documents…"));
  return () => clearTimeout(timer);
}

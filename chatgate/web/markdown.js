// Markdown to safe DOM. Neither model nor user text may run script or add markup of its own:
// raw HTML in the source is shown as text, images become links (a remote image would leak
// the conversation through its URL), and DOMPurify cleans whatever marked produced, allowing
// only the tags Markdown makes and only http(s), mailto and tel links.

const { marked, DOMPurify } = globalThis;

// prettier-ignore
const TAGS = [
  "a", "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote",
  "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
  "table", "thead", "tbody", "tr", "th", "td",
];
const ATTRIBUTES = ["href", "title", "class", "start", "align"];
const SAFE_URL = /^(?:(?:https?|mailto|tel):|[^a-z]|[a-z+.-]+(?:[^a-z+.:-]|$))/i;

const PURIFY = {
  ALLOWED_TAGS: TAGS,
  ALLOWED_ATTR: ATTRIBUTES,
  ALLOWED_URI_REGEXP: SAFE_URL,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

function escapeHtml(text) {
  return String(text)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const parser = new marked.Marked({ gfm: true, breaks: true, async: false });
parser.use({
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    image({ href, title, text }) {
      const label = text || title || href;
      return `<a href="${escapeHtml(href)}">${escapeHtml(`🖼 ${label}`)}</a>`;
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName !== "A") return;
  if (node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  } else {
    node.classList.add("dead-link");
  }
});

DOMPurify.addHook("uponSanitizeAttribute", (node, data) => {
  // Only marked's "language-xyz" classes on code survive; nothing can borrow the page's styles.
  if (
    data.attrName === "class" &&
    !(node.tagName === "CODE" && /^language-[\w+#.-]+$/.test(data.attrValue))
  ) {
    data.keepAttr = false;
  }
});

/** A sanitized DocumentFragment for Markdown source. */
export function renderMarkdown(source) {
  let html;
  try {
    html = parser.parse(String(source ?? ""));
  } catch {
    html = `<p>${escapeHtml(source)}</p>`;
  }
  return DOMPurify.sanitize(html, PURIFY);
}

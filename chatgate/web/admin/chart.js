// Bar charts drawn as SVG: columns over days, bars for the largest groups. Scaled by their
// viewBox to the width they are given (a phone too); the numbers are in a table beside each.

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

/** On a phone the chart is drawn at about half its size: its text is drawn larger to match. */
function scale() {
  const narrow = window.matchMedia("(max-width: 760px)").matches;
  return narrow ? { font: 22, row: 42, chars: 12, labels: 4 } : { font: 12, row: 26, chars: 26, labels: 8 };
}

function frame(label, width, height) {
  return s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": label,
    class: "chart",
    preserveAspectRatio: "xMinYMin meet",
  });
}

/** Columns, one per point ({label, value}), left to right; a label under every few. */
export function columns(label, points, format) {
  const width = 640;
  const height = 200;
  const base = 170;
  const { font, labels } = scale();
  const svg = frame(label, width, height);
  const top = Math.max(...points.map((p) => p.value), 0) || 1;
  const step = width / Math.max(points.length, 7); // a few days are not drawn a page wide
  const every = Math.ceil(points.length / labels);
  svg.append(s("line", { x1: 0, y1: base, x2: width, y2: base, class: "axis" }));
  svg.append(s("text", { x: 4, y: font + 2, "font-size": font, class: "chart-note" }, `max ${format(top)}`));
  points.forEach((p, i) => {
    const tall = (p.value / top) * (base - 24);
    const bar = s("rect", {
      x: i * step + step * 0.15,
      y: base - tall,
      width: step * 0.7,
      height: tall,
      class: "bar",
    });
    bar.append(s("title", {}, `${p.label}: ${format(p.value)}`));
    svg.append(bar);
    if (i % every === 0)
      svg.append(
        s(
          "text",
          {
            x: i * step + step / 2,
            y: base + font + 6,
            "font-size": font,
            class: "chart-label",
            "text-anchor": i === 0 ? "start" : "middle",
          },
          p.label,
        ),
      );
  });
  return svg;
}

/** Horizontal bars, one per row ({label, value}), largest first as given. */
export function bars(label, rows, format) {
  const width = 640;
  const { font, row, chars } = scale();
  const svg = frame(label, width, rows.length * row + 4);
  const top = Math.max(...rows.map((r) => r.value), 0) || 1;
  rows.forEach((r, i) => {
    const y = i * row + 2;
    const long = (r.value / top) * (width - 290);
    const bar = s("rect", { x: 190, y: y + 4, width: Math.max(long, 1), height: row - 10, class: "bar" });
    bar.append(s("title", {}, `${r.label}: ${format(r.value)}`));
    const name = r.label.length > chars ? `${r.label.slice(0, chars - 1)}…` : r.label;
    const middle = y + row / 2 + font / 3;
    svg.append(
      s("text", { x: 184, y: middle, "font-size": font, class: "chart-label", "text-anchor": "end" }, name),
      bar,
    );
    svg.append(
      s("text", { x: 196 + long, y: middle, "font-size": font, class: "chart-value" }, format(r.value)),
    );
  });
  return svg;
}

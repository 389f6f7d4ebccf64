// Bar charts drawn as SVG: columns over days, bars for the largest groups. Scaled by their
// viewBox to the width they are given (a phone too); the numbers are in a table beside each.

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function frame(label, width, height) {
  return s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart", preserveAspectRatio: "xMinYMin meet" });
}

/** Columns, one per point ({label, value}), left to right; a label under every few. */
export function columns(label, points, format) {
  const width = 640;
  const height = 200;
  const base = 170;
  const svg = frame(label, width, height);
  const top = Math.max(...points.map((p) => p.value), 0) || 1;
  const step = width / Math.max(points.length, 7); // a few days are not drawn a page wide
  const every = Math.ceil(points.length / 8);
  svg.append(s("line", { x1: 0, y1: base, x2: width, y2: base, class: "axis" }));
  svg.append(s("text", { x: 4, y: 14, class: "chart-note" }, `max ${format(top)}`));
  points.forEach((p, i) => {
    const tall = (p.value / top) * (base - 24);
    const bar = s("rect", { x: i * step + step * 0.15, y: base - tall, width: step * 0.7, height: tall, class: "bar" });
    bar.append(s("title", {}, `${p.label}: ${format(p.value)}`));
    svg.append(bar);
    if (i % every === 0) svg.append(s("text", { x: i * step + step / 2, y: base + 18, class: "chart-label", "text-anchor": "middle" }, p.label));
  });
  return svg;
}

/** Horizontal bars, one per row ({label, value}), largest first as given. */
export function bars(label, rows, format) {
  const width = 640;
  const row = 26;
  const svg = frame(label, width, rows.length * row + 4);
  const top = Math.max(...rows.map((r) => r.value), 0) || 1;
  rows.forEach((r, i) => {
    const y = i * row + 2;
    const long = (r.value / top) * (width - 290);
    const bar = s("rect", { x: 190, y: y + 4, width: Math.max(long, 1), height: row - 10, class: "bar" });
    bar.append(s("title", {}, `${r.label}: ${format(r.value)}`));
    const name = r.label.length > 26 ? `${r.label.slice(0, 25)}…` : r.label;
    svg.append(s("text", { x: 184, y: y + row / 2 + 3, class: "chart-label", "text-anchor": "end" }, name), bar);
    svg.append(s("text", { x: 196 + long, y: y + row / 2 + 3, class: "chart-value" }, format(r.value)));
  });
  return svg;
}

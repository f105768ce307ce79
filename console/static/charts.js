// Hand-drawn SVG charts: bars by day, stacked by model. No library, no canvas: every bar
// is an element with its numbers (data-day, data-model, data-value) and a tooltip.

const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626"];

function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

// The top of the axis: four ticks of a round step (1, 2 or 5 times a power of ten; at
// least 1 for counts, which have no fractions).
function axisMax(value, integer) {
  const want = Math.max(value, 0) / 4;
  if (want <= 0) return integer ? 4 : 1;
  const power = 10 ** Math.floor(Math.log10(want));
  const step = [1, 2, 5, 10].map((s) => s * power).find((s) => s >= want);
  return 4 * (integer ? Math.max(1, step) : step);
}

// days: ["2026-11-01", ...]; models: ["local/simulator", ...]; value(day, model) -> number.
export function stackedBars({ id, label, days, models, value, format = String, integer = false }) {
  const width = 760;
  const height = 260;
  const left = 64;
  const right = 12;
  const top = 12;
  const bottom = 44;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const totals = days.map((day) => models.reduce((sum, model) => sum + value(day, model), 0));
  const max = axisMax(Math.max(0, ...totals), integer);
  const svg = s("svg", { id, class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  svg.append(s("title", {}, label));
  for (let i = 0; i <= 4; i += 1) {
    const y = top + plotH - (plotH * i) / 4;
    svg.append(s("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, format((max * i) / 4)));
  }
  const slot = plotW / Math.max(days.length, 1);
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  const labelEvery = Math.ceil(days.length / 12);
  days.forEach((day, i) => {
    const x = left + slot * i + (slot - barW) / 2;
    let y = top + plotH;
    const group = s("g", { class: "day", "data-day": day, "data-total": totals[i] });
    models.forEach((model, m) => {
      const amount = value(day, model);
      if (!amount) return;
      const barH = (plotH * amount) / max;
      y -= barH;
      group.append(
        s(
          "rect",
          { x, y, width: barW, height: Math.max(barH, 0.5), fill: PALETTE[m % PALETTE.length], class: "bar", "data-day": day, "data-model": model, "data-value": amount },
          s("title", {}, `${day} · ${model}: ${format(amount)}`),
        ),
      );
    });
    svg.append(group);
    if (i % labelEvery === 0) {
      svg.append(s("text", { x: left + slot * i + slot / 2, y: height - bottom + 16, class: "tick", "text-anchor": "middle" }, day.slice(5)));
    }
  });
  svg.append(s("line", { x1: left, x2: width - right, y1: top + plotH, y2: top + plotH, class: "axis" }));
  return svg;
}

export function legend(models) {
  const list = document.createElement("ul");
  list.className = "legend";
  models.forEach((model, m) => {
    const item = document.createElement("li");
    const swatch = s("svg", { width: 12, height: 12, "aria-hidden": "true" }, s("rect", { width: 12, height: 12, fill: PALETTE[m % PALETTE.length] }));
    item.append(swatch, ` ${model}`);
    list.append(item);
  });
  return list;
}

// Usage and cost by day and model (GET /v1/usage?group_by=day,model), as charts and a table.
// Costs are the ones recorded with each call (prices.toml); a call on a model with no price
// has an unknown cost, shown as such and never counted as $0.
import { request } from "./api.js";
import { legend, stackedBars } from "./charts.js";
import { button, clear, errorBox, h, number, panel, usd } from "./ui.js";

function utcDay(date) {
  return date.toISOString().slice(0, 10);
}

function daysBetween(start, end) {
  const days = [];
  for (let d = new Date(`${start}T00:00:00Z`); utcDay(d) <= end && days.length < 400; d.setUTCDate(d.getUTCDate() + 1)) {
    days.push(utcDay(d));
  }
  return days;
}

export async function show(main) {
  const now = new Date();
  const start = h("input", { id: "usage-start", type: "date", value: utcDay(now).slice(0, 8) + "01" });
  const end = h("input", { id: "usage-end", type: "date", value: utcDay(now) });
  const body = h("div", { id: "usage-body" });
  main.append(
    panel(
      "Usage and cost",
      h("form", { class: "row", onsubmit: (event) => { event.preventDefault(); load(); } }, h("label", {}, "From ", start), h("label", {}, "to ", end), h("span", { class: "muted" }, "(UTC days, both included)"), button("Refresh", load, { id: "usage-refresh" })),
      body,
    ),
  );
  async function load() {
    clear(body, h("p", { class: "muted" }, "Loading…"));
    try {
      const query = new URLSearchParams({ group_by: "day,model", start: start.value, end: end.value });
      const { data } = await request("GET", `/usage?${query}`);
      render(body, data);
    } catch (error) {
      clear(body, errorBox(error));
    }
  }
  await load();
}

function render(body, report) {
  const rows = report.data;
  const models = [...new Set(rows.map((r) => r.model))].sort();
  const days = daysBetween(report.start, report.end);
  const cell = new Map(rows.map((r) => [`${r.day}|${r.model}`, r]));
  const metric = (name) => (day, model) => {
    const row = cell.get(`${day}|${model}`);
    return row ? row[name] : 0;
  };
  const t = report.totals;
  const unknown = t.unpriced_calls ? ` (cost unknown for ${number(t.unpriced_calls)} calls on models with no price)` : "";
  const prices = report.price_table || {};
  clear(
    body,
    h(
      "p",
      { id: "usage-totals" },
      `${number(t.calls)} calls · ${number(t.input_tokens)} input tokens (${number(t.cached_input_tokens)} cached) · ${number(t.output_tokens)} output tokens · ${usd(t.cost_usd_micros)}${unknown}`,
      t.failed_calls ? ` · ${number(t.failed_calls)} failed` : "",
      t.abandoned_calls ? ` · ${number(t.abandoned_calls)} abandoned` : "",
      t.estimated_calls ? ` · ${number(t.estimated_calls)} with estimated tokens` : "",
    ),
    h("p", { class: "hint" }, `Prices: table ${prices.version || "?"} as of ${prices.as_of || "?"}; ${report.cost_complete ? "every call priced" : "some calls unpriced"}.`),
  );
  if (!rows.length) return body.append(h("p", { class: "muted", id: "usage-empty" }, "No calls in this period."));
  body.append(
    legend(models),
    h("h3", {}, "Calls"),
    stackedBars({ id: "chart-calls", label: "Calls by day and model", days, models, value: metric("calls"), format: (v) => number(v), integer: true }),
    h("h3", {}, "Tokens (input + output)"),
    stackedBars({ id: "chart-tokens", label: "Tokens by day and model", days, models, value: (d, m) => metric("input_tokens")(d, m) + metric("output_tokens")(d, m), format: (v) => number(v), integer: true }),
    h("h3", {}, "Cost (USD)"),
    t.cost_usd_micros === 0
      ? h("p", { class: "hint", id: "chart-cost" }, `Every priced call in this period cost $0${models.every((m) => m.startsWith("local/")) ? " (the local simulator costs nothing)" : ""}.`)
      : stackedBars({ id: "chart-cost", label: "Cost by day and model", days, models, value: metric("cost_usd_micros"), format: (v) => usd(v) }),
    h(
      "table",
      { id: "usage-table" },
      h("thead", {}, h("tr", {}, ["Day", "Model", "Calls", "Input", "Output", "Cost", "Unpriced", "Failed"].map((x) => h("th", {}, x)))),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h("tr", {}, h("td", {}, r.day), h("td", {}, r.model), h("td", {}, number(r.calls)), h("td", {}, number(r.input_tokens)), h("td", {}, number(r.output_tokens)), h("td", {}, usd(r.cost_usd_micros)), h("td", {}, number(r.unpriced_calls)), h("td", {}, number(r.failed_calls))),
        ),
      ),
    ),
  );
}

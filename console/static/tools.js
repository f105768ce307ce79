// Tools: each registered tool, and a try-it form generated from its input JSON Schema.
import { request } from "./api.js";
import { schemaForm } from "./schemaform.js";
import { clear, errorBox, h, json, number, panel } from "./ui.js";

export async function show(main, [name]) {
  const list = h("ul", { id: "tool-list", class: "cards" });
  const detail = h("div", { id: "tool-detail" });
  main.append(h("div", { class: "split" }, panel("Tools", list), detail));
  let tools = [];
  try {
    tools = (await request("GET", "/tools")).data.data;
  } catch (error) {
    return list.append(errorBox(error));
  }
  for (const tool of tools) {
    list.append(
      h(
        "li",
        { class: tool.name === name ? "active" : "" },
        h("a", { href: `#/tools/${tool.name}` }, tool.name),
        h("p", { class: "hint" }, tool.description),
      ),
    );
  }
  const tool = tools.find((t) => t.name === name);
  if (!tool) return detail.append(panel("Try a tool", h("p", { class: "muted" }, "Pick a tool on the left.")));
  showTool(detail, tool);
}

async function showTool(detail, tool) {
  const form = schemaForm(tool.input_schema, { prefix: "tool" });
  const model = h("select", { id: "tool-model" }, h("option", { value: "" }, tool.route ? `default (${tool.route})` : "no model"));
  model.disabled = !tool.route;
  const outcome = h("div", { id: "tool-result", "aria-live": "polite" });
  const run = h("button", { id: "tool-run", type: "submit" }, "Run");
  const limits = Object.entries(tool.limits || {}).map(([k, v]) => `${k} ${v}`).join(" · ");
  detail.append(
    panel(
      tool.name,
      h("p", {}, tool.description),
      h("p", { class: "hint" }, `route ${tool.route || "none (no model)"} · ${limits}`),
      h(
        "form",
        {
          id: "tool-form",
          novalidate: true,
          onsubmit: async (event) => {
            event.preventDefault();
            clear(outcome);
            const { value, errors } = form.read();
            if (errors.length) {
              outcome.append(h("p", { class: "error", role: "alert" }, `Not sent: ${errors.map((e) => `${e.path} ${e.message}`).join("; ")}.`));
              return;
            }
            const body = { input: value };
            if (model.value) body.model = model.value;
            run.disabled = true;
            const started = performance.now();
            try {
              const { data } = await request("POST", `/tools/${encodeURIComponent(tool.name)}`, { body });
              const seconds = ((performance.now() - started) / 1000).toFixed(2);
              const usage = data.usage ? ` · ${number(data.usage.prompt_tokens)} in / ${number(data.usage.completion_tokens)} out tokens` : "";
              outcome.append(h("p", { class: "ok" }, `model ${data.model || "none"}${usage} · ${seconds} s`), json(data.output));
            } catch (error) {
              if (error.status === 400) form.serverError(error.param, error.message);
              outcome.append(errorBox(error));
            } finally {
              run.disabled = false;
            }
          },
        },
        form.element,
        h("div", { class: "field" }, h("label", { for: "tool-model" }, "Model or route"), model),
        run,
      ),
      outcome,
      h("details", {}, h("summary", {}, "Input and output schema"), json(tool.input_schema), json(tool.output_schema)),
    ),
  );
  if (tool.route) {
    try {
      const { data } = await request("GET", "/models");
      model.append(...data.data.filter((m) => !/embedding/.test(m.id)).map((m) => h("option", { value: m.id }, m.id)));
    } catch {
      // The default route still works.
    }
  }
}

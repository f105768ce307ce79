// The chat playground: a model or route from GET /v1/models, answers streamed token by
// token (fetch + SSE), and under each answer its tokens and its cost.
//
// The cost shown is the one Switchboard recorded for the call, read back from the usage
// API: the console reads today's usage by key and model before it sends, and again once
// the answer is done (a record lands about 100 ms after its call); the difference is this
// answer's cost, every attempt included (retries, fallbacks). It is shown only when the
// difference is exactly this answer (its output tokens); when other calls of the
// tenant landed at the same moment it says so instead of guessing, and a model without a
// price shows "unknown", never $0.
import { request, stream } from "./api.js";
import { button, clear, errorBox, h, number, usd } from "./ui.js";

let controller = null;
const state = { messages: [], conversationId: null };

export function leave() {
  if (controller) controller.abort();
}

export async function show(main) {
  const models = h("select", { id: "chat-model", "aria-label": "Model or route" });
  const streaming = h("input", { id: "chat-stream", type: "checkbox", checked: true });
  const store = h("input", { id: "chat-store", type: "checkbox" });
  const system = h("textarea", { id: "chat-system", rows: 2, placeholder: "Optional" });
  const transcript = h("div", { id: "chat-transcript", class: "transcript", "aria-live": "polite" });
  const input = h("textarea", { id: "chat-input", rows: 3, placeholder: "Say something" });
  const send = h("button", { id: "chat-send", type: "submit" }, "Send");
  const stop = button("Stop", () => controller && controller.abort(), { id: "chat-stop", disabled: true });
  const status = h("div", { id: "chat-status" });
  const reset = button("New chat", () => {
    state.messages = [];
    state.conversationId = null;
    clear(transcript);
    clear(status);
  });

  main.append(
    h(
      "section",
      { class: "panel chat" },
      h("h2", {}, "Chat playground"),
      h(
        "div",
        { class: "row" },
        h("label", {}, "Model or route ", models),
        h("label", {}, streaming, " Stream"),
        h("label", { title: "Keep the history server-side (Conversations)" }, store, " Store as a conversation"),
        reset,
      ),
      h("details", {}, h("summary", {}, "System prompt"), system),
      transcript,
      h(
        "form",
        {
          class: "composer",
          onsubmit: (event) => {
            event.preventDefault();
            const text = input.value.trim();
            if (!text || controller) return;
            input.value = "";
            const options = {
              model: models.value,
              stream: streaming.checked,
              store: store.checked,
              system: system.value.trim(),
            };
            ask(text, options, { transcript, send, stop, status });
          },
        },
        input,
        h("div", { class: "row" }, send, stop),
      ),
      status,
    ),
  );
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) send.click();
  });

  try {
    const { data } = await request("GET", "/models");
    const chatModels = data.data.filter((m) => !/embedding/.test(m.id));
    const routes = chatModels.filter((m) => m.owned_by === "switchboard");
    const direct = chatModels.filter((m) => m.owned_by !== "switchboard");
    const group = (label, list) =>
      h("optgroup", { label }, list.map((m) => h("option", { value: m.id }, m.id)));
    clear(models, group("Routes (fall back along a list)", routes), group("Models", direct));
    const preferred = routes.find((m) => m.id === "fast") || routes[0] || direct[0];
    if (preferred) models.value = preferred.id;
  } catch (error) {
    clear(status, errorBox(error));
  }
}

function today() {
  return new Date().toISOString().slice(0, 10);
}

async function usageRows(day) {
  const { data } = await request("GET", `/usage?start=${day}&end=${day}&group_by=key,model`);
  return new Map(data.data.map((row) => [`${row.key}|${row.model}`, row]));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// This answer's recorded cost (see the top of this file), and the models that answered
// (a route names itself in the answer; the usage records name the provider model).
async function recordedCost(before, day, usage) {
  for (let attempt = 0; attempt < 16; attempt += 1) {
    await sleep(250);
    const after = await usageRows(day);
    const delta = { calls: 0, output_tokens: 0, cost_usd_micros: 0, unpriced_calls: 0 };
    const models = new Set();
    for (const [key, row] of after) {
      const old = before.get(key) || {};
      if (row.calls === (old.calls || 0)) continue;
      models.add(row.model);
      for (const name of Object.keys(delta)) delta[name] += row[name] - (old[name] || 0);
    }
    if (!delta.calls) continue;
    const answered = [...models].join(", ");
    if (delta.output_tokens === usage.completion_tokens) {
      if (delta.unpriced_calls) return { text: `cost unknown (${answered} has no price)` };
      const attempts = delta.calls > 1 ? `, ${delta.calls} attempts` : "";
      return { text: `cost ${usd(delta.cost_usd_micros)} (as recorded: ${answered}${attempts})`, micros: delta.cost_usd_micros };
    }
    if (delta.output_tokens > usage.completion_tokens) {
      return { text: "cost: other calls were recorded at the same time; see Usage" };
    }
  }
  return { text: "cost not recorded yet; see Usage" };
}

function bubble(role, text) {
  const content = h("div", { class: "content" }, text);
  const meta = h("div", { class: "meta" });
  const element = h("article", { class: `message ${role}` }, h("div", { class: "role" }, role), content, meta);
  return { element, content, meta };
}

async function ask(text, options, view) {
  const { transcript, send, stop, status } = view;
  clear(status);
  const user = bubble("user", text);
  const answer = bubble("assistant", "");
  answer.element.classList.add("pending");
  transcript.append(user.element, answer.element);
  controller = new AbortController();
  send.disabled = true;
  stop.disabled = false;
  const day = today();
  const started = performance.now();
  let firstToken = null;
  let model = options.model;
  let usage = null;
  let reply = "";
  try {
    const body = { model: options.model };
    if (options.store) {
      if (!state.conversationId) {
        const created = await request("POST", "/conversations", {
          body: { model: options.model, ...(options.system ? { system_prompt: options.system } : {}) },
        });
        state.conversationId = created.data.id;
      }
      body.messages = [{ role: "user", content: text }];
      body.metadata = { conversation_id: state.conversationId };
    } else {
      const system = options.system ? [{ role: "system", content: options.system }] : [];
      body.messages = [...system, ...state.messages, { role: "user", content: text }];
    }
    const before = await usageRows(day).catch(() => null);
    if (options.stream) {
      body.stream = true;
      body.stream_options = { include_usage: true };
      await stream("POST", "/chat/completions", {
        body,
        signal: controller.signal,
        onEvent: (event) => {
          if (event.data === "[DONE]") return;
          const chunk = JSON.parse(event.data);
          if (chunk.error) throw Object.assign(new Error(chunk.error.message), { describe: () => `${chunk.error.code || "error"}: ${chunk.error.message}` });
          model = chunk.model || model;
          if (chunk.usage) usage = chunk.usage;
          for (const choice of chunk.choices || []) {
            const delta = (choice.delta && choice.delta.content) || "";
            if (delta) {
              if (firstToken === null) firstToken = performance.now() - started;
              reply += delta;
              answer.content.textContent = reply;
            }
          }
        },
      });
    } else {
      const { data } = await request("POST", "/chat/completions", { body, signal: controller.signal });
      model = data.model;
      usage = data.usage;
      reply = data.choices[0].message.content || "";
      answer.content.textContent = reply;
    }
    state.messages.push({ role: "user", content: text }, { role: "assistant", content: reply });
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    const parts = [`model ${model}`];
    if (usage) parts.push(`${number(usage.prompt_tokens)} in / ${number(usage.completion_tokens)} out tokens`);
    if (firstToken !== null) parts.push(`first token ${Math.round(firstToken)} ms`);
    parts.push(`${seconds} s`);
    const cost = h("span", { class: "cost" }, "cost: reading the usage API…");
    clear(answer.meta, parts.join(" · "), " · ", cost);
    if (state.conversationId) {
      answer.meta.append(" · ", h("a", { href: `#/conversations/${state.conversationId}` }, "conversation"));
    }
    answer.element.classList.remove("pending");
    answer.element.dataset.done = "true";
    if (usage && before) {
      recordedCost(before, day, usage).then(
        (found) => {
          cost.textContent = found.text;
          if (found.micros !== undefined) cost.dataset.micros = String(found.micros);
        },
        (error) => (cost.textContent = `cost unavailable: ${error.message}`),
      );
    } else {
      cost.textContent = usage ? "cost unavailable: the usage API did not answer" : "no usage reported";
    }
  } catch (error) {
    answer.element.classList.remove("pending");
    answer.element.dataset.done = "error";
    if (error.name === "AbortError") clear(answer.meta, "stopped");
    else clear(answer.meta, errorBox(error));
  } finally {
    controller = null;
    send.disabled = false;
    stop.disabled = true;
  }
}

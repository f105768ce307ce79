// Runs: the tenant's runs, the ones waiting for a person, starting an agent, and one run
// with its live event timeline and the answer / approve / reject buttons.
//
// The timeline follows GET /v1/runs/{id}/events (SSE). Every event it shows is kept in
// this tab's sessionStorage with the last event id, so after a reload it shows them again
// and asks only for what came after (`Last-Event-ID`): nothing twice, nothing missing.
// When a stream ends before its run does (a cut connection, API Gateway's 15-minute limit),
// it asks again every second until the run ends or waits for input.
import { request, stream } from "./api.js";
import { schemaForm } from "./schemaform.js";
import { button, clear, errorBox, h, json, panel, when } from "./ui.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const KEPT_EVENTS = 5000;
let following = null; // the AbortController of the timeline being followed

export function leave() {
  if (following) following.abort();
  following = null;
}

export function show(main, [id]) {
  return id ? showRun(main, id) : showList(main);
}

// --- the list -------------------------------------------------------------------------

async function showList(main) {
  const waiting = h("tbody", { id: "runs-waiting" });
  const rows = h("tbody", { id: "runs-list" });
  const more = button("Load more", () => load(), { hidden: true });
  const status = h("div");
  const head = () => h("thead", {}, h("tr", {}, ["Run", "Kind", "Status", "Agent", "Created", "Updated"].map((t) => h("th", {}, t))));
  main.append(
    panel("Waiting for you", h("p", { class: "hint" }, "Agent runs that asked a question or need an approval (status awaiting_input)."), h("table", {}, head(), waiting)),
    panel("Runs", h("table", {}, head(), rows), more, status),
  );
  startAgent(main);
  let cursor = null;
  async function load() {
    try {
      const query = cursor ? `&after=${encodeURIComponent(cursor)}` : "";
      const { data } = await request("GET", `/runs?limit=25${query}`);
      for (const run of data.data) {
        rows.append(row(run));
        if (run.status === "awaiting_input") waiting.append(row(run));
      }
      if (!waiting.children.length) waiting.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "Nothing is waiting.")));
      cursor = data.next_cursor;
      more.hidden = !data.has_more;
    } catch (error) {
      clear(status, errorBox(error));
    }
  }
  await load();
}

function agentOf(run) {
  return (run.result && run.result.agent) || (run.progress && run.progress.agent) || "";
}

function row(run) {
  return h(
    "tr",
    { dataset: { run: run.id } },
    h("td", {}, h("a", { href: `#/runs/${run.id}` }, run.id)),
    h("td", {}, run.kind),
    h("td", {}, h("span", { class: `badge ${run.status}` }, run.status)),
    h("td", {}, agentOf(run)),
    h("td", {}, when(run.created_at)),
    h("td", {}, when(run.updated_at)),
  );
}

async function startAgent(main) {
  const select = h("select", { id: "agent-name" });
  const holder = h("div");
  const status = h("div", { id: "agent-status" });
  const start = h("button", { id: "agent-start", type: "submit" }, "Start");
  let form = null;
  let agents = [];
  const section = panel(
    "Start an agent",
    h(
      "form",
      {
        novalidate: true,
        onsubmit: async (event) => {
          event.preventDefault();
          clear(status);
          const { value, errors } = form.read();
          if (errors.length) return;
          start.disabled = true;
          try {
            const body = { kind: "agent", input: { agent: select.value, input: value }, background: true };
            const { data } = await request("POST", "/runs", { body });
            location.hash = `#/runs/${data.id}`;
          } catch (error) {
            if (error.param) form.serverError(error.param.replace(/^input\.input\./, ""), error.message);
            status.append(errorBox(error));
          } finally {
            start.disabled = false;
          }
        },
      },
      h("div", { class: "field" }, h("label", { for: "agent-name" }, "Agent"), select),
      holder,
      start,
    ),
    status,
  );
  main.append(section);
  const pick = () => {
    const agent = agents.find((a) => a.name === select.value);
    if (!agent) return;
    form = schemaForm(agent.input_schema, { prefix: "agent" });
    const approvals = agent.approval_required.length ? ` · needs approval for ${agent.approval_required.join(", ")}` : "";
    clear(holder, h("p", { class: "hint" }, `${agent.description} (tools ${agent.tools.join(", ")}; route ${agent.route}; up to ${agent.max_steps} steps${approvals})`), form.element);
  };
  select.addEventListener("change", pick);
  try {
    agents = (await request("GET", "/agents")).data.data;
    clear(select, agents.map((a) => h("option", { value: a.name }, a.name)));
    pick();
  } catch (error) {
    status.append(errorBox(error));
  }
}

// --- one run --------------------------------------------------------------------------

function storageKey(id) {
  return `switchboard.run.${id}.events`;
}

function loadSaved(id) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(storageKey(id)) || "null");
    if (saved && Number.isInteger(saved.last) && Array.isArray(saved.events)) return saved;
  } catch {
    // A damaged entry: start again from the first event.
  }
  return { last: 0, events: [], dropped: 0 };
}

function save(id, saved) {
  if (saved.events.length > KEPT_EVENTS) {
    saved.dropped += saved.events.length - KEPT_EVENTS;
    saved.events = saved.events.slice(-KEPT_EVENTS);
  }
  try {
    sessionStorage.setItem(storageKey(id), JSON.stringify(saved));
  } catch {
    // Storage full: the timeline still works, a reload replays from the server.
  }
}

function summary(type, data) {
  const short = (value, limit = 160) => {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
  };
  switch (type) {
    case "text.delta":
      return data.content;
    case "tool.called":
      return `${data.name}(${short(data.arguments)})`;
    case "tool.result":
      return data.error ? `${data.name} → error: ${data.error.message}` : `${data.name} → ${short(data.output)}`;
    case "awaiting_input":
      return `${data.type}: ${short(data.prompt, 300)}`;
    case "run.failed":
      return short(data.error || data);
    case "run.succeeded":
      return short((data.result && data.result.output) || data.result || "", 300);
    case "step.started":
    case "step.completed":
      return `step ${data.step}${data.tools ? ` (${data.tools.join(", ")})` : ""}`;
    default:
      return short(data);
  }
}

function eventItem(event) {
  const text = event.type === "text.delta";
  return h(
    "li",
    {
      class: `event ${event.type.replace(/\./g, "-")}`,
      dataset: { type: event.type, step: String(event.data.step ?? ""), ...(text ? {} : { seq: String(event.seq) }) },
    },
    h("span", { class: "seq" }, `#${event.seq}`),
    h("span", { class: "type" }, text ? "text" : event.type),
    h("span", { class: "summary" }, text ? h("span", { dataset: { seq: String(event.seq) } }, event.data.content) : summary(event.type, event.data || {})),
  );
}

// Each event is one element with its number (data-seq); the text a step streams, one
// delta per event, reads as one line of the timeline.
function appendEvent(timeline, event) {
  const last = timeline.lastElementChild;
  if (event.type === "text.delta" && last && last.dataset.type === "text.delta" && last.dataset.step === String(event.data.step ?? "")) {
    last.querySelector(".summary").append(h("span", { dataset: { seq: String(event.seq) } }, event.data.content));
    const first = last.querySelector(".summary [data-seq]").dataset.seq;
    last.querySelector(".seq").textContent = `#${first}–${event.seq}`;
    return;
  }
  timeline.append(eventItem(event));
}

async function showRun(main, id) {
  const head = h("div", { id: "run-head" });
  const pending = h("div", { id: "run-pending" });
  const outcome = h("div", { id: "run-outcome" });
  const timeline = h("ol", { id: "run-timeline", class: "timeline" });
  const live = h("span", { id: "run-live", class: "muted" });
  main.append(
    panel("Run", h("p", {}, h("a", { href: "#/runs" }, "← all runs")), head, pending, outcome),
    panel("Timeline", h("p", { class: "hint" }, "Every event of the run, numbered; kept across reloads of this tab. ", live), timeline),
  );

  const saved = loadSaved(id);
  if (saved.dropped) timeline.append(h("li", { class: "muted" }, `${saved.dropped} earlier events are not kept in this tab.`));
  for (const event of saved.events) appendEvent(timeline, event);

  const controller = new AbortController();
  following = controller;

  async function refresh() {
    const { data: run } = await request("GET", `/runs/${encodeURIComponent(id)}`);
    clear(
      head,
      h("h3", {}, run.id),
      h(
        "p",
        {},
        h("span", { id: "run-status", class: `badge ${run.status}` }, run.status),
        ` ${run.kind}${agentOf(run) ? ` · ${agentOf(run)}` : ""} · attempts ${run.attempts} · created ${when(run.created_at)}`,
      ),
      run.progress && Object.keys(run.progress).length ? h("p", { class: "hint" }, `progress ${JSON.stringify(run.progress)}`) : null,
      TERMINAL.has(run.status) ? null : button("Cancel run", () => act({ cancel: true }), { id: "run-cancel" }),
    );
    clear(outcome);
    if (run.error) outcome.append(h("h4", {}, "Error"), errorBox({ describe: () => `${run.error.code}: ${run.error.message}` }));
    if (run.result) outcome.append(h("h4", {}, "Result"), run.result.output ? h("p", { class: "output" }, run.result.output) : null, h("details", {}, h("summary", {}, "Whole result"), json(run.result)));
    showPending(run);
    return run;
  }

  function showPending(run) {
    clear(pending);
    const ask = run.pending_input;
    if (run.status !== "awaiting_input" || !ask) return;
    const feedback = h("textarea", { id: "pending-text", rows: 2 });
    const box = h("section", { class: `pending ${ask.type}` }, h("h4", {}, ask.type === "approval" ? "Waiting for your approval" : "Waiting for your answer"), h("pre", { class: "prompt" }, ask.prompt));
    if (ask.type === "question") {
      if (ask.options && ask.options.length) {
        box.append(h("div", { class: "row" }, ask.options.map((option) => button(option, () => act({ input: option }), { class: "option" }))));
      }
      box.append(h("label", { for: "pending-text" }, "Your answer"), feedback, button("Answer", () => feedback.value.trim() && act({ input: feedback.value.trim() }), { id: "pending-answer" }));
    } else {
      if (ask.detail) box.append(h("details", {}, h("summary", {}, `What ${ask.detail.tool || "the call"} would do`), json(ask.detail.arguments || ask.detail)));
      box.append(
        h("div", { class: "row" }, button("Approve", () => act({ approve: true }), { id: "pending-approve", class: "primary" }), button("Reject", () => act({ approve: false }), { id: "pending-reject", class: "danger" })),
        h("label", { for: "pending-text" }, "Or ask for changes"),
        feedback,
        button("Request changes", () => feedback.value.trim() && act({ approve: false, feedback: feedback.value.trim() }), { id: "pending-changes" }),
      );
    }
    pending.append(box);
  }

  async function act(answer) {
    for (const b of pending.querySelectorAll("button")) b.disabled = true;
    try {
      if (answer.cancel) await request("POST", `/runs/${encodeURIComponent(id)}/cancel`, { body: {} });
      else await request("POST", `/runs/${encodeURIComponent(id)}/input`, { body: answer });
      clear(pending, h("p", { class: "ok", id: "pending-sent" }, "Sent. The run goes on."));
      follow();
    } catch (error) {
      pending.append(errorBox(error));
      for (const b of pending.querySelectorAll("button")) b.disabled = false;
    }
  }

  let running = false;
  async function follow() {
    if (running) return;
    running = true;
    try {
      while (!controller.signal.aborted) {
        live.textContent = "following…";
        try {
          await stream("GET", `/runs/${encodeURIComponent(id)}/events`, {
            signal: controller.signal,
            lastEventId: saved.last,
            onEvent: (frame) => {
              const seq = Number(frame.id);
              if (!Number.isInteger(seq) || seq <= saved.last) return; // seen already
              const payload = JSON.parse(frame.data);
              const event = { seq, type: payload.type || frame.type, data: payload.data || {} };
              if (seq !== saved.last + 1) timeline.append(h("li", { class: "error" }, `events ${saved.last + 1} to ${seq - 1} are missing`));
              saved.events.push(event);
              saved.last = seq;
              save(id, saved);
              appendEvent(timeline, event);
              if (event.type === "awaiting_input" || event.type.startsWith("run.")) refresh().catch(() => {}); // the loop shows errors
            },
          });
        } catch (error) {
          if (error.name === "AbortError") return;
          live.textContent = "";
          timeline.after(errorBox(error));
          if (error.status && error.status < 500) return;
        }
        let run;
        try {
          run = await refresh();
        } catch (error) {
          live.textContent = "";
          timeline.after(errorBox(error));
          return;
        }
        if (TERMINAL.has(run.status) || run.status === "awaiting_input") {
          live.textContent = run.status === "awaiting_input" ? "waiting for input" : "ended";
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    } finally {
      running = false;
    }
  }

  try {
    await refresh();
  } catch (error) {
    return head.append(errorBox(error));
  }
  follow();
}

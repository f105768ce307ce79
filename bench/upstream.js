// A fast fake OpenAI-compatible upstream for benchmarks (Node's http module, no deps).
// POST /v1/chat/completions: JSON, or SSE with CHUNKS chunks when "stream": true.
// The latency before answering comes from the model name ("bench-20ms" waits 20 ms), or
// LATENCY_MS.
// It also stands in for DynamoDB's TransactWriteItems, for the worker's usage records
// (acknowledged, counted; GET /usage-stats tells how many): DynamoDB's own work is not the
// worker's, and moto doing it on the same 2 cores would take their time from the worker.
// GET /stats tells how many chat requests wait for their answer, and the most at once
// since the last POST /stats (which resets that).
// Usage: node bench/upstream.js PORT [LATENCY_MS] [CHUNKS]
"use strict";
const http = require("http");

const port = Number(process.argv[2] || 9900);
const defaultLatency = Number(process.argv[3] || 0);
const chunks = Number(process.argv[4] || 20);

const completion = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 0,
  model: "bench",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello from the benchmark upstream." }, finish_reason: "stop", logprobs: null }],
  usage: { prompt_tokens: 12, completion_tokens: 6, total_tokens: 18 },
});
const frame = (delta, finish) =>
  "data: " + JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 0, model: "bench", choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] }) + "\n\n";
const streamFrames = [frame({ role: "assistant", content: "" }, null)];
for (let i = 0; i < chunks; i++) streamFrames.push(frame({ content: "tok" + i + " " }, null));
streamFrames.push(frame({}, "stop"));
streamFrames.push("data: " + JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 0, model: "bench", choices: [], usage: { prompt_tokens: 12, completion_tokens: chunks, total_tokens: 12 + chunks } }) + "\n\n");
streamFrames.push("data: [DONE]\n\n");
const streamBody = streamFrames.join("");

const usage = { transactions: 0, records: 0 };
// Chat requests waiting for their answer now, and the most at once since the last
// POST /stats/reset: how many streams the worker really held at the same time.
const waiting = { now: 0, max: 0 };

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/usage-stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(usage));
    return;
  }
  if (req.url === "/stats") {
    if (req.method === "POST") waiting.max = waiting.now;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ waiting: waiting.now, max_waiting: waiting.max }));
    return;
  }
  const parts = [];
  req.on("data", (c) => parts.push(c));
  req.on("end", () => {
    if ((req.headers["x-amz-target"] || "").endsWith(".TransactWriteItems")) {
      const items = JSON.parse(Buffer.concat(parts).toString()).TransactItems || [];
      usage.transactions += 1;
      usage.records += items.filter((item) => item.Put).length;
      res.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
      res.end("{}");
      return;
    }
    let stream = false;
    let latency = defaultLatency;
    try {
      const request = JSON.parse(Buffer.concat(parts).toString());
      stream = request.stream === true;
      const named = /-(\d+)ms$/.exec(request.model || "");  // model "bench-20ms": wait 20 ms
      if (named) latency = Number(named[1]);
    } catch (e) {}
    waiting.now += 1;
    waiting.max = Math.max(waiting.max, waiting.now);
    const answer = () => {
      waiting.now -= 1;
      if (stream) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.end(streamBody);  // 20 chunks in one write: the upstream is never the bottleneck
      } else {
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(completion) });
        res.end(completion);
      }
    };
    if (latency > 0) setTimeout(answer, latency); else answer();
  });
});
server.keepAliveTimeout = 120000;
server.maxConnections = 100000;
server.listen(port, "127.0.0.1", () => process.stdout.write("ready\n"));

// Load generator: CONNECTIONS keep-alive connections, each sending requests back to back
// for SECONDS. Prints JSON: {requests, errors, seconds, p50_ms, p99_ms}.
// Usage: node bench/load.js URL CONNECTIONS SECONDS BODY_JSON [HEADERS_JSON]
"use strict";
const http = require("http");
const [url, connections, seconds, body, headersJson] = process.argv.slice(2);
const target = new URL(url);
const headers = Object.assign({ "content-type": "application/json", "content-length": Buffer.byteLength(body) }, JSON.parse(headersJson || "{}"));
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(connections) });
const latencies = [];
let errors = 0;
const end = Date.now() + Number(seconds) * 1000;
function one(done) {
  const started = process.hrtime.bigint();
  const req = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: "POST", agent, headers }, (res) => {
    res.on("data", () => {});
    res.on("end", () => {
      if (res.statusCode !== 200) errors++;
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
      done();
    });
  });
  req.on("error", () => { errors++; done(); });
  req.end(body);
}
function loop(resolve) {
  if (Date.now() >= end) return resolve();
  one(() => loop(resolve));
}
const startedAt = Date.now();
Promise.all(Array.from({ length: Number(connections) }, () => new Promise(loop))).then(() => {
  const took = (Date.now() - startedAt) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  process.stdout.write(JSON.stringify({ requests: latencies.length, errors, seconds: took, p50_ms: pct(0.5), p99_ms: pct(0.99) }) + "\n");
  agent.destroy();
});

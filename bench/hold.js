// Opens STREAMS streamed chat completions at once (RAMP per 10 ms) and waits for each to
// finish. Prints JSON: {streams, ok, failed, seconds, first_error}.
// Usage: node bench/hold.js URL STREAMS BODY_JSON HEADERS_JSON
"use strict";
const http = require("http");
const [url, streams, body, headersJson] = process.argv.slice(2);
const target = new URL(url);
const headers = Object.assign({ "content-type": "application/json", "content-length": Buffer.byteLength(body) }, JSON.parse(headersJson || "{}"));
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
let ok = 0, failed = 0, firstError = null;
const started = Date.now();
function one() {
  return new Promise((resolve) => {
    const req = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: "POST", agent, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => { text += c; });
      res.on("end", () => {
        if (res.statusCode === 200 && text.includes("[DONE]")) ok++; else { failed++; firstError = firstError || (res.statusCode + " " + text.slice(0, 200)); }
        resolve();
      });
    });
    req.setTimeout(120000);
    req.on("error", (e) => { failed++; firstError = firstError || String(e); resolve(); });
    req.end(body);
  });
}
(async () => {
  const all = [];
  const n = Number(streams);
  for (let i = 0; i < n; i++) {
    all.push(one());
    if (i % 200 === 199) await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(all);
  process.stdout.write(JSON.stringify({ streams: n, ok, failed, seconds: (Date.now() - started) / 1000, first_error: firstError }) + "\n");
})();

// The API client: where the API is, the keys (held in sessionStorage only: they go when
// the tab closes), JSON requests and SSE streams, and errors in the OpenAI envelope.
import { readEvents } from "./sse.js";

const KEY = "switchboard.key";
const ADMIN_KEY = "switchboard.adminKey";

// The API is same-origin `/v1`, relative to where the console is served (`/console/` ->
// `/v1`, `/api/console/` -> `/api/v1`); `?api=/some/v1` overrides it, on this origin only
// (the console's Content-Security-Policy lets it call nothing else).
export function apiBase() {
  const given = new URLSearchParams(location.search).get("api");
  const url = new URL(given || "../v1", location.href);
  if (url.origin !== location.origin) {
    throw new ApiError(0, {
      message: `?api= must be on this origin (${location.origin}); got ${url.origin}.`,
      code: "cross_origin_api",
    });
  }
  return url.href.replace(/\/+$/, "");
}

export const keys = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (value) => sessionStorage.setItem(KEY, value.trim()),
  admin: () => sessionStorage.getItem(ADMIN_KEY) || "",
  setAdmin: (value) => sessionStorage.setItem(ADMIN_KEY, value.trim()),
  clear: () => {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(ADMIN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.type = error.type || null;
    this.param = error.param || null;
    this.code = error.code || null;
  }

  describe() {
    const where = this.param ? ` (${this.param})` : "";
    const status = this.status ? `${this.status} ` : "";
    return `${status}${this.code || this.type || "error"}${where}: ${this.message}`;
  }
}

function headers(admin, extra) {
  const key = admin ? keys.admin() : keys.get();
  const result = { ...extra };
  if (key) result.authorization = `Bearer ${key}`;
  return result;
}

async function failure(response) {
  let error = { message: `HTTP ${response.status} ${response.statusText}` };
  try {
    const body = await response.json();
    if (body && body.error) error = body.error;
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, error);
}

// A JSON request. Resolves to the parsed body (and the response, for its headers);
// rejects with an ApiError that carries the server's status, code and param.
export async function request(method, path, { body, admin = false, signal } = {}) {
  const init = { method, headers: headers(admin, {}), signal };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiBase() + path, init);
  } catch (error) {
    if (error instanceof ApiError || error.name === "AbortError") throw error;
    throw new ApiError(0, { message: `The API did not answer: ${error.message}`, code: "network" });
  }
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return { data: text ? JSON.parse(text) : null, response };
}

// A request whose answer is an event stream: onEvent({type, data, id}) for each event.
export async function stream(method, path, { body, signal, lastEventId, onEvent }) {
  const extra = { accept: "text/event-stream" };
  if (lastEventId) extra["last-event-id"] = String(lastEventId);
  const init = { method, headers: headers(false, extra), signal, cache: "no-store" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(apiBase() + path, init);
  if (!response.ok) throw await failure(response);
  await readEvents(response, onEvent);
}

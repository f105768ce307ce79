// The console's shell: sign-in, navigation and the hash router (#/page/argument).
import { apiBase, keys, request } from "./api.js";
import { button, clear, errorBox, h } from "./ui.js";
import * as chat from "./chat.js";
import * as conversations from "./conversations.js";
import * as runs from "./runs.js";
import * as tools from "./tools.js";
import * as documents from "./documents.js";
import * as usage from "./usage.js";
import * as admin from "./admin.js";

const PAGES = { chat, conversations, runs, tools, documents, usage, admin };
let current = null; // the page shown, so it can stop its streams when left

function signIn(main) {
  const input = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    placeholder: "sb-...",
    required: true,
  });
  const status = h("p", { class: "muted" });
  const form = h(
    "form",
    {
      class: "signin",
      onsubmit: async (event) => {
        event.preventDefault();
        keys.set(input.value);
        try {
          await request("GET", "/models");
          route();
        } catch (error) {
          keys.clear();
          clear(status, errorBox(error));
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    h(
      "p",
      { class: "muted" },
      "The key is kept in this tab's session storage only, and sent to ",
      h("code", {}, apiBase()),
      ". `make dev` prints a development key.",
    ),
    status,
  );
  clear(main, form);
  input.focus();
}

function showSession() {
  const session = document.getElementById("session");
  if (!keys.get()) return clear(session);
  clear(
    session,
    h("span", { class: "muted" }, `API ${apiBase()}`),
    button("Sign out", () => {
      keys.clear();
      route();
    }, { id: "sign-out" }),
  );
}

function route() {
  const main = document.getElementById("main");
  if (current && current.leave) current.leave();
  current = null;
  let base;
  try {
    base = apiBase();
  } catch (error) {
    return clear(main, errorBox(error));
  }
  showSession();
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] || chat;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === (PAGES[name] ? name : "chat"));
  }
  if (!keys.get() && page !== admin) return signIn(main);
  clear(main);
  current = page;
  page.show(main, rest.map(decodeURIComponent), base);
}

window.addEventListener("hashchange", route);
route();

// Conversations: the tenant's stored conversations, newest first, and one with its messages.
import { request } from "./api.js";
import { button, clear, errorBox, h, panel, when } from "./ui.js";

export async function show(main, [id]) {
  if (id) return showOne(main, id);
  const list = h("tbody", { id: "conversation-list" });
  const more = button("Load more", () => load(), { hidden: true });
  const status = h("div");
  let cursor = null;
  main.append(
    panel(
      "Conversations",
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Title"), h("th", {}, "Model"), h("th", {}, "Messages"), h("th", {}, "Updated"))), list),
      more,
      status,
    ),
  );
  async function load() {
    try {
      const query = cursor ? `&after=${encodeURIComponent(cursor)}` : "";
      const { data } = await request("GET", `/conversations?limit=20${query}`);
      for (const c of data.data) {
        list.append(
          h(
            "tr",
            {},
            h("td", {}, h("a", { href: `#/conversations/${encodeURIComponent(c.id)}` }, c.title || c.id)),
            h("td", {}, c.model || ""),
            h("td", {}, String(c.message_count ?? "")),
            h("td", {}, when(c.updated_at)),
          ),
        );
      }
      if (!data.data.length && !cursor) list.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No conversations yet.")));
      cursor = data.next_cursor;
      more.hidden = !data.has_more;
    } catch (error) {
      clear(status, errorBox(error));
    }
  }
  await load();
}

function text(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) => (part.type === "text" ? part.text : `[${part.type}]`)).join("");
  }
  return content == null ? "" : JSON.stringify(content);
}

async function showOne(main, id) {
  const messages = h("div", { id: "conversation-messages", class: "transcript" });
  const status = h("div");
  const head = h("div");
  main.append(panel("Conversation", h("p", {}, h("a", { href: "#/conversations" }, "← all conversations")), head, messages, status));
  let cursor = null;
  const more = button("Load more", () => load(), { hidden: true });
  main.querySelector(".panel").append(more);
  async function load() {
    try {
      const query = cursor ? `?after=${encodeURIComponent(cursor)}` : "";
      const { data } = await request("GET", `/conversations/${encodeURIComponent(id)}${query}`);
      if (!cursor) {
        clear(
          head,
          h("h3", {}, data.title || data.id),
          h("p", { class: "muted" }, `${data.id} · model ${data.model || "per request"} · updated ${when(data.updated_at)}`),
          data.system_prompt ? h("p", {}, h("strong", {}, "System: "), data.system_prompt) : null,
        );
      }
      const page = data.messages || { data: [] };
      for (const m of page.data) {
        const message = m.message || m;
        messages.append(
          h("article", { class: `message ${message.role}` }, h("div", { class: "role" }, message.role), h("div", { class: "content" }, text(message.content))),
        );
      }
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
    } catch (error) {
      clear(status, errorBox(error));
    }
  }
  await load();
}

// Documents: upload a file (base64 in a JSON body, POST /v1/documents) and list them.
import { request } from "./api.js";
import { button, clear, errorBox, h, json, number, panel, when } from "./ui.js";

const MAX_UPLOAD_BYTES = 4 * 1024 * 1024; // the default body limit (SWITCHBOARD_DOCUMENT_MAX_UPLOAD_BYTES)

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export async function show(main) {
  const file = h("input", { id: "document-file", type: "file", accept: ".pdf,.txt,.md,.png,.jpg,.jpeg,.gif,.webp" });
  const upload = h("button", { id: "document-upload", type: "submit" }, "Upload");
  const result = h("div", { id: "document-result", "aria-live": "polite" });
  const kind = h("select", { id: "document-kind" }, ["", "pdf", "text", "markdown", "image"].map((k) => h("option", { value: k }, k || "all kinds")));
  const rows = h("tbody", { id: "document-list" });
  const more = button("Load more", () => load(false), { hidden: true });
  const status = h("div");
  main.append(
    panel(
      "Upload a document",
      h("p", { class: "hint" }, `PDF, text, Markdown or an image (PNG, JPEG, GIF, WebP), up to ${MAX_UPLOAD_BYTES / 1024 / 1024} MiB here; the type is read from the file's bytes.`),
      h(
        "form",
        {
          onsubmit: async (event) => {
            event.preventDefault();
            clear(result);
            const chosen = file.files[0];
            if (!chosen) return result.append(h("p", { class: "error" }, "Choose a file first."));
            if (chosen.size > MAX_UPLOAD_BYTES) {
              return result.append(h("p", { class: "error" }, `${chosen.name} is ${number(chosen.size)} bytes, over the ${number(MAX_UPLOAD_BYTES)} byte limit of an upload in the request body.`));
            }
            upload.disabled = true;
            try {
              const data = base64(await chosen.arrayBuffer());
              const body = { filename: chosen.name, data };
              if (chosen.type) body.content_type = chosen.type;
              const { data: document } = await request("POST", "/documents", { body });
              result.append(h("p", { class: "ok" }, `Uploaded ${document.filename} as ${document.id} (${document.kind}, ${document.status}).`), json(document));
              load(true);
            } catch (error) {
              result.append(errorBox(error));
            } finally {
              upload.disabled = false;
            }
          },
        },
        file,
        upload,
      ),
      result,
    ),
    panel(
      "Documents",
      h("label", {}, "Kind ", kind),
      h("table", {}, h("thead", {}, h("tr", {}, ["Id", "File", "Kind", "Folder", "Size", "Status", "Created", ""].map((t) => h("th", {}, t)))), rows),
      more,
      status,
    ),
  );
  kind.addEventListener("change", () => load(true));
  let cursor = null;
  async function load(fresh) {
    if (fresh) {
      cursor = null;
      clear(rows);
    }
    try {
      const params = new URLSearchParams({ limit: "25" });
      if (cursor) params.set("after", cursor);
      if (kind.value) params.set("kind", kind.value);
      const { data } = await request("GET", `/documents?${params}`);
      for (const d of data.data) {
        rows.append(
          h(
            "tr",
            { dataset: { document: d.id } },
            h("td", {}, h("code", {}, d.id)),
            h("td", {}, d.filename),
            h("td", {}, d.kind),
            h("td", {}, d.folder || ""),
            h("td", {}, number(d.size_bytes ?? d.bytes ?? 0)),
            h("td", {}, d.status),
            h("td", {}, when(d.created_at)),
            h(
              "td",
              {},
              button("Delete", async (event) => {
                if (!confirm(`Delete ${d.filename}?`)) return;
                event.target.disabled = true;
                try {
                  await request("DELETE", `/documents/${encodeURIComponent(d.id)}`);
                  event.target.closest("tr").remove();
                } catch (error) {
                  status.append(errorBox(error));
                }
              }, { class: "danger" }),
            ),
          ),
        );
      }
      if (!rows.children.length) rows.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No documents.")));
      cursor = data.next_cursor;
      more.hidden = !data.has_more;
    } catch (error) {
      clear(status, errorBox(error));
    }
  }
  await load(true);
}

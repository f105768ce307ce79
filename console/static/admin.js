// The admin view: tenants, their limits and keys (/v1/admin/...), with the admin key (kept
// in this tab's sessionStorage, like the API key). The gateway serves the admin API; the
// stream front door does not, so use the console the gateway serves for this page.
import { keys, request } from "./api.js";
import { button, clear, errorBox, h, panel, when } from "./ui.js";

export async function show(main, [tenantId]) {
  if (!keys.admin()) return askKey(main);
  const forget = button("Forget the admin key", () => {
    sessionStorage.removeItem("switchboard.adminKey");
    clear(main);
    askKey(main);
  });
  main.append(h("p", {}, forget));
  return tenantId ? showTenant(main, tenantId) : showTenants(main);
}

function askKey(main) {
  const input = h("input", { id: "admin-key", type: "password", autocomplete: "off", placeholder: "sb-admin-..." });
  const status = h("div");
  main.append(
    panel(
      "Admin",
      h(
        "form",
        {
          onsubmit: async (event) => {
            event.preventDefault();
            keys.setAdmin(input.value);
            try {
              await request("GET", "/admin/tenants?limit=1", { admin: true });
              clear(main);
              show(main, []);
            } catch (error) {
              sessionStorage.removeItem("switchboard.adminKey");
              clear(status, errorBox(error));
            }
          },
        },
        h("label", { for: "admin-key" }, "Admin key"),
        input,
        h("button", { type: "submit", id: "admin-sign-in" }, "Use"),
        h("p", { class: "hint" }, "The admin key (the SwitchboardAdminKey secret; `make dev` prints a local one) is kept in this tab's session storage only."),
      ),
      status,
    ),
  );
}

function limitsText(limits) {
  const budget = limits.monthly_budget_usd == null ? "no budget" : `$${limits.monthly_budget_usd}/month`;
  return `${budget} · ${limits.rpm == null ? "no rpm limit" : `${limits.rpm} rpm`} · ${limits.tpm == null ? "no tpm limit" : `${limits.tpm} tpm`}`;
}

function limitInputs(prefix, limits = {}) {
  const field = (name, label, step) =>
    h("label", {}, `${label} `, h("input", { id: `${prefix}-${name}`, type: "number", min: "0", step, value: limits[name] ?? "", placeholder: "none" }));
  return [field("monthly_budget_usd", "Monthly budget (USD)", "any"), field("rpm", "Requests/min", "1"), field("tpm", "Tokens/min", "1")];
}

function readLimits(root, prefix) {
  const limits = {};
  for (const name of ["monthly_budget_usd", "rpm", "tpm"]) {
    const raw = root.querySelector(`#${prefix}-${name}`).value.trim();
    limits[name] = raw === "" ? null : Number(raw);
  }
  return limits;
}

async function showTenants(main) {
  const rows = h("tbody", { id: "tenant-list" });
  const status = h("div");
  const id = h("input", { id: "tenant-id", placeholder: "acme (optional)" });
  const name = h("input", { id: "tenant-name", placeholder: "Acme" });
  const form = h(
    "form",
    {
      class: "row wrap",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = { limits: readLimits(form, "new") };
        if (id.value.trim()) body.id = id.value.trim();
        if (name.value.trim()) body.name = name.value.trim();
        try {
          const { data } = await request("POST", "/admin/tenants", { body, admin: true });
          location.hash = `#/admin/${encodeURIComponent(data.id)}`;
        } catch (error) {
          clear(status, errorBox(error));
        }
      },
    },
    h("label", {}, "Id ", id),
    h("label", {}, "Name ", name),
    ...limitInputs("new"),
    h("button", { type: "submit", id: "tenant-create" }, "Create tenant"),
  );
  main.append(
    panel("Tenants", h("table", {}, h("thead", {}, h("tr", {}, ["Tenant", "Name", "Status", "Limits", "Created"].map((t) => h("th", {}, t)))), rows)),
    panel("New tenant", form, status),
  );
  let after = null;
  const more = button("Load more", () => load(), { hidden: true });
  main.querySelector(".panel").append(more);
  async function load() {
    try {
      const query = after ? `&after=${encodeURIComponent(after)}` : "";
      const { data } = await request("GET", `/admin/tenants?limit=50${query}`, { admin: true });
      for (const t of data.data) {
        rows.append(
          h("tr", { dataset: { tenant: t.id } }, h("td", {}, h("a", { href: `#/admin/${encodeURIComponent(t.id)}` }, t.id)), h("td", {}, t.name || ""), h("td", {}, t.status), h("td", {}, limitsText(t.limits)), h("td", {}, when(t.created_at))),
        );
      }
      after = data.last_id;
      more.hidden = !data.has_more;
    } catch (error) {
      clear(status, errorBox(error));
    }
  }
  await load();
}

async function showTenant(main, tenantId) {
  const status = h("div");
  const head = h("div", { id: "tenant-head" });
  const limitsForm = h("form", { class: "row wrap" });
  const keyRows = h("tbody", { id: "key-list" });
  const secret = h("div", { id: "key-secret", "aria-live": "polite" });
  const keyName = h("input", { id: "key-name", placeholder: "ci" });
  const path = `/admin/tenants/${encodeURIComponent(tenantId)}`;
  main.append(
    panel("Tenant", h("p", {}, h("a", { href: "#/admin" }, "← all tenants")), head, h("h3", {}, "Limits"), limitsForm),
    panel(
      "Keys",
      h("table", {}, h("thead", {}, h("tr", {}, ["Key", "Name", "Prefix", "Status", "Created", ""].map((t) => h("th", {}, t)))), keyRows),
      h("form", { class: "row", onsubmit: (event) => { event.preventDefault(); mint("POST", `${path}/keys`, keyName.value.trim() ? { name: keyName.value.trim() } : {}); } }, h("label", {}, "Name ", keyName), h("button", { type: "submit", id: "key-create" }, "Create key")),
      secret,
    ),
    status,
  );

  async function mint(method, url, body) {
    try {
      const { data } = await request(method, url, { body, admin: true });
      clear(secret, h("p", { class: "ok" }, `New key ${data.id}${data.replaces ? ` (replaces ${data.replaces})` : ""}. Its secret is shown this once:`), h("pre", { class: "secret" }, data.secret));
      loadKeys();
    } catch (error) {
      clear(status, errorBox(error));
    }
  }

  async function loadTenant() {
    const { data: tenant } = await request("GET", path, { admin: true });
    clear(head, h("h3", {}, `${tenant.id} · ${tenant.name || ""}`), h("p", { class: "muted" }, `${tenant.status} · created ${when(tenant.created_at)} · ${limitsText(tenant.limits)}`));
    clear(
      limitsForm,
      ...limitInputs("limit", tenant.limits),
      h("button", { type: "submit", id: "limits-save" }, "Save limits"),
      h("span", { class: "hint" }, "Empty: no limit."),
    );
    limitsForm.onsubmit = async (event) => {
      event.preventDefault();
      try {
        await request("PATCH", path, { body: { limits: readLimits(limitsForm, "limit") }, admin: true });
        await loadTenant();
        limitsForm.append(h("span", { class: "ok" }, " Saved."));
      } catch (error) {
        clear(status, errorBox(error));
      }
    };
  }

  async function loadKeys() {
    const { data } = await request("GET", `${path}/keys`, { admin: true });
    clear(
      keyRows,
      data.data.map((k) =>
        h(
          "tr",
          { dataset: { key: k.id } },
          h("td", {}, h("code", {}, k.id)),
          h("td", {}, k.name),
          h("td", {}, h("code", {}, k.prefix)),
          h("td", {}, k.status),
          h("td", {}, when(k.created_at)),
          h(
            "td",
            {},
            k.status === "active"
              ? [
                  button("Rotate", () => mint("POST", `${path}/keys/${encodeURIComponent(k.id)}/rotate`, {})),
                  " ",
                  button("Revoke", async () => {
                    if (!confirm(`Revoke ${k.id}? It stops working within seconds.`)) return;
                    try {
                      await request("POST", `${path}/keys/${encodeURIComponent(k.id)}/revoke`, { body: {}, admin: true });
                      loadKeys();
                    } catch (error) {
                      clear(status, errorBox(error));
                    }
                  }, { class: "danger" }),
                ]
              : `revoked ${when(k.revoked_at)}`,
          ),
        ),
      ),
    );
  }

  try {
    await loadTenant();
    await loadKeys();
  } catch (error) {
    clear(status, errorBox(error));
  }
}

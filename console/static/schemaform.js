// A form generated from a JSON Schema (the pydantic subset the API publishes for tools and
// agents), with the same checks on the client: a bad field is named before anything is
// sent, and a 400 from the server (its `param`, e.g. `input.max_tags`) marks its field too.
import { h } from "./ui.js";

function resolve(node, defs) {
  let current = node || {};
  for (let depth = 0; current.$ref && depth < 20; depth += 1) {
    current = defs[current.$ref.replace("#/$defs/", "")] || {};
  }
  return current;
}

// {schema of the value, nullable}: `anyOf: [X, {type: null}]` is an optional X.
function unwrap(node, defs) {
  const resolved = resolve(node, defs);
  const options = resolved.anyOf || resolved.oneOf;
  if (options) {
    const real = options.filter((o) => resolve(o, defs).type !== "null");
    if (real.length === 1) {
      return { schema: { ...resolve(real[0], defs), description: resolved.description, default: resolved.default }, nullable: true };
    }
  }
  return { schema: resolved, nullable: false };
}

function typeOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (Number.isInteger(value)) return "integer";
  return typeof value;
}

function fits(type, value) {
  const actual = typeOf(value);
  return actual === type || (type === "number" && actual === "integer");
}

// Every way `value` breaks `node`: [{path, message}], paths like `sections.0.heading`.
export function validate(value, node, defs = {}, path = "") {
  const schema = resolve(node, defs);
  const at = (message) => [{ path, message }];
  const options = schema.anyOf || schema.oneOf;
  if (options) {
    const results = options.map((o) => validate(value, o, defs, path));
    return results.some((r) => !r.length) ? [] : results.sort((a, b) => a.length - b.length)[0];
  }
  if ("const" in schema && value !== schema.const) return at(`must be ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) return at(`must be one of ${schema.enum.join(", ")}`);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => fits(t, value)) || schema.type[0] : schema.type;
  if (type && !fits(type, value)) return at(`must be ${type === "integer" ? "an integer" : `a ${type}`}`);
  const errors = [];
  if (typeof value === "string") {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) errors.push({ path, message: `must have at least ${schema.minLength} characters` });
    if (schema.maxLength !== undefined && length > schema.maxLength) errors.push({ path, message: `must have at most ${schema.maxLength} characters` });
    if (schema.pattern && !new RegExp(schema.pattern, "u").test(value)) errors.push({ path, message: `must match ${schema.pattern}` });
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push({ path, message: `must be at least ${schema.minimum}` });
    if (schema.maximum !== undefined && value > schema.maximum) errors.push({ path, message: `must be at most ${schema.maximum}` });
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) errors.push({ path, message: `must be more than ${schema.exclusiveMinimum}` });
    if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) errors.push({ path, message: `must be less than ${schema.exclusiveMaximum}` });
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) errors.push({ path, message: `must have at least ${schema.minItems} items` });
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push({ path, message: `must have at most ${schema.maxItems} items` });
    if (schema.items) value.forEach((item, i) => errors.push(...validate(item, schema.items, defs, join(path, i))));
  }
  if (typeOf(value) === "object") {
    const properties = schema.properties || {};
    for (const name of schema.required || []) {
      if (!(name in value)) errors.push({ path: join(path, name), message: "is required" });
    }
    for (const [name, item] of Object.entries(value)) {
      if (properties[name]) errors.push(...validate(item, properties[name], defs, join(path, name)));
      else if (schema.additionalProperties === false) errors.push({ path: join(path, name), message: "is not a field of this schema" });
    }
  }
  return errors;
}

function join(path, name) {
  return path ? `${path}.${name}` : String(name);
}

function kindOf(schema) {
  if (schema.enum) return "enum";
  if (schema.type === "boolean") return "boolean";
  if (schema.type === "integer" || schema.type === "number") return "number";
  if (schema.type === "array") {
    const items = schema.items || {};
    return items.type === "string" || items.enum ? "lines" : "json";
  }
  if (schema.type === "object" || schema.properties) return "json";
  return "string";
}

export function schemaForm(root, { prefix = "field" } = {}) {
  const defs = root.$defs || {};
  const schema = resolve(root, defs);
  const required = new Set(schema.required || []);
  const fields = [];
  const element = h("div", { class: "schema-form" });
  for (const [name, node] of Object.entries(schema.properties || {})) {
    const { schema: field, nullable } = unwrap(node, defs);
    const kind = kindOf(field);
    const id = `${prefix}-${name}`;
    let input;
    if (kind === "enum") {
      input = h("select", { id, name }, required.has(name) ? null : h("option", { value: "" }, "(default)"), field.enum.map((v) => h("option", { value: String(v) }, String(v))));
      if (required.has(name) && field.default !== undefined) input.value = String(field.default);
    } else if (kind === "boolean") {
      input = h("input", { id, name, type: "checkbox", checked: field.default === true });
    } else if (kind === "number") {
      input = h("input", { id, name, type: "number", step: field.type === "integer" ? "1" : "any", placeholder: field.default !== undefined ? String(field.default) : "" });
    } else if (kind === "lines") {
      input = h("textarea", { id, name, rows: 2, placeholder: "one per line" });
    } else if (kind === "json") {
      input = h("textarea", { id, name, rows: 4, class: "code", placeholder: field.type === "array" ? "[ ... ] as JSON" : "{ ... } as JSON" });
    } else if ((field.maxLength || 100000) > 300) {
      input = h("textarea", { id, name, rows: 3 });
    } else {
      input = h("input", { id, name, type: "text", placeholder: field.default != null ? String(field.default) : "" });
    }
    const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert" });
    const hints = [];
    if (field.minimum !== undefined || field.maximum !== undefined) hints.push(`${field.minimum ?? "…"} to ${field.maximum ?? "…"}`);
    if (field.maxLength !== undefined) hints.push(`at most ${field.maxLength} characters`);
    if (field.default !== undefined && field.default !== null) hints.push(`default ${JSON.stringify(field.default)}`);
    if (nullable || !required.has(name)) hints.push("optional");
    const wrapper = h(
      "div",
      { class: "field", dataset: { field: name } },
      h("label", { for: id }, name, required.has(name) ? h("span", { class: "required", title: "required" }, " *") : null),
      field.description || node.description ? h("p", { class: "hint" }, field.description || node.description) : null,
      input,
      hints.length ? h("p", { class: "hint" }, hints.join(" · ")) : null,
      error,
    );
    element.append(wrapper);
    fields.push({ name, kind, field, input, error, wrapper });
  }

  function parse(entry) {
    const { kind, input } = entry;
    if (kind === "boolean") return { value: input.checked, given: input.checked !== (entry.field.default === true) };
    const raw = input.value;
    if (raw.trim() === "") return { given: false };
    if (kind === "number") return { value: Number(raw), given: true };
    if (kind === "lines") {
      const items = raw.split("\n").map((line) => line.trim()).filter(Boolean);
      const itemType = (entry.field.items || {}).type;
      return { value: itemType === "integer" || itemType === "number" ? items.map(Number) : items, given: true };
    }
    if (kind === "json") {
      try {
        return { value: JSON.parse(raw), given: true };
      } catch (error) {
        return { problem: `is not valid JSON: ${error.message}`, given: true };
      }
    }
    return { value: raw, given: true };
  }

  function mark(errors) {
    for (const entry of fields) {
      entry.error.textContent = "";
      entry.wrapper.classList.remove("invalid");
      entry.input.removeAttribute("aria-invalid");
    }
    for (const { path, message, server } of errors) {
      const top = path.split(".")[0];
      const entry = fields.find((f) => f.name === top);
      if (!entry) continue;
      entry.wrapper.classList.add("invalid");
      entry.input.setAttribute("aria-invalid", "true");
      const text = server ? message : `${path}: ${message}.`;
      entry.error.textContent += `${entry.error.textContent ? " " : ""}${text}`;
    }
  }

  return {
    element,
    // The value the form holds, and what is wrong with it (nothing: an empty list).
    read() {
      const value = {};
      const errors = [];
      for (const entry of fields) {
        const parsed = parse(entry);
        if (parsed.problem) errors.push({ path: entry.name, message: parsed.problem });
        else if (parsed.given) value[entry.name] = parsed.value;
      }
      errors.push(...validate(value, root, defs).filter((e) => !errors.some((o) => o.path === e.path)));
      mark(errors);
      return { value, errors };
    },
    // A server's 400: `param` is `input.<field path>` (or the field path itself).
    serverError(param, message) {
      const path = (param || "").replace(/^input\./, "");
      const top = path.split(".")[0];
      if (!fields.some((f) => f.name === top)) return false;
      mark([{ path, message: `The server refused ${path}: ${message}`, server: true }]);
      return true;
    },
    fill(values) {
      for (const entry of fields) {
        if (!(entry.name in values)) continue;
        const v = values[entry.name];
        if (entry.kind === "boolean") entry.input.checked = Boolean(v);
        else if (entry.kind === "lines") entry.input.value = v.join("\n");
        else if (entry.kind === "json") entry.input.value = JSON.stringify(v, null, 2);
        else entry.input.value = String(v);
      }
    },
  };
}

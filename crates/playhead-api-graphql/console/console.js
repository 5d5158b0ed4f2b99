// The GraphQL console: a query editor that POSTs to this server's /graphql. Served from the
// binary (no CDN), loaded as a file so the page's content security policy allows no inline code.
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "content-type": "application/json", accept: "application/json" };
  const token = $("token").value.trim();
  if (token) h.authorization = "Bearer " + token;
  return h;
}

async function post(body) {
  const res = await fetch("/graphql", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const text = await res.text();
  try {
    return { status: res.status, json: JSON.parse(text) };
  } catch (_) {
    return { status: res.status, json: { raw: text } };
  }
}

async function run() {
  let variables = {};
  const raw = $("variables").value.trim();
  if (raw) {
    try {
      variables = JSON.parse(raw);
    } catch (e) {
      $("result").textContent = "Variables are not JSON: " + e.message;
      return;
    }
  }
  $("result").textContent = "...";
  const { status, json } = await post({ query: $("query").value, variables });
  $("result").textContent = "HTTP " + status + "\n" + JSON.stringify(json, null, 2);
}

const SCHEMA_QUERY = `{ __schema { types { name kind description fields { name description
  args { name type { name kind ofType { name kind ofType { name kind } } } }
  type { name kind ofType { name kind ofType { name kind ofType { name } } } } } } } }`;

function typeName(t) {
  if (!t) return "";
  if (t.kind === "NON_NULL") return typeName(t.ofType) + "!";
  if (t.kind === "LIST") return "[" + typeName(t.ofType) + "]";
  return t.name;
}

async function schema() {
  $("result").textContent = "...";
  const { json } = await post({ query: SCHEMA_QUERY });
  if (!json.data) {
    $("result").textContent = JSON.stringify(json, null, 2);
    return;
  }
  const lines = [];
  for (const t of json.data.__schema.types) {
    if (t.name.startsWith("__") || !t.fields) continue;
    lines.push("type " + t.name + (t.description ? "  # " + t.description : ""));
    for (const f of t.fields) {
      const args = f.args.length ? "(" + f.args.map((a) => a.name + ": " + typeName(a.type)).join(", ") + ")" : "";
      lines.push("  " + f.name + args + ": " + typeName(f.type) + (f.description ? "  # " + f.description : ""));
    }
    lines.push("");
  }
  $("result").textContent = lines.join("\n");
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = sessionStorage.getItem("playhead.token") || "";
  $("token").addEventListener("change", () => sessionStorage.setItem("playhead.token", $("token").value));
  $("run").addEventListener("click", run);
  $("schema").addEventListener("click", schema);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run();
  });
});

// costmesh dashboard: reads the gateway's admin API with an admin key, draws the figures as inline SVG.
// No framework, no build step, nothing from outside this server. Text from the API is only ever
// set with textContent (never parsed as HTML).
"use strict";

const TOKEN_KEY = "costmesh-admin-key";
const API = "/admin/api/v1";
const REFRESH_MS = 15000;
const SVG = "http://www.w3.org/2000/svg";
const COLORS = { paid: "#2f6db5", saved: "#2e9d5b", baseline: "#7a8594", loss: "#c8453b", grid: "#e3e6ea" };
const LAYERS = { cache: "semantic cache", routing: "routing", prompt_caching: "prompt caching",
                 batch: "batch APIs", inference: "self-hosted" };
const TIERS = ["cached", "trivial", "simple", "moderate", "complex"];

const $ = (sel, root = document) => root.querySelector(sel);
const usd = (v) => "$" + Number(v).toFixed(6);
const pct = (v) => (Number(v) * 100).toFixed(1) + "%";
const FORMATS = {
  cost_usd: usd, baseline_usd: usd, saving_usd: usd, cost_per_request_usd: usd,
  saving_ratio: pct, hit_rate: pct, upgrade_rate: pct,
};
let timer = null;

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== "") node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== "") node.textContent = text;
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token() }, options.headers || {});
  const reply = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  let body = null;
  try { body = await reply.json(); } catch (e) { body = null; }
  // 401: no such key; 403 on a read: not an admin key (a write's 403 is about the write, shown where it was made)
  if (reply.status === 401 || (reply.status === 403 && !options.method)) {
    signOut(reply.status === 401 ? "The key was refused: unknown or revoked."
                                 : (body && body.error && body.error.message) || "That key is not an admin key.");
    throw new Error("unauthenticated");
  }
  if (!reply.ok) throw new Error((body && body.error && body.error.message) || "HTTP " + reply.status);
  return body;
}

// -- signing in ------------------------------------------------------------------------------

function takeTokenFromFragment() {
  // `/dashboard#key=...`: the fragment never reaches the server (or its logs); dropped at once.
  const match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return Boolean(match);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearTimeout(timer);
  $("#main").hidden = true;
  $("#signout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  document.body.dataset.state = "signed-out";
}

// -- the period ------------------------------------------------------------------------------

function period() {
  const form = $("#period");
  return { since: form.since.value.trim() || "24h", until: form.until.value.trim() || "now" };
}

function periodFromQuery() {
  const params = new URLSearchParams(location.search);
  const form = $("#period");
  if (params.get("since")) form.since.value = params.get("since").slice(0, 64);
  if (params.get("until")) form.until.value = params.get("until").slice(0, 64);
}

function remember() {
  const { since, until } = period();
  history.replaceState(null, "", location.pathname + "?" + new URLSearchParams({ since, until }));
}

// -- drawing ---------------------------------------------------------------------------------

function setFields(data) {
  for (const node of document.querySelectorAll("[data-field]")) {
    const [group, name] = node.dataset.field.split(".");
    const value = data[group] ? data[group][name] : undefined;
    node.textContent = value === undefined ? "-" : (FORMATS[name] || String)(value);
  }
}

function emptyNote(box, text) {
  box.replaceChildren(el("p", { class: "muted" }, text));
}

// Horizontal bars: rows of {label, parts: [{value, color, title}], note}.
function barChart(box, rows, options = {}) {
  if (!rows.length) return emptyNote(box, options.empty || "nothing in this period");
  const width = 480, left = 130, right = 180, bar = 18, gap = 8;
  const height = rows.length * (bar + gap) + 8;
  const max = Math.max(1e-12, ...rows.map((r) => r.parts.reduce((s, p) => s + Math.max(p.value, 0), 0)));
  const scale = (width - left - right) / max;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", width: "100%" });
  rows.forEach((row, i) => {
    const y = 4 + i * (bar + gap);
    const label = row.label.length > 20 ? row.label.slice(0, 19) + "…" : row.label;
    svg.append(svgEl("text", { x: left - 6, y: y + bar - 5, "text-anchor": "end", class: "label" }, label));
    let x = left;
    for (const part of row.parts) {
      const w = Math.max(part.value, 0) * scale;
      const rect = svgEl("rect", { x, y, width: Math.max(w, part.value > 0 ? 1 : 0), height: bar, fill: part.color });
      rect.append(svgEl("title", {}, part.title));
      svg.append(rect);
      x += w;
    }
    svg.append(svgEl("text", { x: x + 5, y: y + bar - 5, class: "note" }, row.note));
  });
  box.replaceChildren(svg);
}

function seriesChart(box, series) {
  const buckets = series.buckets.filter((b) => b.answered > 0);
  if (!buckets.length) return emptyNote(box, "no answered requests in this period");
  const width = 640, height = 220, left = 64, right = 12, top = 12, bottom = 36;
  const t0 = buckets[0].start, t1 = buckets[buckets.length - 1].start + series.bucket_s;
  const max = Math.max(1e-12, ...buckets.map((b) => Math.max(b.baseline_usd, b.cost_usd)));
  const x = (t) => left + ((t - t0) / Math.max(t1 - t0, 1)) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  const mid = (b) => x(b.start + series.bucket_s / 2);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", width: "100%" });
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.append(svgEl("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), stroke: COLORS.grid }));
    svg.append(svgEl("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, "$" + v.toPrecision(2)));
  }
  const area = buckets.map((b) => `${mid(b)},${y(b.baseline_usd)}`).join(" ") + " " +
    buckets.slice().reverse().map((b) => `${mid(b)},${y(b.cost_usd)}`).join(" ");
  svg.append(svgEl("polygon", { points: area, fill: COLORS.saved, "fill-opacity": 0.18 }));
  for (const [key, color, name] of [["baseline_usd", COLORS.baseline, "baseline"], ["cost_usd", COLORS.paid, "cost"]]) {
    svg.append(svgEl("polyline", { points: buckets.map((b) => `${mid(b)},${y(b[key])}`).join(" "),
                                   fill: "none", stroke: color, "stroke-width": 2 }));
    for (const b of buckets) {
      const dot = svgEl("circle", { cx: mid(b), cy: y(b[key]), r: 3, fill: color });
      dot.append(svgEl("title", {}, `${new Date(b.start * 1000).toISOString().slice(0, 16)}Z ${name} ${usd(b[key])}`));
      svg.append(dot);
    }
  }
  const fmt = series.bucket_s >= 86400 ? (d) => d.toISOString().slice(5, 10)
    : series.bucket_s >= 3600 ? (d) => d.toISOString().slice(5, 16).replace("T", " ")
    : series.bucket_s >= 60 ? (d) => d.toISOString().slice(11, 16)
    : (d) => d.toISOString().slice(11, 19);
  const ticks = Math.min(6, buckets.length);
  for (let i = 0; i < ticks; i++) {
    const t = t0 + ((t1 - t0) * (i + 0.5)) / ticks;
    svg.append(svgEl("text", { x: x(t), y: height - 14, "text-anchor": "middle", class: "axis" }, fmt(new Date(t * 1000))));
  }
  svg.append(svgEl("text", { x: width - right, y: height - 2, "text-anchor": "end", class: "axis" },
                   `UTC; ${series.bucket_s}s buckets; blue: cost, grey: baseline, green: saved`));
  box.replaceChildren(svg);
}

function groupTable(table, dimension, payload) {
  const head = el("tr");
  for (const h of [dimension === "key" ? "key id" : dimension, "req.", "hits", "cost", "saved", "%"]) {
    head.append(el("th", {}, h));
  }
  const rows = [head];
  const groups = payload.groups.concat(payload.others ? [payload.others] : []);
  for (const g of groups) {
    const tr = el("tr", { "data-group": `${dimension}:${g.name}` });
    tr.append(el("td", { "data-col": "name", title: g.name }, g.name));
    tr.append(el("td", { class: "n", "data-col": "requests" }, String(g.requests)));
    tr.append(el("td", { class: "n", "data-col": "hit_rate" }, pct(g.hit_rate)));
    tr.append(el("td", { class: "n", "data-col": "cost_usd" }, usd(g.cost_usd)));
    tr.append(el("td", { class: "n", "data-col": "saving_usd" }, usd(g.saving_usd)));
    tr.append(el("td", { class: "n", "data-col": "saving_ratio" }, pct(g.saving_ratio)));
    rows.push(tr);
  }
  table.replaceChildren(...rows);
}

function drawSpend(data) {
  $("#period-text").textContent = `${data.period.since_iso} to ${data.period.until_iso}`;
  setFields(data);
  seriesChart($("#chart-series"), data.series);
  barChart($("#chart-layers"), Object.entries(data.savings_by_layer).map(([layer, v]) => ({
    label: LAYERS[layer] || layer,
    parts: [{ value: Math.abs(v), color: v >= 0 ? COLORS.saved : COLORS.loss, title: usd(v) }],
    note: (v < 0 ? "cost " : "") + usd(Math.abs(v)),
  })));
  for (const panel of document.querySelectorAll("[data-by]")) {
    const dimension = panel.dataset.by, payload = data.by[dimension];
    const groups = payload.groups.concat(payload.others ? [payload.others] : []);
    barChart($(".chart", panel), groups.map((g) => ({
      label: g.name,
      parts: [{ value: g.cost_usd, color: COLORS.paid, title: "cost " + usd(g.cost_usd) },
              { value: Math.max(g.saving_usd, 0), color: COLORS.saved, title: "saved " + usd(g.saving_usd) }],
      note: `${usd(g.cost_usd)} · ${pct(g.saving_ratio)} saved`,
    })));
    groupTable($("table", panel), dimension, payload);
  }
  const c = data.cache;
  barChart($("#chart-cache"), [["exact hits", c.exact_hits, COLORS.saved], ["semantic hits", c.semantic_hits, COLORS.saved],
    ["misses", c.misses, COLORS.paid], ["bypassed", c.bypassed, COLORS.baseline], ["unavailable", c.unavailable, COLORS.loss]]
    .map(([label, n, color]) => ({ label, parts: [{ value: n, color, title: String(n) }], note: String(n) })));
  const tiers = Object.keys(data.routing.tiers).sort((a, b) => TIERS.indexOf(a) - TIERS.indexOf(b));
  const answered = Math.max(1, data.totals.answered);
  barChart($("#chart-tiers"), tiers.map((t) => ({
    label: t, parts: [{ value: data.routing.tiers[t], color: t === "cached" ? COLORS.saved : COLORS.paid, title: t }],
    note: `${data.routing.tiers[t]} (${pct(data.routing.tiers[t] / answered)})`,
  })), { empty: "no answers in this period" });
  const errors = Object.entries(data.errors);
  const rows = [el("tr")];
  rows[0].append(el("th", {}, "error"), el("th", {}, "requests"));
  for (const [name, n] of errors) {
    const tr = el("tr", { "data-error": name });
    tr.append(el("td", {}, name), el("td", { class: "n" }, String(n)));
    rows.push(tr);
  }
  if (!errors.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 2, class: "muted" }, "none"));
    rows.push(tr);
  }
  $("#errors").replaceChildren(...rows);
}

function drawVerifier(v) {
  const list = $("#verifier");
  const items = v.available ? [
    ["verifier", v.verifier],
    ["false-hit bound", v.max_false_hit_rate === undefined ? "-" : pct(v.max_false_hit_rate)],
    ["threshold", v.threshold === undefined ? "-" : String(v.threshold)],
    ["calibrated false-hit rate", v.calibrated_false_hit_rate === undefined ? "-" : pct(v.calibrated_false_hit_rate)],
    ["precision / recall", v.calibrated_precision === undefined ? "-"
      : `${pct(v.calibrated_precision)} / ${pct(v.calibrated_recall)}`],
    ["trap recall", v.calibrated_trap_recall === undefined ? "-" : pct(v.calibrated_trap_recall)],
    ["lookups (since the cache started)", `${v.lookups}, ${pct(v.hit_rate)} hits, ${v.verifier_rejections} rejected`],
  ] : [["verifier", "unknown: " + v.reason]];
  list.replaceChildren();
  for (const [k, value] of items) list.append(el("dt", {}, k), el("dd", { "data-verifier": k }, value));
}

function drawKeys(keys) {
  const table = $("#key-table");
  $("#keys-note").textContent = keys.managed
    ? `${keys.active} active of ${keys.total}; a key made or revoked here works, or stops, on the gateway's next request.`
    : `${keys.active} active of ${keys.total}. The key file ${keys.file} is read-only for the gateway ` +
      "(e.g. a Kubernetes Secret): make and revoke keys where it is made.";
  $("#key-form").hidden = !keys.managed;
  const head = el("tr");
  for (const h of ["key id", "tenant", "label", "created (UTC)", "state", ""]) head.append(el("th", {}, h));
  const managed = keys.managed;
  const own = (/^cm_([0-9a-f]+)_/.exec(token()) || [])[1];  // the key signed in with: not revoked from here
  const rows = [head];
  for (const k of keys.keys) {
    const tr = el("tr", { "data-key": k.key_id });
    tr.append(el("td", {}, k.key_id), el("td", {}, k.role === "admin" ? "(admin)" : k.tenant), el("td", {}, k.name),
              el("td", {}, new Date(k.created_at * 1000).toISOString().slice(0, 16).replace("T", " ")),
              el("td", { class: k.active ? "good" : "muted" }, k.active ? "active" : "revoked"));
    const cell = el("td");
    if (k.active && managed && k.key_id !== own) {
      const button = el("button", { type: "button", "data-revoke": k.key_id }, "Revoke");
      cell.append(button);
    }
    tr.append(cell);
    rows.push(tr);
  }
  table.replaceChildren(...rows);
}

const LIMIT_FIELDS = ["rpm", "tpm", "usd_per_day", "usd_per_month"];
const count = (v) => (v === null || v === undefined ? "-" : Number(v).toLocaleString("en-US"));
const budget = (v) => (v === null || v === undefined ? "-" : usd(v));

function drawLimits(limits) {
  $("#limits-note").textContent = limits.enforced
    ? `${limits.rows.length} tenants and keys${limits.truncated ? " (the first 500)" : ""}; ` +
      "spend is counted while a budget is set (UTC day and month, requests in flight included)."
    : limits.reason;
  $("#limit-form").hidden = !limits.enforced;
  const head = el("tr");
  for (const h of ["tenant", "key", "req./min", "tokens/min", "USD/day", "USD/month", "spent today", "this month", ""]) {
    head.append(el("th", {}, h));
  }
  const rows = [head];
  for (const r of limits.rows) {
    const tr = el("tr", { "data-limit": `${r.tenant}:${r.key_id}` });
    tr.append(el("td", {}, r.tenant), el("td", { title: r.key_name }, r.key_id ? `${r.key_id} ${r.key_name}`.trim() : "(tenant)"));
    tr.append(el("td", { class: "n", "data-col": "rpm" }, count(r.limits.rpm)),
              el("td", { class: "n", "data-col": "tpm" }, count(r.limits.tpm)),
              el("td", { class: "n", "data-col": "usd_per_day" }, budget(r.limits.usd_per_day)),
              el("td", { class: "n", "data-col": "usd_per_month" }, budget(r.limits.usd_per_month)),
              el("td", { class: "n", "data-col": "spent_today_usd" }, usd(r.spent_today_usd)),
              el("td", { class: "n", "data-col": "spent_this_month_usd" }, usd(r.spent_this_month_usd)));
    const cell = el("td");
    const button = el("button", { type: "button", "data-edit": `${r.tenant}:${r.key_id}` }, "Edit");
    button.addEventListener("click", () => {
      const form = $("#limit-form");
      form.tenant.value = r.tenant;
      form.key_id.value = r.key_id;
      for (const name of LIMIT_FIELDS) form[name].value = r.limits[name] === null ? "" : String(r.limits[name]);
      form.rpm.focus();
    });
    cell.append(button);
    tr.append(cell);
    rows.push(tr);
  }
  $("#limit-table").replaceChildren(...rows);
}

function limitBody(form) {
  // Sent as typed: the API says which field is wrong (a 400 naming it), shown under the form.
  const body = {};
  for (const name of LIMIT_FIELDS) {
    const text = form[name].value.trim();
    body[name] = text === "" ? null : (/^-?[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : text);
  }
  return body;
}

async function load() {
  if (timer) clearTimeout(timer);
  const { since, until } = period();
  try {
    const query = new URLSearchParams({ since, until });
    const [data, verifier, keys, limits] = await Promise.all([
      api(API + "/spend?" + query), api(API + "/verifier"), api(API + "/keys"), api(API + "/limits")]);
    drawSpend(data);
    drawVerifier(verifier);
    drawKeys(keys);
    drawLimits(limits);
    $("#error").textContent = "";
    $("#updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    document.body.dataset.state = "ready";
  } catch (e) {
    if (e.message === "unauthenticated") return;
    $("#error").textContent = e.message;
    document.body.dataset.state = "error";
  }
  if ($("#period").live.checked) timer = setTimeout(load, REFRESH_MS);
}

function show() {
  document.body.dataset.state = "loading";
  $("#login").hidden = true;
  $("#main").hidden = false;
  $("#signout").hidden = false;
  load();
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromFragment();
  periodFromQuery();
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, event.target.token.value.trim());
    event.target.token.value = "";
    show();
  });
  $("#signout").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", () => { if (takeTokenFromFragment()) show(); });
  $("#period").addEventListener("submit", (event) => { event.preventDefault(); remember(); load(); });
  for (const button of document.querySelectorAll("[data-since]")) {
    button.addEventListener("click", () => {
      $("#period").since.value = button.dataset.since;
      $("#period").until.value = "now";
      remember();
      load();
    });
  }
  $("#period").live.addEventListener("change", () => load());
  $("#key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const admin = form.admin.checked;
      const body = admin ? { role: "admin", name: form.name.value.trim() }
                         : { tenant: form.tenant.value.trim(), name: form.name.value.trim() };
      const created = await api(API + "/keys", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      $("#new-key-value").textContent = created.key;
      $("#new-key").hidden = false;
      form.reset();
      drawKeys(await api(API + "/keys"));
    } catch (e) {
      $("#keys-note").textContent = e.message;
    }
  });
  $("#limit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const tenant = encodeURIComponent(form.tenant.value.trim());
    const keyId = form.key_id.value.trim();
    const path = `${API}/limits/${tenant}` + (keyId ? `/keys/${encodeURIComponent(keyId)}` : "");
    const result = $("#limit-result");
    try {
      const row = await api(path, {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(limitBody(form)) });
      result.className = "good";
      result.textContent = `Saved: ${row.tenant}${row.key_id ? " key " + row.key_id : ""}.`;
      drawLimits(await api(API + "/limits"));
    } catch (e) {
      result.className = "error";
      result.textContent = e.message;
    }
  });
  $("#key-table").addEventListener("click", async (event) => {
    const id = event.target.dataset && event.target.dataset.revoke;
    if (!id || !confirm(`Revoke key ${id}? Requests with it fail from the next one on.`)) return;
    try {
      await api(`${API}/keys/${encodeURIComponent(id)}/revoke`, { method: "POST" });
      drawKeys(await api(API + "/keys"));
    } catch (e) {
      $("#keys-note").textContent = e.message;
    }
  });
  if (token()) show(); else signOut("");
});

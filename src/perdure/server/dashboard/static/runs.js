// Runs list: filters (kept in the URL), cursor pagination, live updates over server-sent
// events, bulk cancel / rerun of the filtered set with a confirmation.
import { api, canWrite, qs } from "./api.js";
import { mountNav } from "./nav.js";
import { ago, badge, confirmDialog, duration, el, showError, span, toast, when } from "./ui.js";

const STATUSES = ["queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled", "skipped"];
const FILTERS = ["status", "function_id", "created_after", "created_before", "run_id", "event_id", "text"];
const PAGE = 50;

const main = document.getElementById("main");
const session = await mountNav("runs");
const params = new URLSearchParams(location.search);
const state = { cursors: [], cursor: params.get("cursor") || null, next: null, rows: new Map(), source: null };

// ---- filters: the URL holds them (times as datetime-local text; the API takes ms)
function filterValues() {
  const out = {};
  for (const name of FILTERS) {
    const v = (params.get(name) || "").trim();
    if (v) out[name] = v;
  }
  return out;
}
function apiFilters() {
  const f = filterValues();
  for (const t of ["created_after", "created_before"]) {
    if (f[t]) {
      const ms = new Date(f[t]).getTime();
      if (isFinite(ms)) f[t] = ms; else delete f[t];
    }
  }
  return f;
}

const fields = {
  status: el("select", { name: "status", id: "f-status" }, el("option", { value: "" }, "Any status"),
    STATUSES.map((s) => el("option", { value: s }, s))),
  function_id: el("select", { name: "function_id", id: "f-function" }, el("option", { value: "" }, "Any function")),
  created_after: el("input", { type: "datetime-local", name: "created_after", id: "f-after", step: "1" }),
  created_before: el("input", { type: "datetime-local", name: "created_before", id: "f-before", step: "1" }),
  run_id: el("input", { type: "search", name: "run_id", id: "f-run", placeholder: "01J…", spellcheck: "false" }),
  event_id: el("input", { type: "search", name: "event_id", id: "f-event", placeholder: "event id", spellcheck: "false" }),
  text: el("input", { type: "search", name: "text", id: "f-text", placeholder: "text in the input", spellcheck: "false" }),
};
const labels = { status: "Status", function_id: "Function", created_after: "Created after", created_before: "Created before", run_id: "Run id", event_id: "Event id", text: "Input contains" };
const form = el("form", { class: "filters", id: "filters" },
  FILTERS.map((n) => el("label", { class: "field" }, labels[n], fields[n])),
  el("button", { type: "submit", class: "primary" }, "Apply"),
  el("button", { type: "button", id: "f-clear", onclick: () => go({}) }, "Clear"));
form.addEventListener("submit", (e) => {
  e.preventDefault();
  const f = {};
  for (const n of FILTERS) f[n] = fields[n].value.trim();
  go(f);
});
fields.status.addEventListener("change", () => form.requestSubmit());
fields.function_id.addEventListener("change", () => form.requestSubmit());
for (const [k, v] of Object.entries(filterValues())) fields[k].value = v;

function go(filters) {
  location.assign("/runs" + qs(filters));
}

// ---- layout
const live = el("span", { class: "live", id: "live", title: "updates arrive without a reload" }, "connecting");
const count = el("span", { class: "sub", id: "count" });
const bulkCancel = el("button", { type: "button", class: "danger", id: "bulk-cancel" }, "Cancel matching…");
const bulkRerun = el("button", { type: "button", id: "bulk-rerun" }, "Rerun matching…");
const body = el("tbody", { id: "runs-body" });
const prev = el("button", { type: "button", id: "prev" }, "← Newer");
const next = el("button", { type: "button", id: "next" }, "Older →");
const table = el("table", { id: "runs" },
  el("thead", {}, el("tr", {}, ["Status", "Run", "Function", "Trigger", "Created", "Duration"].map((h) => el("th", {}, h)))),
  body);
const toolbar = el("div", { class: "toolbar" }, live, count, el("div", { class: "spacer" }));
if (canWrite(session)) toolbar.append(bulkRerun, bulkCancel);
main.replaceChildren(
  el("div", { class: "page-head" }, el("h1", {}, "Runs"), el("span", { class: "sub" }, "every execution of every function, newest first")),
  el("div", { class: "panel" }, form, toolbar, table, el("div", { class: "pager" }, prev, next)));

// ---- rows
function trigger(run) {
  const ev = run.event || {};
  if (!ev.name) return "";
  if (ev.name === "perdure/function.invoked") return run.parent_run_id ? "invoked" : "started";
  if (ev.name === "perdure/scheduled.timer" || ev.name.startsWith("perdure/cron")) return "cron";
  return ev.name;
}
function row(run) {
  const tr = el("tr", { "data-run": run.id, "data-status": run.status },
    el("td", {}, badge(run.status)),
    el("td", {}, el("a", { class: "mono", href: `/runs/${encodeURIComponent(run.id)}` }, run.id)),
    el("td", {}, el("a", { href: `/functions/${encodeURIComponent(run.function_id)}` }, run.function_id)),
    el("td", { class: "sub" }, trigger(run), run.rerun_of ? " · rerun" : "", run.replay_of ? " · replay" : ""),
    el("td", { title: when(run.created_at) }, ago(run.created_at)),
    el("td", {}, run.started_at ? duration(span(run.started_at, run.ended_at)) : "—"));
  return tr;
}
function render() {
  const runs = [...state.rows.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
  if (!runs.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty" },
      Object.keys(filterValues()).length ? "No run matches these filters." : "No runs yet. Start one from Functions, or send an event.")));
  }
  count.textContent = `${runs.length} shown${state.next ? ", more on older pages" : ""}`;
  prev.disabled = !state.cursor;
  next.disabled = !state.next;
  return runs;
}
function fill(runs) {
  state.rows = new Map(runs.map((r) => [r.id, r]));
  body.replaceChildren(...runs.map(row));
  render();
}
function upsert(run, matches) {
  const old = body.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`);
  if (old) {
    state.rows.set(run.id, run);
    const tr = row(run);
    if (!matches) tr.classList.add("stale");
    old.replaceWith(tr);
    if (old.dataset.status !== run.status) tr.classList.add("flash");
    return;
  }
  if (!matches || state.cursor) return;
  state.rows.set(run.id, run);
  const tr = row(run);
  tr.classList.add("flash");
  const after = [...body.querySelectorAll("tr[data-run]")].find((r) => r.dataset.run < run.id);
  if (after) body.insertBefore(tr, after);
  else {
    body.querySelector("td.empty")?.parentElement.remove();
    body.append(tr);
  }
  while (body.querySelectorAll("tr[data-run]").length > PAGE) {
    const last = [...body.querySelectorAll("tr[data-run]")].pop();
    state.rows.delete(last.dataset.run);
    last.remove();
    state.next = state.next || last.dataset.run;
  }
  render();
}

async function load() {
  try {
    const page = await api("/api/v1/runs" + qs({ ...apiFilters(), cursor: state.cursor, limit: PAGE }));
    state.next = page.next_cursor;
    fill(page.runs);
    connect(page.runs);
  } catch (err) {
    showError(body, err);
  }
}

// ---- live updates
let reloadTimer = null;
function connect(runs) {
  if (state.source) state.source.close();
  const watch = runs.filter((r) => !["completed", "failed", "cancelled", "skipped"].includes(r.status)).map((r) => r.id);
  const first = !state.cursor;
  const url = "/api/v1/runs/stream" + qs({ ...apiFilters(), watch: watch.join(","), new: first ? 1 : 0, since: first ? (runs[0] ? runs[0].id : "0") : "" });
  const source = new EventSource(url, { withCredentials: true });
  state.source = source;
  source.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
  source.addEventListener("error", () => { live.textContent = "reconnecting"; live.classList.remove("on"); });
  source.addEventListener("run", (e) => {
    const msg = JSON.parse(e.data);
    upsert(msg.run, msg.matches);
  });
  source.addEventListener("overflow", () => {
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, 2000);
  });
}

prev.addEventListener("click", () => {
  const f = filterValues();
  const back = state.cursors.pop();
  history.replaceState(null, "", "/runs" + qs({ ...f, cursor: back || "" }));
  state.cursor = back || null;
  load();
});
next.addEventListener("click", () => {
  state.cursors.push(state.cursor);
  state.cursor = state.next;
  history.replaceState(null, "", "/runs" + qs({ ...filterValues(), cursor: state.cursor }));
  load();
});

// ---- bulk actions
async function bulk(kind) {
  const filters = apiFilters();
  const verb = kind === "cancel" ? "Cancel" : "Rerun";
  try {
    const dry = await api(`/api/v1/runs/bulk/${kind}`, { method: "POST", body: { ...filters, dry_run: true } });
    if (!dry.matched) {
      toast(kind === "cancel" ? "No matching run is still active: nothing to cancel." : "No run matches: nothing to rerun.");
      return;
    }
    const n = dry.matched;
    const more = dry.more ? ` More runs match: this action handles ${dry.limit} per call, newest first; run it again for the rest.` : "";
    const what = kind === "cancel" ? "active runs matching the filters will be cancelled. They never resume." : "runs matching the filters will be rerun, each as a new run with the same input.";
    const ok = await confirmDialog({
      title: `${verb} ${n}${dry.more ? "+" : ""} run${n === 1 ? "" : "s"}?`,
      body: el("p", { "data-bulk-count": n }, `${n} ${what}${more}`),
      confirm: `${verb} ${n} run${n === 1 ? "" : "s"}`,
      danger: kind === "cancel",
    });
    if (!ok) return;
    const res = await api(`/api/v1/runs/bulk/${kind}`, { method: "POST", body: filters });
    const failed = res.failed.length ? `, ${res.failed.length} failed (${res.failed[0].message})` : "";
    toast(`${kind === "cancel" ? "Cancelled" : "Reran"} ${res.run_ids.length} run${res.run_ids.length === 1 ? "" : "s"}${failed}.`, { error: !!res.failed.length });
    load();
  } catch (err) {
    toast(err.message, { error: true });
  }
}
bulkCancel.addEventListener("click", () => bulk("cancel"));
bulkRerun.addEventListener("click", () => bulk("rerun"));

// ---- functions for the filter
api("/api/v1/functions").then((res) => {
  for (const f of res.functions) fields.function_id.append(el("option", { value: f.id }, f.id));
  fields.function_id.value = filterValues().function_id || "";
}).catch(() => {});

setInterval(() => { // keep "12s ago" and running durations fresh
  for (const tr of body.querySelectorAll("tr[data-run]")) {
    const run = state.rows.get(tr.dataset.run);
    if (run && !run.ended_at) tr.replaceWith(row(run));
  }
}, 5000);

load();

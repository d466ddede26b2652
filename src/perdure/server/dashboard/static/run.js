// Run detail: summary, waterfall of the steps, the selected step's output and error, the
// triggering event(s), links (parent, rerun_of, replay_of), and the actions cancel, rerun and
// replay from a step. Refreshes itself while the run has not ended.
import { api, canWrite } from "./api.js";
import { mountNav } from "./nav.js";
import { badge, confirmDialog, duration, el, jsonBlock, showError, span, toast, when } from "./ui.js";

const ENDED = ["completed", "failed", "cancelled", "skipped"];
const main = document.getElementById("main");
const runId = decodeURIComponent(location.pathname.slice("/runs/".length));
const session = await mountNav("runs");
let selected = null;
let timer = null;

const runLink = (id) => el("a", { class: "mono", href: `/runs/${encodeURIComponent(id)}` }, id);

function errorView(error) {
  if (!error) return null;
  const parts = [el("div", { class: "error-box" }, el("b", {}, error.type || "Error"), ": ", error.message || "")];
  let cause = error.cause;
  while (cause) {
    parts.push(el("div", { class: "sub" }, "caused by ", el("b", {}, cause.type || "Error"), ": ", cause.message || ""));
    cause = cause.cause;
  }
  const stack = typeof error.stack === "string" ? error.stack : error.traceback;
  if (stack) parts.push(el("pre", { class: "json trace", "data-trace": "" }, stack));
  return el("div", { class: "stack" }, parts);
}

function stepEnd(step, run) {
  if (step.ended_at) return step.ended_at;
  if ((step.kind === "sleep" || step.kind === "wait") && step.wake_at && !ENDED.includes(run.status)) return null;
  return run.ended_at;
}

function waterfall(run) {
  const steps = run.steps || [];
  const t0 = new Date(run.started_at || run.created_at).getTime();
  const tEnd = run.ended_at ? new Date(run.ended_at).getTime() : Date.now();
  let total = Math.max(1, tEnd - t0);
  for (const s of steps) {
    const end = stepEnd(s, run);
    const e = end ? new Date(end).getTime() : (s.wake_at ? new Date(s.wake_at).getTime() : Date.now());
    total = Math.max(total, e - t0);
  }
  const rows = steps.map((s) => {
    const start = s.started_at ? new Date(s.started_at).getTime() - t0 : 0;
    const endIso = stepEnd(s, run);
    const end = endIso ? new Date(endIso).getTime() - t0 : (s.wake_at ? new Date(s.wake_at).getTime() - t0 : Date.now() - t0);
    const left = Math.max(0, (start / total) * 100);
    const width = Math.max(0.4, ((end - start) / total) * 100);
    const kindCls = ["sleep", "wait", "invoke"].includes(s.kind) ? `kind-${s.kind}` : "";
    const bar = el("div", {
      class: `wf-bar ${s.status} ${kindCls} ${endIso ? "" : "open"}`,
      style: `left:${left}%;width:${Math.min(width, 100 - left)}%`,
      title: `${s.kind} ${s.status}: ${duration(end - start)}`,
    });
    const what = s.kind === "sleep" ? (s.wake_at ? `sleeps until ${when(s.wake_at)}` : "sleep")
      : s.kind === "wait" ? (s.status === "waiting" ? `waits until ${when(s.wake_at)}` : "wait for event")
      : `${s.attempts} attempt${s.attempts === 1 ? "" : "s"}`;
    const tr = el("div", { class: "wf-row", "data-step": s.id, "data-kind": s.kind, "data-status": s.status, tabindex: 0 },
      el("div", { class: "wf-name" }, el("span", { class: "id", title: s.id }, s.name || s.id),
        el("span", { class: "meta" }, `${s.kind} · ${s.status} · +${duration(start)} · ${duration(end - start)} · ${what}`)),
      el("div", { class: "wf-track" }, bar));
    tr.addEventListener("click", () => select(run, s.id));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") select(run, s.id); });
    return tr;
  });
  const axis = el("div", { class: "wf-axis" }, ["0", duration(total / 4), duration(total / 2), duration((3 * total) / 4), duration(total)].map((t) => el("span", {}, t)));
  const legend = el("div", { class: "wf-legend" }, el("span", {}, "completed"), el("span", { class: "l-failed" }, "failed"),
    el("span", { class: "l-wait" }, "sleep / wait"), el("span", { class: "l-invoke" }, "invoke"));
  return el("div", { class: "wf", id: "waterfall" }, steps.length ? [axis, ...rows, legend]
    : el("div", { class: "empty" }, run.status === "queued" ? "Not started yet." : "No steps recorded."));
}

function stepDetail(run, stepId) {
  const s = (run.steps || []).find((x) => x.id === stepId);
  if (!s) return el("div", { class: "empty" }, "Select a step to see its input, output and error.");
  const actions = el("div", { class: "toolbar" }, el("h2", { class: "mono", style: "margin:0" }, s.name || s.id), el("div", { class: "spacer" }));
  if (canWrite(session) && ENDED.includes(run.status)) {
    actions.append(el("button", { type: "button", id: "replay-step", onclick: () => replay(run, s) }, "Replay from this step…"));
  }
  return el("div", { id: "step-detail" }, actions, el("div", { class: "panel-body stack" },
    el("dl", { class: "kv" },
      el("dt", {}, "Step id"), el("dd", { class: "mono" }, s.id),
      el("dt", {}, "Kind"), el("dd", {}, s.kind),
      el("dt", {}, "Status"), el("dd", {}, badge(s.status)),
      el("dt", {}, "Attempts"), el("dd", {}, String(s.attempts)),
      el("dt", {}, "Started"), el("dd", {}, when(s.started_at)),
      el("dt", {}, "Ended"), el("dd", {}, when(s.ended_at)),
      s.wake_at ? [el("dt", {}, "Wakes at"), el("dd", {}, when(s.wake_at))] : null),
    s.input !== undefined && s.input !== null ? el("div", { "data-input": "" }, el("h2", {}, "Input"), jsonBlock(s.input)) : null,
    s.error ? el("div", {}, el("h2", {}, "Error"), errorView(s.error)) : null,
    el("div", { "data-output": "" }, el("h2", {}, "Output"), s.output === null && s.status !== "completed" ? el("p", { class: "sub" }, "none yet") : jsonBlock(s.output))));
}

function select(run, stepId) {
  selected = stepId;
  for (const r of document.querySelectorAll(".wf-row")) r.classList.toggle("selected", r.dataset.step === stepId);
  document.getElementById("step-panel").replaceChildren(stepDetail(run, stepId));
}

async function act(label, fn) {
  try { await fn(); } catch (err) { toast(`${label}: ${err.message}`, { error: true }); }
}
async function cancel(run) {
  if (!(await confirmDialog({ title: "Cancel this run?", body: el("p", {}, "It becomes cancelled and never resumes."), confirm: "Cancel run", danger: true }))) return;
  await act("cancel", async () => { await api(`/api/v1/runs/${encodeURIComponent(run.id)}/cancel`, { method: "POST" }); toast("Run cancelled."); load(); });
}
async function rerun(run) {
  if (!(await confirmDialog({ title: "Rerun this run?", body: el("p", {}, "A new run of the same function with the same input starts, linked to this one."), confirm: "Rerun" }))) return;
  await act("rerun", async () => { const n = await api(`/api/v1/runs/${encodeURIComponent(run.id)}/rerun`, { method: "POST" }); location.assign(`/runs/${encodeURIComponent(n.id)}`); });
}
async function replay(run, step) {
  const kept = (run.steps || []).filter((s) => s.position < step.position && s.status === "completed").length;
  const ok = await confirmDialog({
    title: `Replay from “${step.name || step.id}”?`,
    body: el("p", {}, `A new run starts that keeps the recorded results of the ${kept} completed step${kept === 1 ? "" : "s"} before this one and executes from this step on.`),
    confirm: "Replay",
  });
  if (!ok) return;
  await act("replay", async () => {
    const n = await api(`/api/v1/runs/${encodeURIComponent(run.id)}/replay`, { method: "POST", body: { from_step: step.id } });
    location.assign(`/runs/${encodeURIComponent(n.id)}`);
  });
}

// Who cancelled, reran or replayed this run, and when (the run's audit trail, newest first).
const AUDIT_TEXT = { cancel: "cancelled", rerun: "reran it as", replay: "replayed it as", rerun_of: "started it as a rerun of", replay_of: "started it as a replay of" };
function auditPanel(run) {
  const entries = run.audit || [];
  if (!entries.length) return null;
  return el("div", { class: "panel", id: "audit" }, el("div", { class: "panel-body" }, el("h2", {}, "Audit"),
    el("ul", { class: "audit" }, entries.map((a) => el("li", { "data-action": a.action },
      el("span", { class: "mono" }, a.actor), " ", AUDIT_TEXT[a.action] || a.action, " ",
      a.target ? runLink(a.target) : null,
      a.detail && a.detail.from_step ? [" from step ", el("code", {}, a.detail.from_step)] : null,
      " ", el("span", { class: "sub" }, when(a.at)))))));
}

function render(run) {
  document.title = `${run.function_id} ${run.id} · perdure`;
  const actions = el("div", { class: "actions", style: "display:flex;gap:8px" });
  if (canWrite(session)) {
    if (!ENDED.includes(run.status)) actions.append(el("button", { type: "button", class: "danger", id: "cancel", onclick: () => cancel(run) }, "Cancel"));
    actions.append(el("button", { type: "button", id: "rerun", onclick: () => rerun(run) }, "Rerun"));
  }
  const events = run.events || [run.event];
  const links = [];
  if (run.parent_run_id) links.push(el("dt", {}, "Invoked by"), el("dd", {}, runLink(run.parent_run_id)));
  if (run.rerun_of) links.push(el("dt", {}, "Rerun of"), el("dd", { "data-link": "rerun_of" }, runLink(run.rerun_of)));
  if (run.replay_of) links.push(el("dt", {}, "Replay of"), el("dd", { "data-link": "replay_of" }, runLink(run.replay_of), " from step ", el("code", {}, run.replay_from_step || "")));
  const children = (run.steps || []).filter((s) => s.kind === "invoke" && s.output && typeof s.output === "object" && s.output.run_id);
  for (const c of children) links.push(el("dt", {}, "Invoked"), el("dd", {}, runLink(c.output.run_id)));
  main.replaceChildren(...[
    el("div", { class: "page-head" },
      el("div", {}, el("div", { class: "sub" }, el("a", { href: "/runs" }, "Runs"), " / ", el("a", { href: `/functions/${encodeURIComponent(run.function_id)}` }, run.function_id)),
        el("h1", { class: "mono", id: "run-id" }, run.id)),
      badge(run.status), el("div", { class: "spacer" }), actions),
    run.reason ? el("div", { class: "reason", id: "reason" }, el("b", {}, run.reason.decision || run.reason.option || "flow control"), ": ", run.reason.message || JSON.stringify(run.reason)) : null,
    el("div", { class: "grid2", style: "margin-top:16px" },
      el("div", { class: "stack" },
        el("div", { class: "panel" }, el("div", { class: "toolbar" }, el("h2", { style: "margin:0" }, "Timeline"), el("div", { class: "spacer" }),
          el("span", { class: "sub" }, `${(run.steps || []).length} steps · ${duration(span(run.started_at, run.ended_at))}`)), waterfall(run)),
        el("div", { class: "panel", id: "step-panel" }),
        run.error ? el("div", { class: "panel" }, el("div", { class: "panel-body" }, el("h2", {}, "Run error"), errorView(run.error))) : null,
        ENDED.includes(run.status) && run.status === "completed" ? el("div", { class: "panel" }, el("div", { class: "panel-body", id: "run-output" }, el("h2", {}, "Output"), jsonBlock(run.output))) : null),
      el("div", { class: "stack" },
        el("div", { class: "panel" }, el("div", { class: "panel-body" }, el("dl", { class: "kv" },
          el("dt", {}, "Function"), el("dd", {}, run.function_id),
          el("dt", {}, "Status"), el("dd", {}, run.status),
          el("dt", {}, "Attempt"), el("dd", {}, String(run.attempt)),
          el("dt", {}, "Created"), el("dd", {}, when(run.created_at)),
          el("dt", {}, "Started"), el("dd", {}, when(run.started_at)),
          el("dt", {}, "Ended"), el("dd", {}, when(run.ended_at)),
          run.idempotency_key ? [el("dt", {}, "Idempotency key"), el("dd", { class: "mono" }, run.idempotency_key)] : null,
          links))),
        el("div", { class: "panel" }, el("div", { class: "panel-body" }, el("h2", {}, events.length > 1 ? `Triggering events (${events.length})` : "Triggering event"),
          events.map((e) => el("div", { "data-event": e.id }, el("div", {}, el("a", { class: "mono", href: `/events/${encodeURIComponent(e.id)}` }, e.id), " ", el("span", { class: "sub" }, e.name)), jsonBlock(e.data))))),
        auditPanel(run)))].filter(Boolean));
  const steps = run.steps || [];
  const pick = steps.find((s) => s.id === selected) || steps.find((s) => s.status === "failed") || steps[steps.length - 1];
  if (pick) select(run, pick.id);
  else document.getElementById("step-panel").replaceChildren(stepDetail(run, null));
}

async function load() {
  clearTimeout(timer);
  try {
    const run = await api(`/api/v1/runs/${encodeURIComponent(runId)}`);
    render(run);
    if (!ENDED.includes(run.status)) timer = setTimeout(load, 1500);
  } catch (err) {
    showError(main, err);
  }
}
load();

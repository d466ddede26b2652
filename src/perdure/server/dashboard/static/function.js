// One function: triggers, options and flow control, recent statistics, start a run, pause/resume.
import { api, canWrite } from "./api.js";
import { mountNav } from "./nav.js";
import { badge, duration, el, jsonBlock, showError, toast } from "./ui.js";

const main = document.getElementById("main");
const s = await mountNav("functions");
const functionId = decodeURIComponent(location.pathname.slice("/functions/".length));
const base = `/api/v1/functions/${encodeURIComponent(functionId)}`;

function triggerText(t) {
  if (t.cron) return `cron ${t.cron} (${t.tz})`;
  return t.if ? `event ${t.event} if ${t.if}` : `event ${t.event}`;
}

function pct(x) {
  return x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)} %`;
}

function seconds(x) {
  return x === null || x === undefined ? "—" : duration(x * 1000);
}

function statsPanel(st) {
  const counts = Object.entries(st.statuses).filter(([, n]) => n > 0);
  return el("div", { class: "panel", id: "stats" }, el("div", { class: "panel-body stack" },
    el("h2", {}, "Recent runs"),
    el("p", { class: "sub" }, `The ${st.window} most recently created runs (${st.runs} so far).`),
    el("dl", { class: "kv" },
      el("dt", {}, "Success rate"), el("dd", { "data-stat": "success_rate" }, pct(st.success_rate)),
      el("dt", {}, "p50"), el("dd", { "data-stat": "p50" }, seconds(st.duration.p50)),
      el("dt", {}, "p95"), el("dd", { "data-stat": "p95" }, seconds(st.duration.p95)),
      el("dt", {}, "p99"), el("dd", { "data-stat": "p99" }, seconds(st.duration.p99))),
    el("div", {}, counts.length ? counts.map(([k, n]) => el("span", { style: null }, badge(k), ` ${n}  `)) : el("span", { class: "sub" }, "No runs yet."))));
}

function startPanel() {
  const data = el("textarea", { id: "run-data", rows: 6, spellcheck: "false" }, "{}");
  const key = el("input", { type: "text", id: "run-key", placeholder: "optional" });
  const out = el("div", {});
  const f = el("form", { class: "panel-body stack", id: "start-run" },
    el("h2", {}, "Start a run"),
    el("label", { class: "field" }, "Input data (a JSON object)", data),
    el("label", { class: "field" }, "Idempotency key", key),
    el("button", { class: "primary", type: "submit" }, "Start run"), out);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    let parsed;
    try { parsed = JSON.parse(data.value || "{}"); } catch (err) {
      showError(out, new Error(`the input is not JSON: ${err.message}`));
      return;
    }
    const body = { data: parsed };
    if (key.value.trim()) body.idempotency_key = key.value.trim();
    try {
      const started = await api(`${base}/runs`, { method: "POST", body });
      location.assign(`/runs/${encodeURIComponent(started.run_id)}`);
    } catch (err) {
      showError(out, err);
    }
  });
  return el("div", { class: "panel" }, f);
}

async function render() {
  const [fn, st] = await Promise.all([api(base), api(`${base}/stats`)]);
  const write = canWrite(s);
  const toggle = el("button", { id: fn.paused ? "resume" : "pause", type: "button", class: fn.paused ? "primary" : "danger" },
    fn.paused ? "Resume" : "Pause");
  toggle.addEventListener("click", async () => {
    toggle.disabled = true;
    try {
      await api(`${base}/${fn.paused ? "resume" : "pause"}`, { method: "POST" });
      toast(fn.paused ? "resumed" : "paused: its runs queue without starting");
      await render();
    } catch (err) {
      toggle.disabled = false;
      toast(err.message, { error: true });
    }
  });
  const config = { ...fn.config };
  delete config.flow;
  main.replaceChildren(
    el("div", { class: "page-head" },
      el("h1", {}, fn.id),
      fn.paused ? el("span", { class: "badge waiting", id: "state" }, "paused") : el("span", { class: "badge completed", id: "state" }, "active"),
      el("div", { class: "spacer" }),
      el("a", { class: "btn", href: `/runs?function_id=${encodeURIComponent(fn.id)}` }, "Runs"),
      write ? toggle : null),
    el("div", { class: "grid2" },
      el("div", { class: "stack" },
        el("div", { class: "panel" }, el("div", { class: "panel-body stack" },
          el("dl", { class: "kv" },
            el("dt", {}, "App"), el("dd", {}, fn.app),
            el("dt", {}, "Triggers"), el("dd", { id: "triggers" }, fn.triggers.length ? fn.triggers.map(triggerText).join(", ") : "none (started directly or invoked)")),
          el("h2", {}, "Flow control"),
          Object.keys(fn.flow || {}).length ? jsonBlock(fn.flow, "flow") : el("p", { class: "sub", id: "flow" }, "No flow-control option."),
          el("h2", {}, "Options"),
          jsonBlock(config, "options"))),
        write ? startPanel() : null),
      statsPanel(st)));
}

try {
  await render();
} catch (err) {
  showError(main, err);
}

// One event: its payload, the runs it started, the runs it resumed (the wait steps it satisfied).
import { api } from "./api.js";
import { mountNav } from "./nav.js";
import { badge, el, jsonBlock, showError, when } from "./ui.js";

const main = document.getElementById("main");
await mountNav("events");
const eventId = decodeURIComponent(location.pathname.slice("/events/".length));

function runRow(run, extra) {
  return el("tr", { "data-run": run.id },
    el("td", {}, badge(run.status)),
    el("td", {}, el("a", { class: "mono", href: `/runs/${encodeURIComponent(run.id)}` }, run.id)),
    el("td", {}, el("a", { href: `/functions/${encodeURIComponent(run.function_id)}` }, run.function_id)),
    extra === undefined ? null : el("td", { class: "mono" }, extra),
    el("td", {}, when(run.created_at)));
}

function table(id, heads, rows, empty) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: heads.length, class: "empty" }, empty))));
}

try {
  const ev = await api(`/api/v1/events/${encodeURIComponent(eventId)}`);
  const payload = { id: ev.id, name: ev.name, data: ev.data, user: ev.user, ts: ev.ts };
  const started = ev.started.map((r) => runRow(r));
  const resumed = ev.resumed.map((r) => r.run ? runRow(r.run, r.step_id)
    : el("tr", { "data-run": r.run_id }, el("td", {}, "—"), el("td", { class: "mono" }, r.run_id), el("td", {}, "(pruned)"), el("td", { class: "mono" }, r.step_id), el("td", {}, "")));
  main.replaceChildren(
    el("div", { class: "page-head" }, el("h1", {}, "Event"), el("code", { id: "event-id" }, ev.id)),
    el("div", { class: "grid2" },
      el("div", { class: "stack" },
        el("div", { class: "panel" }, el("div", { class: "panel-body" }, el("h2", {}, `Started runs (${ev.started.length})`)),
          table("started", ["Status", "Run", "Function", "Created"], started, "This event started no run.")),
        el("div", { class: "panel" }, el("div", { class: "panel-body" }, el("h2", {}, `Resumed runs (${ev.resumed.length})`),
          el("p", { class: "sub" }, "Runs whose wait_for_event step this event satisfied.")),
          table("resumed", ["Status", "Run", "Function", "Wait step", "Created"], resumed, "This event resumed no run."))),
      el("div", { class: "panel" }, el("div", { class: "panel-body stack" },
        el("dl", { class: "kv" },
          el("dt", {}, "Name"), el("dd", {}, el("a", { href: `/events?name=${encodeURIComponent(ev.name)}` }, ev.name)),
          el("dt", {}, "Received"), el("dd", {}, when(ev.received_at)),
          el("dt", {}, "Timestamp"), el("dd", {}, when(new Date(ev.ts).toISOString()))),
        el("h2", {}, "Payload"),
        jsonBlock(payload, "payload")))));
} catch (err) {
  showError(main, err);
}

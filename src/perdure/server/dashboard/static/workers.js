// Workers: the live workers, the functions each hosts, slots in use, last heartbeat.
import { api, qs } from "./api.js";
import { mountNav } from "./nav.js";
import { ago, badge, el, showError, when } from "./ui.js";

const main = document.getElementById("main");
await mountNav("workers");
const all = new URLSearchParams(location.search).get("all") === "true";
const body = el("tbody", { id: "workers-body" });
main.replaceChildren(
  el("div", { class: "page-head" }, el("h1", {}, "Workers"),
    el("div", { class: "spacer" }),
    el("a", { class: "btn", id: "toggle-all", href: "/workers" + qs({ all: all ? "" : "true" }) }, all ? "Live only" : "Include stopped and dead")),
  el("div", { class: "panel" }, el("table", { id: "workers" },
    el("thead", {}, el("tr", {}, ["Worker", "State", "Host", "App", "Functions", "Slots", "Last heartbeat", "Started"].map((h) => el("th", {}, h)))),
    body)));
try {
  const { workers } = await api("/api/v1/workers" + qs({ all: all ? "true" : "" }));
  body.replaceChildren(...(workers.length ? workers.map((w) => el("tr", { "data-worker": w.id },
    el("td", { class: "mono" }, w.id),
    el("td", {}, badge(w.status === "live" ? "running" : "cancelled"), ` ${w.status}`),
    el("td", {}, `${w.host} · pid ${w.pid}`),
    el("td", {}, w.app),
    el("td", {}, w.functions.map((f, i) => [i ? ", " : "", el("a", { href: `/functions/${encodeURIComponent(f)}` }, f)])),
    el("td", { "data-slots": `${w.slots_used}/${w.slots}` }, `${w.slots_used} / ${w.slots}`),
    el("td", { title: when(w.last_heartbeat) }, ago(w.last_heartbeat)),
    el("td", {}, when(w.started_at))))
    : [el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No live worker. Start one with perdure worker module:app."))]));
} catch (err) {
  showError(main, err);
}

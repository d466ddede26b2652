// Schedules: list (cursor pages), pause, resume, trigger now.
import { api, canWrite, qs } from "./api.js";
import { mountNav } from "./nav.js";
import { badge, el, showError, toast, when } from "./ui.js";

const main = document.getElementById("main");
const s = await mountNav("schedules");
const cursor = new URLSearchParams(location.search).get("cursor") || "";
const body = el("tbody", { id: "schedules-body" });
const pager = el("div", { class: "pager" });
main.replaceChildren(
  el("div", { class: "page-head" }, el("h1", {}, "Schedules")),
  el("div", { class: "panel" }, el("table", { id: "schedules" },
    el("thead", {}, el("tr", {}, ["Schedule", "Function", "Cron", "State", "Next tick", "Last run", "Runs", ""].map((h) => el("th", {}, h)))),
    body), pager));

function action(sc, verb, label, cls = "") {
  const b = el("button", { type: "button", class: `small ${cls}`, "data-action": verb }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const out = await api(`/api/v1/schedules/${encodeURIComponent(sc.id)}/${verb}`, { method: "POST" });
      if (verb === "trigger") {
        toast(`started run ${out.run_id}`);
      } else {
        toast(`${sc.id} ${verb === "pause" ? "paused" : "resumed"}`);
      }
      await load();
    } catch (err) {
      b.disabled = false;
      toast(err.message, { error: true });
    }
  });
  return b;
}

async function load() {
  try {
    const page = await api("/api/v1/schedules" + qs({ cursor, limit: 50 }));
    const write = canWrite(s);
    body.replaceChildren(...(page.schedules.length ? page.schedules.map((sc) => el("tr", { "data-schedule": sc.id },
      el("td", { class: "mono" }, sc.id),
      el("td", {}, el("a", { href: `/functions/${encodeURIComponent(sc.function_id)}` }, sc.function_id)),
      el("td", {}, el("code", {}, sc.cron), ` ${sc.tz}`),
      el("td", { "data-state": sc.paused ? "paused" : "active" }, sc.paused ? badge("paused") : badge("active")),
      el("td", {}, when(sc.next_tick)),
      el("td", {}, sc.last_run_id ? el("a", { class: "mono", href: `/runs/${encodeURIComponent(sc.last_run_id)}` }, sc.last_run_id) : "—"),
      el("td", {}, String(sc.runs)),
      el("td", {}, write ? [sc.paused ? action(sc, "resume", "Resume", "primary") : action(sc, "pause", "Pause"), " ", action(sc, "trigger", "Trigger now")] : null)))
      : [el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No schedule. Create one with POST /api/v1/schedules or perdure schedules create."))]));
    pager.replaceChildren(
      cursor ? el("a", { class: "btn", href: "/schedules" }, "First") : null,
      page.next_cursor ? el("a", { class: "btn", href: "/schedules" + qs({ cursor: page.next_cursor }) }, "Next →") : null);
  } catch (err) {
    showError(body, err);
  }
}
load();

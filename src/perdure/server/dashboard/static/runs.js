// Runs list (skeleton: the newest runs; filters, live updates and bulk actions follow).
import { api } from "./api.js";
import { mountNav } from "./nav.js";
import { ago, badge, duration, el, showError, span, when } from "./ui.js";

const main = document.getElementById("main");
await mountNav("runs");
const body = el("tbody", { id: "runs-body" });
main.replaceChildren(
  el("div", { class: "page-head" }, el("h1", {}, "Runs")),
  el("div", { class: "panel" }, el("table", { id: "runs" },
    el("thead", {}, el("tr", {}, ["Status", "Run", "Function", "Created", "Duration"].map((h) => el("th", {}, h)))),
    body)));
try {
  const page = await api("/api/v1/runs?limit=50");
  body.replaceChildren(...page.runs.map((r) => el("tr", { "data-run": r.id },
    el("td", {}, badge(r.status)),
    el("td", {}, el("a", { class: "mono", href: `/runs/${encodeURIComponent(r.id)}` }, r.id)),
    el("td", {}, r.function_id),
    el("td", { title: when(r.created_at) }, ago(r.created_at)),
    el("td", {}, duration(span(r.started_at, r.ended_at))))));
} catch (err) {
  showError(main, err);
}

// Functions: every registered function with its triggers, app and paused state.
import { api } from "./api.js";
import { mountNav } from "./nav.js";
import { el, showError } from "./ui.js";

const main = document.getElementById("main");
await mountNav("functions");

/** A trigger as text: "event order.placed if ...", "cron 0 9 * * * (UTC)". */
export function triggerText(t) {
  if (t.cron) return `cron ${t.cron} (${t.tz})`;
  return t.if ? `${t.event} if ${t.if}` : t.event;
}

const body = el("tbody", { id: "functions-body" });
main.replaceChildren(
  el("div", { class: "page-head" }, el("h1", {}, "Functions")),
  el("div", { class: "panel" }, el("table", { id: "functions" },
    el("thead", {}, el("tr", {}, ["Function", "App", "Triggers", "State"].map((h) => el("th", {}, h)))),
    body)));
try {
  const { functions } = await api("/api/v1/functions");
  body.replaceChildren(...(functions.length ? functions.map((f) => el("tr", { "data-function": f.id },
    el("td", {}, el("a", { class: "mono", href: `/functions/${encodeURIComponent(f.id)}` }, f.id)),
    el("td", {}, f.app),
    el("td", {}, f.triggers.length ? f.triggers.map(triggerText).join(", ") : el("span", { class: "sub" }, "direct")),
    el("td", {}, f.paused ? el("span", { class: "badge waiting" }, "paused") : el("span", { class: "badge completed" }, "active"))))
    : [el("tr", {}, el("td", { colspan: 4, class: "empty" }, "No function is registered."))]));
} catch (err) {
  showError(main, err);
}

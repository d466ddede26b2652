// Run detail (skeleton).
import { api } from "./api.js";
import { mountNav } from "./nav.js";
import { badge, el, jsonBlock, showError } from "./ui.js";

const main = document.getElementById("main");
const runId = decodeURIComponent(location.pathname.split("/").pop());
await mountNav("runs");
try {
  const run = await api(`/api/v1/runs/${encodeURIComponent(runId)}`);
  main.replaceChildren(el("div", { class: "page-head" }, el("h1", { class: "mono" }, run.id), badge(run.status)), jsonBlock(run));
} catch (err) {
  showError(main, err);
}

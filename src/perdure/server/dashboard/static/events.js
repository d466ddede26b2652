// Events: the newest first, an exact name filter, cursor pages, and a form to send a test event.
import { api, canWrite, qs } from "./api.js";
import { mountNav } from "./nav.js";
import { ago, el, showError, toast, when } from "./ui.js";

const main = document.getElementById("main");
const s = await mountNav("events");
const params = new URLSearchParams(location.search);
const name = params.get("name") || "";
const cursor = params.get("cursor") || "";

const filter = el("input", { type: "search", name: "name", id: "event-name", placeholder: "order.placed", value: name });
const form = el("form", { class: "filters", id: "event-filter" },
  el("label", { class: "field" }, "Event name (exact)", filter),
  el("button", { type: "submit" }, "Filter"),
  name ? el("a", { class: "btn", href: "/events" }, "Clear") : null);
form.addEventListener("submit", (e) => {
  e.preventDefault();
  location.assign("/events" + qs({ name: filter.value.trim() }));
});

const body = el("tbody", { id: "events-body" });
const pager = el("div", { class: "pager" });
const list = el("div", { class: "panel" }, form,
  el("table", { id: "events" },
    el("thead", {}, el("tr", {}, ["Event", "Name", "Received", "Runs"].map((h) => el("th", {}, h)))),
    body),
  pager);

const sender = sendForm();
main.replaceChildren(
  el("div", { class: "page-head" }, el("h1", {}, "Events"), el("span", { class: "sub" }, "newest first")),
  canWrite(s) ? el("div", { class: "grid2" }, list, sender) : list);

function sendForm() {
  const evName = el("input", { type: "text", id: "send-name", required: true, placeholder: "order.placed" });
  const data = el("textarea", { id: "send-data", rows: 8, spellcheck: "false" }, "{}");
  const result = el("div", { id: "send-result" });
  const f = el("form", { class: "panel-body stack", id: "send-event" },
    el("h2", {}, "Send a test event"),
    el("label", { class: "field" }, "Name", evName),
    el("label", { class: "field" }, "Data (a JSON object)", data),
    el("button", { class: "primary", type: "submit" }, "Send event"),
    result);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    let parsed;
    try { parsed = JSON.parse(data.value || "{}"); } catch (err) {
      showError(result, new Error(`the data is not JSON: ${err.message}`));
      return;
    }
    try {
      const sent = await api("/api/v1/events", { method: "POST", body: { name: evName.value.trim(), data: parsed } });
      const one = sent.events[0];
      toast(`sent ${one.id}`);
      result.replaceChildren(el("p", {}, "Sent ",
        el("a", { class: "mono", href: `/events/${encodeURIComponent(one.id)}`, "data-sent": one.id }, one.id),
        one.run_ids.length ? ` · started ${one.run_ids.length} run(s)` : " · started no run"));
      load();
    } catch (err) {
      showError(result, err);
    }
  });
  return el("div", { class: "panel" }, f);
}

async function load() {
  try {
    const page = await api("/api/v1/events" + qs({ name, cursor, limit: 50 }));
    if (!page.events.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "empty" }, name ? `No event named ${name}.` : "No events yet.")));
    } else {
      body.replaceChildren(...page.events.map((e) => el("tr", { "data-event": e.id },
        el("td", {}, el("a", { class: "mono", href: `/events/${encodeURIComponent(e.id)}` }, e.id)),
        el("td", {}, el("a", { href: "/events" + qs({ name: e.name }) }, e.name)),
        el("td", { title: when(e.received_at) }, ago(e.received_at)),
        el("td", {}, String(e.run_ids.length)))));
    }
    pager.replaceChildren(
      cursor ? el("a", { class: "btn", href: "/events" + qs({ name }) }, "Newest") : null,
      page.next_cursor ? el("a", { class: "btn", id: "next-page", href: "/events" + qs({ name, cursor: page.next_cursor }) }, "Older →") : null);
  } catch (err) {
    showError(body, err);
  }
}
load();

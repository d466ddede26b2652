// Apps on the official Inngest SDKs: URL, functions, SDK, last sync and error, resync.
import { api, canWrite } from "./api.js";
import { mountNav } from "./nav.js";
import { ago, el, showError, toast, when } from "./ui.js";

const main = document.getElementById("main");
const s = await mountNav("apps");
const body = el("tbody", { id: "apps-body" });
main.replaceChildren(
  el("div", { class: "page-head" }, el("h1", {}, "Apps"), el("span", { class: "sub" }, "apps on the Inngest SDKs; sync times are this server's since it started")),
  el("div", { class: "panel" }, el("table", { id: "apps" },
    el("thead", {}, el("tr", {}, ["App", "URL", "SDK", "Functions", "Last sync", "Error", ""].map((h) => el("th", {}, h)))),
    body)));

function resyncButton(app) {
  const b = el("button", { type: "button", class: "small", "data-action": "resync" }, "Resync");
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      const out = await api(`/api/v1/apps/${encodeURIComponent(app.id)}/resync`, { method: "POST" });
      toast(out.sync.ok ? `${app.id} synced` : `resync failed: ${out.sync.error}`, { error: !out.sync.ok });
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
    const { apps } = await api("/api/v1/apps");
    const write = canWrite(s);
    body.replaceChildren(...(apps.length ? apps.map((a) => el("tr", { "data-app": a.id ?? a.url },
      el("td", {}, a.id ?? el("span", { class: "sub" }, "(never registered)")),
      el("td", { class: "mono" }, a.url),
      el("td", {}, [a.sdk, a.framework].filter(Boolean).join(" · ") || "—"),
      el("td", { title: a.functions.join(", ") }, a.functions.map((f, i) => [i ? ", " : "", el("a", { href: `/functions/${encodeURIComponent(f)}` }, f)])),
      el("td", { title: when(a.last_synced_at) }, a.last_synced_at ? ago(a.last_synced_at) : "—"),
      el("td", { class: "error-cell", "data-error": a.last_error ? "yes" : "no" }, a.last_error ? el("span", { class: "badge failed", title: a.last_error }, a.last_error) : "—"),
      el("td", {}, write && a.id !== null ? resyncButton(a) : null)))
      : [el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No app. Point an Inngest SDK app at this server (INNGEST_DEV=1, INNGEST_BASE_URL) or start perdure dev -u URL."))]));
  } catch (err) {
    showError(body, err);
  }
}
load();

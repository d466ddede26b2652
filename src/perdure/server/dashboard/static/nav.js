// The top navigation: product name, page links, the environment of the session, logout.
import { api, session } from "./api.js";
import { el } from "./ui.js";

const LINKS = [
  ["runs", "/runs", "Runs"],
  ["events", "/events", "Events"],
  ["functions", "/functions", "Functions"],
  ["schedules", "/schedules", "Schedules"],
  ["workers", "/workers", "Workers"],
  ["apps", "/apps", "Apps"],
];

const LOGO = `<svg viewBox="0 0 24 24" fill="none" aria-hidden="true"><rect x="2" y="2" width="20" height="20" rx="6" fill="currentColor" opacity=".12"/><path d="M7 17V7h5.5a3.5 3.5 0 010 7H7" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round"/></svg>`;

/** Render the navigation into `<header id="nav">`, with `active` (a LINKS key) highlighted;
 * resolves to the session. */
export async function mountNav(active) {
  const header = document.getElementById("nav");
  header.className = "topbar";
  const brand = el("a", { class: "brand", href: "/runs" });
  brand.innerHTML = LOGO;
  brand.append("perdure");
  const nav = el("nav", {}, ...LINKS.map(([key, href, label]) =>
    el("a", { href, class: key === active ? "active" : "", "data-nav": key }, label)));
  const env = el("div", { class: "env", id: "env" });
  header.replaceChildren(brand, nav, el("div", { class: "spacer" }), env);
  const s = await session();
  env.replaceChildren("environment", el("b", { "data-env": "" }, s.env || "default"));
  if (s.auth) {
    const who = s.key ? s.key.name || s.key.id : "";
    if (who) env.append(el("span", {}, who));
    const out = el("button", { class: "small", type: "button" }, "Log out");
    out.addEventListener("click", async () => {
      try { await api("/auth/logout", { method: "POST" }); } finally { location.assign("/login"); }
    });
    env.append(out);
  } else {
    env.append(el("span", { title: "perdure dev: no authentication" }, "dev"));
  }
  return s;
}

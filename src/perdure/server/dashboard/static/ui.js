// Small DOM and formatting helpers shared by the pages.

/** An element: `el("a", {href: "/x", class: "y"}, "text", child)`. Attributes with a value of
 * null, undefined or false are left out; `on*` function values become listeners. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === "function" && k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the page's CSP
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** A status badge. */
export function badge(status) {
  return el("span", { class: `badge ${status}`, "data-status": status }, status);
}

/** A date as local "Jan 2, 15:04:05", or "—". */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const sameYear = d.getFullYear() === new Date().getFullYear();
  return d.toLocaleString(undefined, {
    month: "short", day: "numeric", year: sameYear ? undefined : "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
}

/** How long ago, short: "12s ago", "4m ago", "3h ago", "2d ago". */
export function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** A duration in milliseconds for people: "850 ms", "2.4 s", "3m 10s", "2h 5m". */
export function duration(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.round((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.round((s % 86400) / 3600)}h`;
}

/** Milliseconds between two ISO dates (the second defaults to now). */
export function span(startIso, endIso) {
  if (!startIso) return null;
  const end = endIso ? new Date(endIso).getTime() : Date.now();
  return end - new Date(startIso).getTime();
}

/** A JSON value pretty-printed in a <pre>. */
export function jsonBlock(value, cls = "") {
  return el("pre", { class: `json ${cls}` }, value === undefined ? "" : JSON.stringify(value, null, 2));
}

/** A short message at the bottom right for a few seconds. */
export function toast(message, { error = false } = {}) {
  const t = el("div", { class: error ? "toast error" : "toast", role: "status" }, message);
  document.body.append(t);
  setTimeout(() => t.remove(), error ? 8000 : 3500);
}

/** Ask for confirmation in a modal dialog; resolves to true when confirmed. `body` is text or
 * a node; `danger` colours the confirm button. */
export function confirmDialog({ title, body, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const ok = el("button", { class: danger ? "danger solid" : "primary", type: "button", "data-confirm": "" }, confirm);
    const cancel = el("button", { type: "button", "data-dismiss": "" }, "Cancel");
    const dialog = el("dialog", { "aria-label": title },
      el("div", { class: "d-body" }, el("h2", {}, title), body),
      el("div", { class: "d-actions" }, cancel, ok));
    const done = (value) => { dialog.close(); dialog.remove(); resolve(value); };
    ok.addEventListener("click", () => done(true));
    cancel.addEventListener("click", () => done(false));
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Replace `node`'s content with an error message. */
export function showError(node, err) {
  node.replaceChildren(el("div", { class: "error-box", role: "alert" }, err && err.message ? err.message : String(err)));
}

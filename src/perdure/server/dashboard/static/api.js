// The dashboard's one way to the server: fetch with the session cookie, the CSRF header on
// every state-changing request, 401 -> /login?next=..., 403 -> "your key cannot do this".

/** An API error: `status` (HTTP), `code` (the API's stable code) and a message for people. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const DEV_SESSION = { auth: false, env: "default", key: null, scopes: ["admin"], csrf: null };
let sessionPromise = null;

/** Go to the login page, coming back here afterwards. */
export function toLogin() {
  const next = location.pathname + location.search;
  location.assign("/login?next=" + encodeURIComponent(next));
}

/** The browser's session (`GET /auth/session`, asked once per page). A server without that
 * route (404) is a dev server: no authentication, admin scopes. */
export function session() {
  if (sessionPromise === null) {
    sessionPromise = (async () => {
      const res = await fetch("/auth/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (res.status === 404) return DEV_SESSION;
      if (res.status === 401) {
        if (location.pathname !== "/login") toLogin();
        return { ...DEV_SESSION, auth: true, scopes: [] };
      }
      if (!res.ok) throw new ApiError(res.status, "session", `GET /auth/session answered ${res.status}`);
      return await res.json();
    })();
  }
  return sessionPromise;
}

/** Whether the session may change state (cancel, rerun, replay, bulk actions). */
export function canWrite(s) {
  return Array.isArray(s.scopes) && s.scopes.includes("admin");
}

/** Fetch `path` as JSON. `body` (any JSON value) is sent as application/json. Throws ApiError
 * for any non-2xx answer (after sending the browser to /login on 401). */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") {
    const s = await session();
    if (s.csrf) headers["X-CSRF-Token"] = s.csrf;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, signal, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (res.ok) return data;
  const err = (data && data.error) || {};
  if (res.status === 401) {
    toLogin();
    throw new ApiError(401, err.code || "unauthorized", err.message || "please log in");
  }
  if (res.status === 403) {
    throw new ApiError(403, err.code || "forbidden", "your key cannot do this" + (err.message ? ` (${err.message})` : ""));
  }
  throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || `${method} ${path} answered ${res.status}`);
}

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// The login page: POST the token as JSON to /auth/login, then go to ?next= (a local path only).
const form = document.getElementById("login");
const input = document.getElementById("token");
const error = document.getElementById("login-error");
const submit = document.getElementById("login-submit");

function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "/runs";
  // only a path on this server: "/x", never "//host" or "https://..."
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/runs";
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  error.hidden = true;
  submit.disabled = true;
  try {
    const res = await fetch("/auth/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ token: input.value.trim() }),
    });
    if (res.ok) {
      location.assign(nextPath());
      return;
    }
    let message = `the server answered ${res.status}`;
    try {
      const body = await res.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch { /* not JSON */ }
    if (res.status === 404) message = "this server has no login (perdure dev needs none)";
    error.textContent = message;
    error.hidden = false;
    input.select();
  } catch (err) {
    error.textContent = `cannot reach the server: ${err.message}`;
    error.hidden = false;
  } finally {
    submit.disabled = false;
  }
});

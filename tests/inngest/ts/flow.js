// An Express app on the official Inngest TypeScript SDK (inngest 4.x) whose functions declare
// every flow-control option the SDK has, served against perdure by tests/inngest/test_ts_flow.py
// (the twin of tests/inngest/flow_app.py for the Python SDK: same function ids, same events).
//
// Environment: PORT (where to listen), APP_ID (the Inngest app id, "itsflow" by default).
//
// Besides the serve handler at /api/inngest it answers:
//   GET  /state          what the functions saw: per function the `data` of the events of each
//                        call, the step bodies run (label, start, end in ms of a monotonic
//                        clock), the order the prioritized runs started in, the flags set, and
//                        the registration bodies the SDK posted to perdure's /fn/register
//   POST /release/:name  lets the bodies held under `name` return
"use strict";

const express = require("express");
const { Inngest } = require("inngest");
const { serve } = require("inngest/express");

const port = Number(process.env.PORT || 3000);
const appId = process.env.APP_ID || "itsflow";
const HOLD_MS = 20000; // a held body waits this long for its release at most

const state = {
  calls: {}, bodies: {}, order: [], flags: [], registrations: [], checkpoints: [], inflight: {},
};
const flags = new Set();

const flag = (name) => {
  if (!flags.has(name)) {
    flags.add(name);
    state.flags.push(name);
  }
};

// Resolves once `name` is flagged (true) or after `ms` (false); polls, so that the app goes
// on serving other calls meanwhile.
const waitFor = async (name, ms) => {
  const end = performance.now() + ms;
  while (!flags.has(name) && performance.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return flags.has(name);
};

const hold = (name) => waitFor(`release:${name}`, HOLD_MS);

const called = (fn, events) => {
  state.calls[fn] = state.calls[fn] || [];
  state.calls[fn].push(events.map((e) => e.data));
};

// The SDK's own fetch, watched: the registration bodies it posts to perdure are kept, and so
// is every checkpoint it posts (path, answer status, the ids of its steps).
const watchedFetch = async (input, init) => {
  const url = new URL(String(input instanceof Request ? input.url : input));
  if (url.pathname === "/fn/register" && init && init.body) {
    state.registrations.push(JSON.parse(String(init.body)));
  }
  const res = await fetch(input, init);
  if (url.pathname.startsWith("/v1/checkpoint/")) {
    const steps = JSON.parse(String((init && init.body) || "{}")).steps || [];
    state.checkpoints.push({
      path: url.pathname,
      status: res.status,
      steps: steps.map((s) => s.displayName || s.id),
    });
  }
  return res;
};

const inngest = new Inngest({ id: appId, fetch: watchedFetch });

const debounced = inngest.createFunction(
  {
    id: "debounced",
    retries: 0,
    debounce: { period: "1s", key: "event.data.user" },
    triggers: [{ event: "flow/debounce" }],
  },
  async ({ event, events }) => {
    called("debounced", events);
    return event.data;
  },
);

const rated = inngest.createFunction(
  {
    id: "rated",
    retries: 0,
    rateLimit: { limit: 1, period: "1m", key: "event.data.user" },
    triggers: [{ event: "flow/rate" }],
  },
  async ({ event, events }) => {
    called("rated", events);
    return event.data;
  },
);

const throttled = inngest.createFunction(
  {
    id: "throttled",
    retries: 0,
    throttle: { limit: 1, period: "1s" }, // no burst: the SDK sends none (Inngest's default: 1)
    triggers: [{ event: "flow/throttle" }],
  },
  async ({ event, events }) => {
    called("throttled", events);
    return event.data;
  },
);

const perUser = inngest.createFunction(
  {
    id: "per-user",
    retries: 0,
    concurrency: { limit: 1, key: "event.data.user" }, // one object, not an array
    triggers: [{ event: "flow/user" }],
  },
  async ({ event, events, step }) => {
    called("per-user", events);
    const user = String(event.data.user);
    const label = String(event.data.label);
    const other = user === "a" ? "b" : "a";
    return step.run("work", async () => {
      const start = performance.now();
      flag(`started:${label}`);
      flag(`user-started:${user}`);
      // Stay in the step until a body of the other user has started (at most 10 s): two
      // users' runs must overlap; the same user's must not.
      const overlapped = await waitFor(`user-started:${other}`, 10000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      state.bodies["per-user"] = state.bodies["per-user"] || [];
      state.bodies["per-user"].push([label, start, performance.now()]);
      return { label, overlapped };
    });
  },
);

const single = (mode) => {
  const fid = `single-${mode}`;
  return inngest.createFunction(
    {
      id: fid,
      retries: 0,
      singleton: { key: "event.data.user", mode },
      triggers: [{ event: `flow/${fid}` }],
    },
    async ({ event, events }) => {
      called(fid, events);
      flag(`started:${fid}:${event.data.n}`);
      if (event.data.hold) await hold(fid);
      return event.data;
    },
  );
};

const batched = inngest.createFunction(
  {
    id: "batched",
    retries: 0,
    batchEvents: { maxSize: 3, timeout: "1s" },
    triggers: [{ event: "flow/batch" }],
  },
  async ({ event, events }) => {
    called("batched", events);
    return { ns: events.map((e) => e.data.n), first: event.data.n };
  },
);

const prioritized = inngest.createFunction(
  {
    id: "prioritized",
    retries: 0,
    concurrency: 1, // a bare number
    priority: { run: "event.data.p" },
    triggers: [{ event: "flow/priority" }],
  },
  async ({ event, events }) => {
    called("prioritized", events);
    const label = String(event.data.label);
    state.order.push(label);
    flag(`started:${label}`);
    if (event.data.hold) await hold("prioritized");
    return label;
  },
);

const idempotent = inngest.createFunction(
  {
    id: "idempotent",
    retries: 0,
    idempotency: "event.data.order",
    triggers: [{ event: "flow/idempotent" }],
  },
  async ({ event, events }) => {
    called("idempotent", events);
    return event.data;
  },
);

const timed = inngest.createFunction(
  {
    id: "timed",
    retries: 0,
    timeouts: { finish: "1s" },
    triggers: [{ event: "flow/timed" }],
  },
  async ({ events, step }) => {
    called("timed", events);
    return step.run("slow", async () => {
      flag("started:timed");
      await hold("timed");
      return "finished";
    });
  },
);

// Never triggered by the tests: the twins of every_option_functions in sdk_apps.py (Python),
// each option spelled as a TS user writes it, for the comparison of the registration bodies.
const optLimited = inngest.createFunction(
  {
    id: "opt-limited",
    name: "Limited",
    retries: 2,
    triggers: [{ event: "shop/order.placed", if: "event.data.n > 1" }],
    concurrency: [
      { limit: 2, key: "event.data.user", scope: "fn" },
      { limit: 5, key: "event.data.tenant", scope: "account" },
    ],
    throttle: { limit: 5, period: "1m", key: "event.data.user", burst: 2 },
    priority: { run: "event.data.vip ? 120 : 0" },
    timeouts: { start: "30s", finish: "10m" },
    cancelOn: [{ event: "shop/order.cancelled", match: "data.id", timeout: "1d" }],
    singleton: { key: "event.data.user", mode: "cancel" },
    onFailure: async () => null,
  },
  async () => "ok",
);

const optWindowed = inngest.createFunction(
  {
    id: "opt-windowed",
    triggers: [{ event: "shop/*" }, { cron: "TZ=Europe/Paris 0 9 * * *" }],
    rateLimit: { limit: 10, period: "1h", key: "event.data.user" },
    idempotency: "event.data.order",
  },
  async () => null,
);

const optDebounced = inngest.createFunction(
  {
    id: "opt-debounced",
    triggers: [{ event: "shop/search" }],
    debounce: { period: "5s", key: "event.data.user", timeout: "1m" },
  },
  async () => null,
);

const optBatched = inngest.createFunction(
  {
    id: "opt-batched",
    triggers: [{ event: "shop/click" }],
    batchEvents: { maxSize: 10, timeout: "5s", key: "event.data.user" },
  },
  async ({ events }) => events.length,
);

const functions = [
  debounced, rated, throttled, perUser, single("skip"), single("cancel"), batched, prioritized,
  idempotent, timed, optLimited, optWindowed, optDebounced, optBatched,
];

const app = express();
app.use(express.json({ limit: "10mb" }));
// Calls in flight per run: the SDK posts (and would retry) a step's checkpoint inside the call
// that ran the step, so once a run has no call in flight, every checkpoint post is in.
app.use("/api/inngest", (req, res, next) => {
  const runId = req.method === "POST" && req.body && req.body.ctx ? req.body.ctx.run_id : null;
  if (runId) {
    state.inflight[runId] = (state.inflight[runId] || 0) + 1;
    res.on("close", () => { state.inflight[runId] -= 1; });
  }
  next();
});
app.use("/api/inngest", serve({ client: inngest, functions }));
app.get("/state", (_req, res) => res.json(state));
app.post("/release/:name", (req, res) => {
  flag(`release:${req.params.name}`);
  res.json({ ok: true });
});

app.listen(port, "127.0.0.1", () => {
  console.log(`ts flow app ${appId} listening on ${port}`);
});

// An Express app on the official Inngest TypeScript SDK (inngest 4.x), served against perdure by
// tests/inngest/test_ts_sdk.py. Unchanged user code: only INNGEST_DEV / INNGEST_BASE_URL point
// it at perdure.
//
// Environment: PORT (where to listen), APP_ID (the Inngest app id), CHECKPOINTING ("0" turns
// the SDK's async checkpointing off for every function; on by default, as in the SDK).
//
// Besides the serve handler at /api/inngest it answers:
//   GET  /state  what the functions saw: calls per function id, step bodies run, attempts,
//                and the checkpoints the SDK posted (path, answer status, steps)
//   POST /reset  forgets that state (between tests)
//   POST /send   sends the JSON body with the SDK's own client (inngest.send) -> {ids}
"use strict";

const express = require("express");
const { Inngest, NonRetriableError, RetryAfterError } = require("inngest");
const { serve } = require("inngest/express");

const port = Number(process.env.PORT || 3000);
const appId = process.env.APP_ID || "its";
const checkpointing = process.env.CHECKPOINTING !== "0";

const state = { calls: {}, bodies: [], attempts: {}, checkpoints: [], fetched: [] };

// The SDK's own fetch, watched: every checkpoint it posts to perdure is noted in the state,
// and so is every run state it fetches (the use_api path: /v0/runs/{id}/batch and /actions).
const watchedFetch = async (input, init) => {
  const res = await fetch(input, init);
  const url = String(input instanceof Request ? input.url : input);
  if (url.includes("/v0/runs/")) {
    state.fetched.push({ path: new URL(url).pathname, status: res.status });
  }
  if (url.includes("/v1/checkpoint/")) {
    const steps = JSON.parse(String((init && init.body) || "{}")).steps || [];
    state.checkpoints.push({
      path: new URL(url).pathname,
      status: res.status,
      steps: steps.map((s) => s.displayName || s.id),
    });
  }
  return res;
};

const inngest = new Inngest({ id: appId, checkpointing, fetch: watchedFetch });

const body = (name) => state.bodies.push(name);
const seen = (fn, attempt) => {
  state.attempts[fn] = state.attempts[fn] || [];
  state.attempts[fn].push(attempt);
};

const noSteps = inngest.createFunction(
  { id: "no-steps", triggers: [{ event: "ts/no-steps" }] },
  async ({ event }) => ({ hello: event.data.who, event: event.name }),
);

const twoSteps = inngest.createFunction(
  { id: "two-steps", triggers: [{ event: "ts/two-steps" }] },
  async ({ step }) => {
    const a = await step.run("a", () => {
      body("a");
      return 1;
    });
    const b = await step.run("b", () => {
      body("b");
      return { b: a + 1 };
    });
    return [a, b];
  },
);

const repeated = inngest.createFunction(
  { id: "repeated", triggers: [{ event: "ts/repeated" }] },
  async ({ step }) => {
    const out = [];
    for (let i = 0; i < 3; i++) {
      out.push(
        await step.run("same", () => {
          body(`r${i}`);
          return i * 10;
        }),
      );
    }
    return out;
  },
);

const sleeper = inngest.createFunction(
  { id: "sleeper", triggers: [{ event: "ts/sleep" }] },
  async ({ step }) => {
    const before = await step.run("before", () => "before");
    await step.sleep("nap", "1s");
    return `${before}, woke`;
  },
);

const waiter = inngest.createFunction(
  { id: "waiter", triggers: [{ event: "ts/wait" }] },
  async ({ event, step }) => {
    const got = await step.waitForEvent("wait", {
      event: "ts/go",
      timeout: event.data.timeout || "60s",
      if: "async.data.k == event.data.k",
    });
    return got ? { name: got.name, data: got.data, id: got.id } : null;
  },
);

const child = inngest.createFunction(
  { id: "child", retries: 0, triggers: [{ event: "ts/child" }] },
  async ({ event }) => {
    if (event.data.fail) throw new NonRetriableError("child says no");
    return { doubled: event.data.n * 2, event: event.name };
  },
);

const invoker = inngest.createFunction(
  { id: "invoker", triggers: [{ event: "ts/invoke" }] },
  async ({ event, step }) => {
    try {
      return await step.invoke("call-child", {
        function: child,
        data: { n: 21, fail: Boolean(event.data.fail) },
      });
    } catch (err) {
      return { caught: err.message };
    }
  },
);

const sender = inngest.createFunction(
  { id: "sender", triggers: [{ event: "ts/send" }] },
  async ({ runId, step }) =>
    step.sendEvent("send", { name: "ts/sent", data: { from: runId } }),
);

const onSent = inngest.createFunction(
  { id: "on-sent", triggers: [{ event: "ts/sent" }] },
  async ({ event }) => ({ from: event.data.from }),
);

const parallel = inngest.createFunction(
  { id: "parallel", triggers: [{ event: "ts/parallel" }] },
  async ({ step }) => {
    const [p1, p2] = await Promise.all([
      step.run("p1", () => {
        body("p1");
        return "p1";
      }),
      step.run("p2", () => {
        body("p2");
        return "p2";
      }),
    ]);
    const after = await step.run("after", () => {
      body("after");
      return "after";
    });
    return [p1, p2, after];
  },
);

// Two steps of 2.5 MiB: the memoized state is over 4 MiB, so perdure leaves it out of the
// next call and the SDK fetches it (use_api).
const bigState = inngest.createFunction(
  { id: "big-state", triggers: [{ event: "ts/big-state" }] },
  async ({ step }) => {
    const size = 5 * 512 * 1024;
    const a = await step.run("big-a", () => {
      body("big-a");
      return "a".repeat(size);
    });
    const b = await step.run("big-b", () => {
      body("big-b");
      return "b".repeat(size);
    });
    return step.run("read", () => {
      body("read");
      return [a.length, b.length, a === "a".repeat(size) && b === "b".repeat(size)];
    });
  },
);

const flaky = inngest.createFunction(
  { id: "flaky-step", retries: 2, triggers: [{ event: "ts/flaky-step" }] },
  async ({ step, attempt }) => {
    seen("flaky-step", attempt);
    return step.run("flaky", () => {
      body(`flaky@${attempt}`);
      if (attempt === 0) throw new Error("first try fails");
      return "steady";
    });
  },
);

const saga = inngest.createFunction(
  { id: "saga", retries: 1, triggers: [{ event: "ts/saga" }] },
  async ({ step, attempt }) => {
    try {
      await step.run("doomed", () => {
        body(`doomed@${attempt}`);
        throw new Error("always");
      });
      return "unreachable";
    } catch (err) {
      return { compensated: err.message };
    }
  },
);

const nonRetriable = inngest.createFunction(
  { id: "non-retriable", retries: 3, triggers: [{ event: "ts/non-retriable" }] },
  async ({ step }) => {
    await step.run("refuse", () => {
      body("refuse");
      throw new NonRetriableError("stop here");
    });
    return "unreachable";
  },
);

const retryAfter = inngest.createFunction(
  { id: "retry-after", retries: 2, triggers: [{ event: "ts/retry-after" }] },
  async ({ step, attempt }) => {
    seen("retry-after", attempt);
    return step.run("later", () => {
      body(`later@${attempt}`);
      if (attempt === 0) throw new RetryAfterError("not yet", 1000);
      return 1;
    });
  },
);

const crash = inngest.createFunction(
  { id: "crash", retries: 1, triggers: [{ event: "ts/crash" }] },
  async ({ attempt }) => {
    seen("crash", attempt);
    throw new Error(`boom ${attempt}`);
  },
);

const functions = [
  noSteps, twoSteps, repeated, sleeper, waiter, child, invoker, sender, onSent, parallel,
  bigState, flaky, saga, nonRetriable, retryAfter, crash,
];

const app = express();
app.use(express.json({ limit: "10mb" }));
app.use("/api/inngest", (req, _res, next) => {
  if (req.method === "POST" && req.query.fnId) {
    const fn = String(req.query.fnId).replace(`${appId}-`, "");
    state.calls[fn] = (state.calls[fn] || 0) + 1;
  }
  next();
});
app.use("/api/inngest", serve({ client: inngest, functions }));
app.get("/state", (_req, res) => res.json(state));
app.post("/reset", (_req, res) => {
  state.calls = {};
  state.bodies = [];
  state.attempts = {};
  state.checkpoints = [];
  state.fetched = [];
  res.json({ ok: true });
});
app.post("/send", async (req, res) => {
  try {
    const out = await inngest.send(req.body);
    res.json(out);
  } catch (err) {
    res.status(500).json({ error: String(err && err.message) });
  }
});

app.listen(port, "127.0.0.1", () => {
  console.log(`ts app ${appId} listening on ${port} (checkpointing ${checkpointing})`);
});

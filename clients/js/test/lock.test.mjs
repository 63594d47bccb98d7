// The BroadcastChannel lock on its own: tabs (each its own lock object and
// channel, as browser tabs would have) never overlap in the critical section.
import { test } from "node:test";
import assert from "node:assert/strict";
import { broadcastLock } from "../dist/browser/index.js";

test("the BroadcastChannel lock excludes other tabs", async () => {
  const alive = setInterval(() => {}, 1000); // the lock's channels are unref'd
  try {
    const name = `t-${Math.random().toString(36).slice(2)}`;
    const tabs = Array.from({ length: 5 }, () => broadcastLock((n) => new BroadcastChannel(n)));
    let inside = 0;
    let maxInside = 0;
    let runs = 0;
    const critical = async () => {
      inside++;
      maxInside = Math.max(maxInside, inside);
      await new Promise((r) => setTimeout(r, 5));
      inside--;
      runs++;
    };
    await Promise.all(tabs.flatMap((lock) => [lock.run(name, critical), lock.run(name, critical)]));
    assert.equal(runs, 10);
    assert.equal(maxInside, 1, "two tabs held the lock at once");
  } finally {
    clearInterval(alive);
  }
});

test("a tab that dies holding the lock is passed over after the lease", async () => {
  const name = `t-${Math.random().toString(36).slice(2)}`;
  // A tab that answers the first request with "held", then dies without releasing.
  const dying = new BroadcastChannel(`sessiond-lock:${name}`);
  let answered = false;
  dying.onmessage = (ev) => {
    if (ev.data.t === "want" && !answered) {
      answered = true;
      dying.postMessage({ t: "held", id: "dying-tab" });
    }
  };
  try {
    const lock = broadcastLock((n) => new BroadcastChannel(n), { leaseMs: 300 });
    const t0 = Date.now();
    assert.equal(await lock.run(name, async () => "ran"), "ran");
    assert.ok(answered, "the dying tab claimed the lock");
    assert.ok(Date.now() - t0 >= 250, `waited ${Date.now() - t0} ms, less than the lease`);
  } finally {
    dying.close();
  }
});

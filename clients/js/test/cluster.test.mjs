// End-to-end: the browser client and the Node verifier against a real
// 3-node sessiond cluster (sessiond dev) started here.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { SessiondClient, LoginConflictError, broadcastLock, webLocks } from "../dist/browser/index.js";
import { Verifier, TokenRejectedError, StaleError, authenticate, expressMiddleware, fastifyHook } from "../dist/node/index.js";
import { browserProfile, freezableProxy, memoryStorage, retryUnavailable, startCluster, startRealtime, waitFor, webLocksShim } from "./cluster.mjs";

let cluster;
let verifier;
let n = 0;

async function newUser() {
  const email = `js-${process.pid}-${++n}@example.com`;
  const password = `pw-${Math.random().toString(36).slice(2)}-long`;
  await cluster.createUser(email, password);
  return { email, password };
}

const channel = (name) => new BroadcastChannel(name);

function tab(profile, opts = {}) {
  return new SessiondClient({ baseUrl: cluster.urls[opts.node ?? 0], fetch: profile.fetch, storage: profile.storage, channel, namespace: profile.ns, lock: profile.lock, ...opts });
}

function profile(lock) {
  const p = browserProfile();
  p.storage = memoryStorage();
  p.ns = `sessiond-${Math.random().toString(36).slice(2)}`;
  p.lock = lock;
  return p;
}

async function refusedWith(token) {
  try {
    await verifier.verify(token);
    return undefined;
  } catch (err) {
    if (err instanceof TokenRejectedError) return err.reason;
    throw err;
  }
}

before(async () => {
  cluster = await startCluster();
  // The service: nodes in preference order (seoul first), verifying locally.
  verifier = new Verifier({ nodes: [cluster.urls[1], cluster.urls[0], cluster.urls[2]], issuer: cluster.issuer, audience: "sessiond" });
  await verifier.start();
});

after(async () => {
  await verifier?.close();
  await cluster?.stop();
});

describe("against a real cluster", () => {
  test("login, verify locally, logout: the revocation set refuses the token", async () => {
    const u = await newUser();
    const p = profile(webLocks(webLocksShim()));
    const c = tab(p);
    const ended = [];
    c.on("session-ended", (d) => ended.push(d));
    const s = await c.login(u);
    assert.ok(p.jar.has("sessiond_refresh"), "cookie mode: the refresh token is a cookie");
    const access = await c.accessToken();
    const claims = await verifier.verify(access);
    assert.equal(claims.sessionId, s.sessionId);
    assert.equal(claims.platform, "web");
    assert.equal(claims.issuer, cluster.issuer);

    // The same through the Express-style middleware on a real HTTP server.
    const mw = expressMiddleware(verifier);
    const srv = createServer((req, res) => mw(req, res, () => res.end(JSON.stringify({ sub: req.sessiond.subject }))));
    await new Promise((r) => srv.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${srv.address().port}/me`;
    try {
      const ok = await fetch(url, { headers: { Authorization: `Bearer ${access}` } });
      assert.equal(ok.status, 200);
      assert.equal((await ok.json()).sub, claims.subject);
      const none = await fetch(url);
      assert.equal(none.status, 401);
      assert.equal((await none.json()).error, "missing_token");

      // The Fastify hook, with a reply that records what Fastify would send.
      const hook = fastifyHook(verifier);
      const request = { headers: { authorization: `Bearer ${access}` } };
      await hook(request, null);
      assert.equal(request.sessiond.sessionId, s.sessionId);
      const sent = {};
      const reply = { code: (c) => ((sent.status = c), reply), headers: (h) => ((sent.headers = h), reply), send: (b) => (sent.body = b) };
      await hook({ headers: { authorization: "Bearer v2.local.nope" } }, reply);
      assert.equal(sent.status, 401);
      assert.equal(sent.body.error, "wrong_purpose");

      await c.logout();
      assert.deepEqual(ended, [{ reason: "logout", source: "logout" }]);
      assert.equal(p.jar.has("sessiond_refresh"), false, "logout clears the cookie");
      const reason = await waitFor("the watch to deliver the logout", () => refusedWith(access));
      assert.equal(reason, "session_ended");
      const refused = await fetch(url, { headers: { Authorization: `Bearer ${access}` } });
      assert.equal(refused.status, 401);
      assert.equal((await refused.json()).error, "session_ended");
      assert.match(refused.headers.get("www-authenticate"), /invalid_token/);
    } finally {
      srv.close();
      c.close();
    }
  });

  test("refresh rotates the pair; a spent refresh token replayed ends the session", async () => {
    const u = await newUser();
    const p = profile(webLocks(webLocksShim()));
    const c = tab(p, { node: 2 });
    const ended = [];
    c.on("session-ended", (d) => ended.push(d));
    const s = await c.login(u);
    const a0 = await c.accessToken();
    const cookie0 = p.jar.get("sessiond_refresh").value;
    assert.equal(await c.refresh(), true);
    const a1 = await c.accessToken();
    const cookie1 = p.jar.get("sessiond_refresh").value;
    assert.notEqual(a1, a0);
    assert.notEqual(cookie1, cookie0, "the refresh cookie rotates");
    assert.equal((await verifier.verify(a1)).sessionId, s.sessionId, "same session");
    assert.equal(await c.refresh(), true);
    const a2 = await c.accessToken();

    // A thief replays the first refresh token (two rotations old: no grace).
    const replay = await retryUnavailable(() => fetch(`${cluster.urls[1]}/auth/token`, { method: "POST", headers: { Cookie: `sessiond_refresh=${cookie0}` } }));
    assert.equal(replay.status, 401);
    assert.equal((await replay.json()).error, "refresh_token_reused");
    assert.equal(await waitFor("the reuse to revoke the session", () => refusedWith(a2)), "session_ended");
    // The legitimate tab learns it at its next refresh.
    assert.equal(await c.refresh(), false);
    assert.equal(c.session, undefined);
    assert.deepEqual(ended, [{ reason: "unknown", source: "refresh" }]);
    c.close();
  });

  for (const [name, lockFactory] of [
    // One lock manager per origin, shared by its tabs.
    ["Web Locks (shimmed: Node 20 has none)", () => {
      const origin = webLocksShim();
      return () => webLocks(origin);
    }],
    // Each tab its own lock, negotiating over BroadcastChannel.
    ["the BroadcastChannel lock", () => () => broadcastLock(channel)],
  ]) {
    test(`two tabs refresh once between them, with ${name}`, async () => {
      const mkLock = lockFactory();
      const u = await newUser();
      const p = profile(undefined);
      // Each tab has its own lock object, as each browser tab would.
      const t1 = tab(p, { lock: mkLock() });
      const t2 = tab(p, { lock: mkLock(), node: 1 });
      try {
        await t1.login(u);
        // The second tab opens: it takes the token from the first, no refresh.
        assert.equal(await t2.restore(), true);
        assert.equal(await t2.accessToken(), await t1.accessToken());
        assert.equal(p.count("/auth/token"), 0);

        // Both decide to refresh at once.
        const [r1, r2] = await Promise.all([t1.refresh(), t2.refresh()]);
        assert.deepEqual([r1, r2], [true, true]);
        assert.equal(p.count("/auth/token"), 1, "exactly one refresh across the two tabs");
        const a = await t1.accessToken();
        assert.equal(await t2.accessToken(), a);
        await verifier.verify(a);

        // Scheduled refreshes: both timers fire ~1.5 s from now.
        const ttl = t1.session.expiresAt - Date.now();
        const t3 = tab(p, { lock: mkLock(), refreshBeforeExpiryMs: ttl - 1500 });
        const t4 = tab(p, { lock: mkLock(), refreshBeforeExpiryMs: ttl - 1500, node: 2 });
        try {
          assert.equal(await t3.restore(), true);
          assert.equal(await t4.restore(), true);
          await waitFor("the scheduled refresh to reach both tabs", async () => (await t3.accessToken()) === (await t4.accessToken()) && (await t3.accessToken()) !== a);
          assert.equal(p.count("/auth/token"), 2, "one scheduled refresh for two tabs");
          await verifier.verify(await t4.accessToken());
        } finally {
          t3.close();
          t4.close();
        }
      } finally {
        t1.close();
        t2.close();
      }
    });
  }

  test("a tab opened after the others closed restores the session from the cookie", async () => {
    const u = await newUser();
    const p = profile(webLocks(webLocksShim()));
    const first = tab(p);
    const s = await first.login(u);
    first.close(); // the only tab closes; the browser keeps the cookie and the storage
    const later = tab(p, { node: 1 });
    try {
      assert.equal(await later.restore(), true);
      assert.equal(p.count("/auth/token"), 1, "restored with one refresh through the cookie");
      assert.equal(later.session.sessionId, s.sessionId);
      await verifier.verify(await later.accessToken());
    } finally {
      later.close();
    }
  });

  test("force login ends the other device's session", async () => {
    const u = await newUser();
    const laptop = profile(webLocks(webLocksShim()));
    const desktop = profile(webLocks(webLocksShim()));
    const a = tab(laptop, { deviceId: "laptop" });
    const b = tab(desktop, { deviceId: "desktop", node: 1 });
    const endedA = [];
    a.on("session-ended", (d) => endedA.push(d));
    try {
      await a.login(u);
      const accessA = await a.accessToken();
      await assert.rejects(b.login(u), (err) => {
        assert.ok(err instanceof LoginConflictError);
        assert.equal(err.status, 409);
        assert.equal(err.existing.deviceId, "laptop");
        assert.equal(err.existing.platform, "web");
        return true;
      });
      assert.equal(await refusedWith(accessA), undefined, "a refused login changes nothing");
      await b.forceLogin(u);
      assert.equal(await waitFor("the forced-out session to reach the verifier", () => refusedWith(accessA)), "session_ended");
      const devices = await b.devices();
      assert.deepEqual(devices.map((d) => [d.deviceId, d.current]), [["desktop", true]]);
      // The laptop learns it from the next API call (the middleware's 401
      // session_ended; the end reason needs the watch:details scope).
      const mw = expressMiddleware(verifier);
      const srv = createServer((req, res) => mw(req, res, () => res.end("ok")));
      await new Promise((r) => srv.listen(0, "127.0.0.1", r));
      try {
        const res = await a.fetch(`http://127.0.0.1:${srv.address().port}/orders`);
        assert.equal(res.status, 401);
      } finally {
        srv.close();
      }
      assert.deepEqual(endedA, [{ reason: "unknown", source: "request" }]);
      assert.equal(a.session, undefined);
      await verifier.verify(await b.accessToken());
    } finally {
      a.close();
      b.close();
    }
  });

  test("a WebSocket of the session (examples/realtime, wsguard) closes when another device forces a login, and the client says so", async (t) => {
    if (typeof WebSocket !== "function") {
      t.skip("no WebSocket in this Node: run with --experimental-websocket (npm test does)");
      return;
    }
    const rt = await startRealtime(cluster);
    const u = await newUser();
    const a = tab(profile(webLocks(webLocksShim())), { deviceId: "phone-a" });
    const b = tab(profile(webLocks(webLocksShim())), { deviceId: "phone-b", node: 2 });
    try {
      await a.login(u);
      const ended = new Promise((r) => a.on("session-ended", r));
      const ws = await a.webSocket(`${rt.url.replace(/^http/, "ws")}/ws`);
      const closed = new Promise((r) => ws.addEventListener("close", (ev) => r(ev), { once: true }));
      const hello = await new Promise((res, rej) => {
        ws.addEventListener("message", (ev) => res(JSON.parse(ev.data)), { once: true });
        ws.addEventListener("error", () => rej(new Error("the socket failed")), { once: true });
      });
      assert.equal(hello.session, a.session.sessionId, "the socket runs on this session");
      await b.forceLogin(u);
      const ev = await closed;
      // The dev cluster's watch is anonymous (no watch:details): the
      // service knows the session ended, not why, and closes with 4001.
      assert.ok([4001, 4002].includes(ev.code), `close code ${ev.code} ${ev.reason}`);
      assert.deepEqual(await ended, { reason: ev.code === 4002 ? "forced_out" : "unknown", source: "websocket" });
      assert.equal(a.session, undefined);
    } finally {
      a.close();
      b.close();
      await rt.stop();
    }
  });

  test("a verifier cut off from its node fails closed (503), then applies the revocation it missed", async () => {
    const proxy = await freezableProxy(cluster.urls[2]);
    const v = new Verifier({ nodes: [proxy.url], issuer: cluster.issuer, audience: "sessiond", maxStalenessMs: 1500, watchIdleTimeoutMs: 1000 });
    const c = tab(profile(webLocks(webLocksShim())));
    const reasonOf = async (tok) => {
      try {
        await v.verify(tok);
        return "active";
      } catch (err) {
        if (err instanceof StaleError) return "stale";
        if (err instanceof TokenRejectedError) return err.reason;
        throw err;
      }
    };
    try {
      await v.start();
      await c.login(await newUser());
      const access = await c.accessToken();
      assert.equal(await reasonOf(access), "active");
      proxy.freeze();
      await waitFor("the verifier to go stale", async () => (await reasonOf(access)) === "stale");
      const r = await authenticate(v, `Bearer ${access}`);
      assert.equal(r.refusal.status, 503, "the middleware answers 503 while stale");
      await c.logout(); // while the verifier cannot hear it
      proxy.thaw();
      assert.equal(await waitFor("the missed logout to arrive", async () => {
        const got = await reasonOf(access);
        return got === "active" || got === "stale" ? undefined : got;
      }), "session_ended");
    } finally {
      c.close();
      await v.close();
      await proxy.close();
    }
  });
});

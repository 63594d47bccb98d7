// Test harness: a real sessiond dev cluster (3 nodes in one process),
// started by the tests and stopped after them. SESSIOND_BIN names a built
// binary; otherwise it is built from the repository root with go build.
import { spawn, execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

async function buildBinary(dir) {
  if (process.env.SESSIOND_BIN) return process.env.SESSIOND_BIN;
  const out = join(dir, "sessiond");
  await promisify(execFile)("go", ["build", "-o", out, "./cmd/sessiond"], { cwd: repoRoot, maxBuffer: 16 << 20 });
  return out;
}

function tcpFree(port) {
  return new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

function udpFree(port) {
  return new Promise((res) => {
    const s = createSocket("udp4");
    s.once("error", () => {
      s.close();
      res(false);
    });
    s.bind(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

// A base port whose API (base+i), Raft (base-1080+i) and gossip (base-134+i, TCP and UDP) ports are free.
async function freeBase(nodes) {
  for (let tries = 0; tries < 50; tries++) {
    const base = 21000 + Math.floor(Math.random() * 9000);
    let ok = true;
    for (let i = 0; i < nodes && ok; i++) {
      ok = (await tcpFree(base + i)) && (await tcpFree(base - 1080 + i)) && (await tcpFree(base - 134 + i)) && (await udpFree(base - 134 + i));
    }
    if (ok) return base;
  }
  throw new Error("no free port range for the dev cluster");
}

/** Starts a dev cluster (more `sessiond dev` flags in args); returns { urls, issuer, operatorToken, demo, createUser, stop }. */
export async function startCluster({ nodes = 3, args = [] } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "sessiond-js-"));
  const bin = await buildBinary(dir);
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const base = await freeBase(nodes);
    const password = "demo-" + Math.random().toString(36).slice(2, 12);
    const child = spawn(bin, ["dev", "--nodes", String(nodes), "--base-port", String(base), "--demo-password", password, "--data-dir", join(dir, `data-${attempt}`), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let errOut = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (errOut += d));
    const exited = new Promise((res) => child.once("exit", (code, sig) => res({ code, sig })));
    const ready = await Promise.race([
      (async () => {
        const deadline = Date.now() + 120_000;
        while (Date.now() < deadline) {
          const tok = /Operator token \([^)]*\): (\S+)/.exec(out);
          const demo = /Demo user: (\S+)\s+password: (\S+)/.exec(out);
          if (tok && demo) return { token: tok[1], email: demo[1], password: demo[2] };
          await new Promise((r) => setTimeout(r, 100));
        }
        return undefined;
      })(),
      exited.then(() => undefined),
    ]);
    if (!ready) {
      child.kill("SIGKILL");
      await exited;
      lastErr = new Error(`sessiond dev did not start (attempt ${attempt + 1}): ${errOut.slice(-2000)}`);
      continue;
    }
    const urls = Array.from({ length: nodes }, (_, i) => `http://127.0.0.1:${base + i}`);
    const stop = async () => {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    };
    const createUser = async (email, pw) => {
      const res = await retryUnavailable(() =>
        fetch(`${urls[0]}/sessiond.auth.v1.UserAdminService/CreateUser`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${ready.token}` },
          body: JSON.stringify({ email, password: pw, displayName: email, orgName: "JS Org", country: "KR", orgType: "ORG_TYPE_CUSTOMER", roles: ["user"] }),
        }),
      );
      if (!res.ok && res.status !== 409) throw new Error(`CreateUser ${email}: ${res.status} ${await res.text()}`);
    };
    return { urls, issuer: urls[0], operatorToken: ready.token, demo: { email: ready.email, password: ready.password }, createUser, stop };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastErr;
}

/**
 * A browser profile's cookie jar in front of fetch: keeps Set-Cookie of
 * sessiond's routes and sends cookies on requests under their Path, as a
 * browser does for a same-site page (the Secure attribute is honoured by
 * browsers on localhost too). Counts requests by path.
 */
export function browserProfile() {
  const jar = new Map(); // name -> { value, path }
  const counts = new Map();
  const f = async (input, init = {}) => {
    const url = new URL(String(input));
    counts.set(url.pathname, (counts.get(url.pathname) ?? 0) + 1);
    const headers = new Headers(init.headers);
    const cookies = [...jar].filter(([, c]) => url.pathname.startsWith(c.path)).map(([n, c]) => `${n}=${c.value}`);
    if (cookies.length) headers.set("Cookie", cookies.join("; "));
    const res = await fetch(url, { ...init, headers });
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(";").map((s) => s.trim());
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const path = attrs.find((a) => /^path=/i.test(a))?.slice(5) ?? "/";
      const maxAge = attrs.find((a) => /^max-age=/i.test(a));
      if (!value || (maxAge && Number(maxAge.slice(8)) <= 0)) jar.delete(name);
      else jar.set(name, { value, path });
    }
    return res;
  };
  return { fetch: f, jar, count: (path) => counts.get(path) ?? 0 };
}

/** An in-memory Web Storage shared by the tabs of one profile. */
export function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
}

/**
 * A Web Locks shim (navigator.locks.request with exclusive mode): Node 20
 * has no Web Locks API, and the tabs here are client instances in one
 * process, so a FIFO per lock name is what the browser would do for them.
 */
export function webLocksShim() {
  const tails = new Map();
  return {
    request(name, _opts, cb) {
      const prev = tails.get(name) ?? Promise.resolve();
      const run = prev.catch(() => {}).then(() => cb());
      tails.set(name, run);
      return run.finally(() => {
        if (tails.get(name) === run) tails.delete(name);
      });
    },
  };
}

/** Polls fn until it returns a truthy value or the deadline passes. */
export async function waitFor(what, fn, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A TCP proxy in front of a node that can be frozen: while frozen it keeps
 * every connection open but passes no byte either way (a network
 * partition as a client sees it); thaw() lets the held bytes through.
 */
export async function freezableProxy(targetUrl) {
  const { createServer, connect } = await import("node:net");
  const target = new URL(targetUrl);
  let frozen = false;
  const pairs = new Set();
  const held = []; // [socket, chunk] read while frozen, written on thaw
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    if (frozen) client.pause();
    const pipe = (from, to) =>
      from.on("data", (d) => {
        if (frozen) {
          held.push([to, d]);
          from.pause();
          return;
        }
        to.write(d);
      });
    pipe(client, upstream);
    pipe(upstream, client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    freeze() {
      frozen = true;
      for (const { client, upstream } of pairs) {
        client.pause();
        upstream.pause();
      }
    },
    thaw() {
      frozen = false;
      for (const [to, d] of held.splice(0)) if (!to.destroyed) to.write(d);
      for (const { client, upstream } of pairs) {
        client.resume();
        upstream.resume();
      }
    },
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * Repeats a request while the cluster answers 503 (an election on a loaded
 * machine), for up to 20 s; returns the first other answer.
 */
export async function retryUnavailable(call, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await call();
    if (res.status !== 503 || Date.now() > deadline) return res;
    await res.body?.cancel();
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Starts examples/realtime (seed 002's REST + WebSocket service on
 * clients/go/wsguard) against the cluster: REALTIME_BIN names a built
 * binary, else it is built with go build. Returns { url, stop }.
 */
export async function startRealtime(cluster) {
  const dir = await mkdtemp(join(tmpdir(), "sessiond-js-rt-"));
  let bin = process.env.REALTIME_BIN;
  if (!bin) {
    bin = join(dir, "realtime");
    await promisify(execFile)("go", ["build", "-o", bin, "./examples/realtime"], { cwd: repoRoot, maxBuffer: 16 << 20 });
  }
  const port = await new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
  const child = spawn(bin, ["--nodes", cluster.urls.join(","), "--issuer", cluster.issuer, "--listen", `127.0.0.1:${port}`], { stdio: ["ignore", "ignore", "pipe"] });
  let errOut = "";
  child.stderr.on("data", (d) => (errOut += d));
  const exited = new Promise((res) => child.once("exit", res));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor("examples/realtime to be ready", async () => {
      if (child.exitCode !== null) throw new Error(`examples/realtime exited: ${errOut.slice(-1000)}`);
      return (await fetch(`${url}/healthz`)).status === 200;
    }, 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, stop };
}

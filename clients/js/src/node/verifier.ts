/**
 * The Verifier: local checks of access tokens against the cluster's
 * published keys and a revocation set kept current by WatchRevocations.
 */
import { createHash } from "node:crypto";
import { StaleError, TokenRejectedError } from "../errors.js";
import { CheckReason } from "../reasons.js";
import { ConnectError, serverStream, unary } from "./connect.js";
import { MAX_KEYS_BODY, parseKeyDocument, type PublishedKey } from "./keys.js";
import { RevocationSet, type WatchMessage } from "./revocations.js";
import { msToNanos } from "./time.js";
import { tokenKid, verifyWithKey, type AccessClaims } from "./verify.js";

/** What to do while the revocation watch is stale. */
export type StalePolicy = "fail-closed" | "fallback-remote";

/** Options of {@link Verifier}. */
export interface VerifierOptions {
  /** sessiond nodes' API base URLs, in preference order (e.g. `http://127.0.0.1:8081`). */
  nodes: string[];
  /** The tokens' iss and aud must equal these exactly. */
  issuer: string;
  audience: string;
  /**
   * Headers that authenticate this service to the nodes for WatchRevocations
   * (scope `watch`) and CheckToken (scope `check`): a service client's
   * `{ Authorization: "Basic " + base64(id:secret) }` or an operator token's
   * `{ Authorization: "Bearer sdo_…" }`. Not needed where `auth.callers`
   * opens them (as `sessiond dev` does).
   */
  headers?: Record<string, string>;
  /** The watch may be silent this long before checks fail (default 5000 ms; the server sends a heartbeat every ~1 s). */
  maxStalenessMs?: number;
  /** Under `fail-closed` (default) a stale verifier refuses with {@link StaleError}; under `fallback-remote` it asks a node (CheckToken). */
  onStale?: StalePolicy;
  /** A stream silent this long is dropped and reconnected to the next node (default 3000 ms). */
  watchIdleTimeoutMs?: number;
  /** Minimum time between key fetches caused by an unknown key id (default 1000 ms). */
  keyRefreshIntervalMs?: number;
  /** Clock skew tolerated for exp, nbf and iat, in seconds (default 0). */
  leewaySeconds?: number;
  /**
   * The longest access-token lifetime accepted, in seconds (default 1800,
   * sessiond's default `auth.max_access_lifetime`; match the cluster's).
   */
  maxLifetimeSeconds?: number;
  /** Verified tokens cached by SHA-256 (default 10000; 0 disables). */
  cacheSize?: number;
  /** The fetch to use (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Receives connection events; tokens are never logged. */
  logger?: { warn(msg: string, data?: object): void; info?(msg: string, data?: object): void };
}

/** Where the verifier stands. */
export interface VerifierStatus {
  node: string | undefined;
  connected: boolean;
  index: number;
  entries: number;
  loaded: boolean;
  lastMessageAt: number | undefined;
  keys: number;
}

const KEY_PERIODIC_MS = 5 * 60_000;
const NODE_COOLDOWN_MS = 10_000;

/**
 * Verifies sessiond access tokens locally. `start()` loads the keys and
 * the first revocation snapshot; `verify(token)` then costs a hash and a
 * few map lookups for a token seen before, one Ed25519 verification
 * otherwise, and never a network call (except a rate-limited key fetch for
 * an unknown key id, or CheckToken under `fallback-remote` while stale).
 */
export class Verifier {
  readonly #o: Required<Omit<VerifierOptions, "logger" | "headers">> & Pick<VerifierOptions, "logger"> & { headers: Record<string, string> };
  readonly #revs = new RevocationSet();
  #keys = new Map<string, PublishedKey>();
  #lastOnDemandFetch = 0;
  #keyFetch: Promise<void> | undefined;
  #cache = new Map<string, { claims: AccessClaims; until: number }>();
  #failedAt: number[];
  #node: string | undefined;
  #connected = false;
  #lastMsg: number | undefined;
  #abort = new AbortController();
  #loops: Promise<void>[] = [];
  #snapWaiters = new Set<() => void>();

  constructor(opts: VerifierOptions) {
    if (!opts.issuer || !opts.audience) throw new TypeError("sessiond: Verifier needs issuer and audience");
    if (!opts.nodes?.length) throw new TypeError("sessiond: Verifier needs at least one node");
    const nodes = opts.nodes.map((n, i) => {
      const u = new URL(n);
      if ((u.protocol !== "http:" && u.protocol !== "https:") || u.pathname.replace(/\/+$/, "") !== "" || u.search) {
        throw new TypeError(`sessiond: nodes[${i}] ${JSON.stringify(n)}: want http(s)://host[:port]`);
      }
      return u.origin;
    });
    this.#o = {
      nodes,
      issuer: opts.issuer,
      audience: opts.audience,
      headers: opts.headers ?? {},
      maxStalenessMs: opts.maxStalenessMs ?? 5_000,
      onStale: opts.onStale ?? "fail-closed",
      watchIdleTimeoutMs: opts.watchIdleTimeoutMs ?? 3_000,
      keyRefreshIntervalMs: opts.keyRefreshIntervalMs ?? 1_000,
      leewaySeconds: opts.leewaySeconds ?? 0,
      maxLifetimeSeconds: opts.maxLifetimeSeconds ?? 1_800,
      cacheSize: opts.cacheSize ?? 10_000,
      fetch: opts.fetch ?? globalThis.fetch.bind(globalThis),
      logger: opts.logger,
    };
    this.#failedAt = nodes.map(() => 0);
  }

  /**
   * Starts the key and watch loops and resolves once the keys and the first
   * revocation snapshot are loaded (rejects after timeoutMs, default 30 s;
   * the loops keep trying).
   */
  async start(timeoutMs = 30_000): Promise<void> {
    const sig = this.#abort.signal;
    this.#loops.push(this.#keyLoop(sig), this.#watchLoop(sig));
    const deadline = Date.now() + timeoutMs;
    while (!(this.#keys.size > 0 && this.#revs.loaded)) {
      if (sig.aborted) throw new Error("sessiond: verifier closed");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("sessiond: keys or the first revocation snapshot not loaded in time");
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 100));
        this.#snapWaiters.add(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Stops the loops. */
  async close(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled(this.#loops);
  }

  /** Where the verifier stands. */
  get status(): VerifierStatus {
    return {
      node: this.#node,
      connected: this.#connected,
      index: this.#revs.resumeIndex,
      entries: this.#revs.size,
      loaded: this.#revs.loaded,
      lastMessageAt: this.#lastMsg,
      keys: this.#keys.size,
    };
  }

  /**
   * Verifies an access token: shape, key (refetched once for an unknown
   * kid), signature, iss, aud, times, then the revocation set (its session,
   * its id, its user's logout-everywhere cut-off), then freshness. Throws
   * {@link TokenRejectedError} with a {@link CheckReason}, or
   * {@link StaleError}.
   */
  async verify(token: string): Promise<AccessClaims> {
    const now = Date.now();
    const claims = await this.#verifySigned(token, now);
    const rev = this.#revs.revoked(claims);
    if (rev) throw new TokenRejectedError(rev.reason, rev.endReason ? `session ended: ${rev.endReason}` : undefined, rev.endReason);
    if (this.#fresh(now)) return claims;
    if (this.#o.onStale === "fail-closed") throw new StaleError(this.#staleWhat(now));
    return this.#remoteCheck(token, claims, now);
  }

  #fresh(now: number): boolean {
    return this.#revs.loaded && this.#lastMsg !== undefined && now - this.#lastMsg <= this.#o.maxStalenessMs;
  }

  #staleWhat(now: number): string {
    if (!this.#revs.loaded || this.#lastMsg === undefined) return "no revocation snapshot loaded yet";
    return `last watch message ${now - this.#lastMsg} ms ago (max ${this.#o.maxStalenessMs} ms)`;
  }

  async #verifySigned(token: string, now: number): Promise<AccessClaims> {
    const kid = tokenKid(token);
    const h = createHash("sha256").update(token).digest("base64");
    const hit = this.#cache.get(h);
    if (hit) {
      if (now < hit.until) return hit.claims;
      this.#cache.delete(h);
    }
    let key = this.#lookup(kid, now);
    if (!key) {
      await this.#refreshKeys(false).catch(() => {});
      key = this.#lookup(kid, now);
      if (!key) throw new TokenRejectedError(CheckReason.UnknownKey, kid);
    }
    const claims = await verifyWithKey(token, key.key, {
      issuer: this.#o.issuer,
      audience: this.#o.audience,
      now: new Date(now),
      leewaySeconds: this.#o.leewaySeconds,
      maxLifetimeSeconds: this.#o.maxLifetimeSeconds,
    });
    if (this.#o.cacheSize > 0) {
      if (this.#cache.size >= this.#o.cacheSize) {
        // Drop the oldest eighth (Map keeps insertion order).
        let n = Math.max(1, this.#o.cacheSize >> 3);
        for (const k of this.#cache.keys()) {
          this.#cache.delete(k);
          if (--n === 0) break;
        }
      }
      const until = Math.min(claims.expiresAt.getTime() + this.#o.leewaySeconds * 1000, key.notAfter ?? Infinity);
      this.#cache.set(h, { claims, until });
    }
    return claims;
  }

  #lookup(kid: string, now: number): PublishedKey | undefined {
    const k = this.#keys.get(kid);
    return k && (k.notAfter === undefined || now < k.notAfter) ? k : undefined;
  }

  /** Fetches the keys from the first node that serves them; on demand at most once per keyRefreshIntervalMs. */
  async #refreshKeys(force: boolean): Promise<void> {
    if (this.#keyFetch) return this.#keyFetch;
    if (!force) {
      if (Date.now() - this.#lastOnDemandFetch < this.#o.keyRefreshIntervalMs) return;
      this.#lastOnDemandFetch = Date.now();
    }
    const p = (async () => {
      const errs: string[] = [];
      for (const node of this.#nodeOrder()) {
        try {
          this.#keys = await this.#fetchKeys(node);
          for (const w of this.#snapWaiters) w();
          return;
        } catch (err) {
          errs.push(`${node}: ${(err as Error).message}`);
        }
      }
      this.#o.logger?.warn("sessiond: fetching keys failed", { errors: errs });
      throw new Error(`sessiond: fetching keys: ${errs.join("; ")}`);
    })();
    this.#keyFetch = p;
    try {
      await p;
    } finally {
      this.#keyFetch = undefined;
    }
  }

  async #fetchKeys(node: string): Promise<Map<string, PublishedKey>> {
    const res = await this.#o.fetch(`${node}/.well-known/paserk`, {
      headers: { Accept: "application/json" },
      signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(3_000)]),
    });
    if (res.status !== 200) throw new Error(`/.well-known/paserk: HTTP ${res.status}`);
    const text = await res.text();
    if (text.length > MAX_KEYS_BODY) throw new Error(`key document above ${MAX_KEYS_BODY} bytes`);
    return parseKeyDocument(JSON.parse(text));
  }

  async #keyLoop(sig: AbortSignal): Promise<void> {
    let failures = 0;
    while (!sig.aborted) {
      let wait = KEY_PERIODIC_MS;
      try {
        await this.#refreshKeys(true);
        failures = 0;
      } catch {
        wait = backoff(failures++);
      }
      await sleep(wait, sig);
    }
  }

  #nodeOrder(): string[] {
    const now = Date.now();
    const ok: string[] = [];
    const bad: string[] = [];
    this.#o.nodes.forEach((n, i) => (now - this.#failedAt[i]! >= NODE_COOLDOWN_MS ? ok : bad).push(n));
    return [...ok, ...bad];
  }

  async #watchLoop(sig: AbortSignal): Promise<void> {
    let failures = 0;
    while (!sig.aborted) {
      const node = this.#nodeOrder()[0]!;
      let got = 0;
      let err: unknown;
      try {
        got = await this.#watchOnce(node, sig);
      } catch (e) {
        err = e;
      }
      if (sig.aborted) return;
      if (!(err instanceof ConnectError && err.code === "resource_exhausted")) this.#failedAt[this.#o.nodes.indexOf(node)] = Date.now();
      if (got > 0) failures = 0;
      const d = backoff(failures++);
      this.#o.logger?.warn("sessiond: revocation watch ended; reconnecting", { node, fromIndex: this.#revs.resumeIndex, messages: got, error: String(err), retryInMs: d });
      await sleep(d, sig);
    }
  }

  async #watchOnce(node: string, sig: AbortSignal): Promise<number> {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort();
    sig.addEventListener("abort", onAbort);
    let idle = setTimeout(() => ctl.abort(new Error("watch stream idle")), this.#o.watchIdleTimeoutMs);
    this.#node = node;
    this.#connected = false;
    let n = 0;
    try {
      const url = `${node}/sessiond.session.v1.SessionService/WatchRevocations`;
      for await (const msg of serverStream(this.#o.fetch, url, { fromIndex: String(this.#revs.resumeIndex) }, this.#o.headers, ctl.signal)) {
        clearTimeout(idle);
        idle = setTimeout(() => ctl.abort(new Error("watch stream idle")), this.#o.watchIdleTimeoutMs);
        this.#revs.apply(msg as WatchMessage);
        this.#lastMsg = Date.now();
        this.#connected = true;
        n++;
        if (this.#revs.loaded) for (const w of this.#snapWaiters) w();
        if (n % 64 === 0) this.#revs.prune(msToNanos(Date.now()));
      }
      return n;
    } catch (err) {
      if (ctl.signal.aborted && !sig.aborted) throw ctl.signal.reason;
      throw err;
    } finally {
      clearTimeout(idle);
      sig.removeEventListener("abort", onAbort);
      this.#connected = false;
      this.#revs.streamEnded();
    }
  }

  async #remoteCheck(token: string, claims: AccessClaims, now: number): Promise<AccessClaims> {
    const errs: string[] = [];
    for (const node of this.#nodeOrder()) {
      try {
        const r = await unary(this.#o.fetch, `${node}/sessiond.session.v1.SessionService/CheckToken`, { token }, this.#o.headers, AbortSignal.timeout(2_000));
        if (r.active === true) return claims;
        const reason = (typeof r.reason === "string" && r.reason ? r.reason : CheckReason.Revoked) as CheckReason;
        const end = typeof r.endReason === "string" ? r.endReason : typeof r.end_reason === "string" ? r.end_reason : undefined;
        throw new TokenRejectedError(reason, end ? `session end reason ${end}` : undefined, end || undefined);
      } catch (err) {
        if (err instanceof TokenRejectedError) throw err;
        errs.push(`${node}: ${(err as Error).message}`);
      }
    }
    throw new StaleError(`${this.#staleWhat(now)}; remote check failed: ${errs.join("; ")}`);
  }
}

function backoff(failures: number): number {
  const base = Math.min(100 * 2 ** Math.min(failures, 10), 5_000);
  return base / 2 + Math.random() * (base / 2);
}

function sleep(ms: number, sig: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (sig.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      sig.removeEventListener("abort", done);
      resolve();
    }
    sig.addEventListener("abort", done);
  });
}

/**
 * The revocation set a verifier keeps from the WatchRevocations stream,
 * with the Go SDK's semantics (api/guard/revset.go).
 */
import { CheckReason, parseEndReason } from "../reasons.js";
import { rfc3339Nanos } from "./time.js";
import type { AccessClaims } from "./verify.js";

/** One RevocationEvent in the Connect JSON mapping (camelCase; snake_case accepted too). */
export interface RevocationEvent {
  index?: string | number;
  sessionId?: string;
  userId?: string;
  jti?: string;
  notBefore?: string;
  expires?: string;
  reason?: string;
}

/** One WatchRevocationsResponse. */
export interface WatchMessage {
  snapshot?: boolean;
  events?: RevocationEvent[];
  index?: string | number;
}

interface Maps {
  sessions: Map<string, bigint>; // session id -> expires (0n: never forgotten)
  jtis: Map<string, bigint>;
  users: Map<string, { notBefore: bigint; expires: bigint }>;
  reasons: Map<string, string>;
}

function newMaps(): Maps {
  return { sessions: new Map(), jtis: new Map(), users: new Map(), reasons: new Map() };
}

function field<T>(e: Record<string, unknown>, camel: string, snake: string): T | undefined {
  return (e[camel] ?? e[snake]) as T | undefined;
}

function add(m: Maps, ev: RevocationEvent): void {
  const e = ev as Record<string, unknown>;
  const exp = rfc3339Nanos(e.expires) ?? 0n;
  const keep = (old: bigint | undefined) => (old === undefined ? exp : old === 0n || exp === 0n ? 0n : old > exp ? old : exp);
  const sid = field<string>(e, "sessionId", "session_id");
  const uid = field<string>(e, "userId", "user_id");
  const jti = field<string>(e, "jti", "jti");
  if (sid) {
    m.sessions.set(sid, keep(m.sessions.get(sid)));
    if (typeof e.reason === "string" && e.reason) m.reasons.set(sid, e.reason);
  } else if (jti) {
    m.jtis.set(jti, keep(m.jtis.get(jti)));
  } else if (uid) {
    const nb = rfc3339Nanos(field(e, "notBefore", "not_before")) ?? 0n;
    const old = m.users.get(uid);
    m.users.set(uid, { notBefore: old && old.notBefore > nb ? old.notBefore : nb, expires: keep(old?.expires) });
  }
}

function num(v: unknown): number {
  const n = typeof v === "string" ? Number(v) : typeof v === "number" ? v : 0;
  return Number.isFinite(n) ? n : 0;
}

/** Why a token is revoked. */
export interface Revocation {
  reason: CheckReason;
  endReason: string | undefined;
}

/**
 * The revocation set. A snapshot (which may span several messages with
 * the same index) replaces the set when a message outside it arrives;
 * meanwhile the live set holds the union, which can only over-revoke. The
 * resume index moves to a snapshot's index only then.
 */
export class RevocationSet {
  #live = newMaps();
  #staging: Maps | undefined;
  #stagingIndex = 0;
  #index = 0;
  #loaded = false;

  /** Whether a first snapshot has been committed. */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** The from_index to resume the watch from. */
  get resumeIndex(): number {
    return this.#index;
  }

  /** Entries in force. */
  get size(): number {
    return this.#live.sessions.size + this.#live.jtis.size + this.#live.users.size;
  }

  /** Applies one stream message; returns whether the first snapshot is committed. */
  apply(msg: WatchMessage): boolean {
    const events = Array.isArray(msg.events) ? msg.events : [];
    const index = num(msg.index);
    if (this.#staging) {
      if (!msg.snapshot && index === this.#stagingIndex && events.length > 0) {
        for (const e of events) {
          add(this.#staging, e);
          add(this.#live, e);
        }
        return this.#loaded;
      }
      this.#commit();
    }
    if (msg.snapshot) {
      this.#staging = newMaps();
      this.#stagingIndex = index;
      for (const e of events) {
        add(this.#staging, e);
        add(this.#live, e);
      }
      return this.#loaded;
    }
    for (const e of events) add(this.#live, e);
    this.#index = Math.max(this.#index, index);
    return this.#loaded;
  }

  #commit(): void {
    this.#live = this.#staging!;
    this.#index = this.#stagingIndex;
    this.#loaded = true;
    this.#staging = undefined;
  }

  /** Drops a snapshot being received (the stream broke); the live set keeps the union. */
  streamEnded(): void {
    this.#staging = undefined;
  }

  /** Forgets entries whose expiry is at or before now (ns); returns how many. */
  prune(nowNanos: bigint): number {
    const gone = (exp: bigint) => exp !== 0n && exp <= nowNanos;
    let n = 0;
    for (const m of [this.#live, this.#staging]) {
      if (!m) continue;
      const before = m.sessions.size + m.jtis.size + m.users.size;
      for (const [k, exp] of m.sessions) {
        if (gone(exp)) {
          m.sessions.delete(k);
          m.reasons.delete(k);
        }
      }
      for (const [k, exp] of m.jtis) if (gone(exp)) m.jtis.delete(k);
      for (const [k, u] of m.users) if (gone(u.expires)) m.users.delete(k);
      if (m === this.#live) n = before - (m.sessions.size + m.jtis.size + m.users.size);
    }
    return n;
  }

  /** Why the token of these claims is revoked, or undefined. */
  revoked(c: Pick<AccessClaims, "sessionId" | "subject" | "tokenId" | "issuedAtNanos">): Revocation | undefined {
    const m = this.#live;
    if (c.sessionId && m.sessions.has(c.sessionId)) {
      const end = m.reasons.get(c.sessionId);
      const reason = parseEndReason(end) === "logout_all" ? CheckReason.LoggedOutEverywhere : CheckReason.SessionEnded;
      return { reason, endReason: parseEndReason(end) ?? end };
    }
    const cut = m.users.get(c.subject);
    if (cut && cut.notBefore > c.issuedAtNanos) return { reason: CheckReason.LoggedOutEverywhere, endReason: undefined };
    if (c.tokenId && m.jtis.has(c.tokenId)) return { reason: CheckReason.Revoked, endReason: undefined };
    return undefined;
  }
}

/**
 * Cross-tab mutual exclusion for the refresh: the Web Locks API where the
 * browser has it, else a lock negotiated over a BroadcastChannel.
 *
 * @module
 */

/** Runs a function while no other tab of the origin runs one under the same name. */
export interface CrossTabLock {
  /** Runs fn holding the lock `name`; other tabs asking for it wait. */
  run<T>(name: string, fn: () => Promise<T>): Promise<T>;
}

/** The part of the Web Locks API (`navigator.locks`) the client uses. */
export interface LockManagerLike {
  request<T>(name: string, options: { mode: "exclusive" }, callback: () => Promise<T>): Promise<T>;
}

/** The part of BroadcastChannel the client uses. */
export interface ChannelLike {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (ev: { data: unknown }) => void): void;
  removeEventListener(type: "message", listener: (ev: { data: unknown }) => void): void;
  close(): void;
}

/** Opens a BroadcastChannel (or an equivalent) by name. */
export type ChannelFactory = (name: string) => ChannelLike;

/** A lock held through the Web Locks API: exact across tabs and released if a tab dies. */
export function webLocks(locks: LockManagerLike): CrossTabLock {
  return { run: (name, fn) => locks.request(name, { mode: "exclusive" }, fn) };
}

/** Timings of {@link broadcastLock}. */
export interface BroadcastLockOptions {
  /** How long a tab collects competing requests before deciding (default 50 ms). */
  settleMs?: number;
  /** How long a holder may be silent before others take over (default 15 s): a tab closed while holding. */
  leaseMs?: number;
}

type LockMsg =
  | { t: "want"; id: string; ts: number }
  | { t: "held"; id: string; ts: number }
  | { t: "released"; id: string }
  | { t: "sync"; id: string };

/**
 * A lock negotiated over a BroadcastChannel, for browsers without Web
 * Locks. A tab announces that it wants the lock and listens for `settleMs`
 * (and until it has handled every message queued before then): if another
 * tab holds it, it waits for its release; among the tabs that asked in the
 * same window, the earliest request (then the smaller id) wins. The winner
 * claims the lock and listens once more: if another tab claimed it with an
 * earlier request, it yields. A holder renews its claim while it runs; one
 * that closes without releasing is passed over after `leaseMs`. It relies
 * on messages arriving within `settleMs`, so it is weaker than Web Locks:
 * if two tabs ever refresh at once, sessiond still answers the second with
 * the same new pair for 10 s (its grace for the immediate predecessor of a
 * refresh token), so the session survives.
 */
export function broadcastLock(open: ChannelFactory, opts: BroadcastLockOptions = {}): CrossTabLock {
  const settleMs = opts.settleMs ?? 50;
  const leaseMs = opts.leaseMs ?? 15_000;
  const local = new Map<string, Promise<unknown>>();
  // One channel per lock name for the tab's lifetime, so that it hears
  // every request of the other tabs.
  const channels = new Map<string, ChannelLike>();
  const channelFor = (name: string) => {
    let ch = channels.get(name);
    if (!ch) {
      ch = open(`sessiond-lock:${name}`);
      (ch as { unref?: () => void }).unref?.(); // Node: an idle channel keeps no process alive
      channels.set(name, ch);
    }
    return ch;
  };
  return {
    async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
      // Calls in this tab queue behind each other first.
      const prev = local.get(name) ?? Promise.resolve();
      const mine = prev.catch(() => undefined).then(() => runShared(channelFor(name), () => open(`sessiond-lock:${name}`), settleMs, leaseMs, fn));
      local.set(name, mine);
      try {
        return await mine;
      } finally {
        if (local.get(name) === mine) local.delete(name);
      }
    },
  };
}

function randomId(): string {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function runShared<T>(ch: ChannelLike, openProbe: () => ChannelLike, settleMs: number, leaseMs: number, fn: () => Promise<T>): Promise<T> {
  const id = randomId();
  let holder: { id: string; since: number } | undefined;
  let holding = false;
  let settling: number | undefined; // ts of this tab's request while it collects others
  let myTs = 0;
  let confirming = false;
  let conflict = false;
  let wants: { id: string; ts: number }[] = [];
  let wake: (() => void) | undefined;
  let synced: ((syncId: string) => void) | undefined;
  const onMsg = (ev: { data: unknown }) => {
    const m = ev.data as LockMsg;
    if (!m || typeof m !== "object") return;
    if (m.t === "sync") {
      synced?.(m.id);
    } else if (m.t === "want") {
      const isNew = !wants.some((w) => w.id === m.id);
      wants.push({ id: m.id, ts: m.ts });
      if (holding) ch.postMessage({ t: "held", id, ts: myTs } satisfies LockMsg);
      // A tab that asked after this one may have missed this request: repeat it.
      else if (settling !== undefined && isNew) ch.postMessage({ t: "want", id, ts: settling } satisfies LockMsg);
    } else if (m.t === "held") {
      holder = { id: m.id, since: Date.now() };
      // Another tab claims the lock while this one confirms its own claim:
      // the earlier request (then the smaller id) keeps it.
      if (confirming && (m.ts < myTs || (m.ts === myTs && m.id < id))) conflict = true;
    } else if (m.t === "released") {
      if (holder?.id === m.id) holder = undefined;
      wants = wants.filter((w) => w.id !== m.id);
      wake?.();
    }
  };
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(t);
        wake = undefined;
        resolve();
      };
    });
  // Waits settleMs, then until this tab has handled what was queued for it:
  // a timer can fire before messages already sent are handled, so a marker
  // goes through a second channel and the wait ends when it comes back.
  const settle = async () => {
    await new Promise((r) => setTimeout(r, settleMs));
    await new Promise<void>((resolve) => {
      const syncId = randomId();
      const probe = openProbe();
      const t = setTimeout(done, settleMs * 4);
      function done() {
        clearTimeout(t);
        synced = undefined;
        probe.close();
        resolve();
      }
      synced = (got) => {
        if (got === syncId) done();
      };
      probe.postMessage({ t: "sync", id: syncId } satisfies LockMsg);
    });
  };
  ch.addEventListener("message", onMsg);
  try {
    for (;;) {
      if (holder && Date.now() - holder.since < leaseMs) {
        await pause(leaseMs - (Date.now() - holder.since));
        continue;
      }
      holder = undefined;
      const ts = Date.now();
      wants = [{ id, ts }];
      settling = ts;
      ch.postMessage({ t: "want", id, ts } satisfies LockMsg);
      myTs = ts;
      await settle();
      settling = undefined;
      if (holder) continue;
      const first = wants.reduce((a, b) => (b.ts < a.ts || (b.ts === a.ts && b.id < a.id) ? b : a));
      if (first.id !== id) {
        // Another tab won this round: wait for its release (or its lease).
        holder = { id: first.id, since: Date.now() };
        continue;
      }
      // Claim, then confirm: a tab that decided in the same window without
      // hearing this one claims too, and the later claim yields.
      holding = true;
      confirming = true;
      conflict = false;
      ch.postMessage({ t: "held", id, ts } satisfies LockMsg);
      await settle();
      confirming = false;
      if (conflict) {
        holding = false;
        ch.postMessage({ t: "released", id } satisfies LockMsg);
        continue;
      }
      holder = undefined;
      // Renew the lease while fn runs, so that a slow refresh is not taken over.
      const renew = setInterval(() => ch.postMessage({ t: "held", id, ts } satisfies LockMsg), Math.max(leaseMs / 3, 10));
      try {
        return await fn();
      } finally {
        clearInterval(renew);
        holding = false;
        ch.postMessage({ t: "released", id } satisfies LockMsg);
      }
    }
  } finally {
    ch.removeEventListener("message", onMsg);
  }
}

/** A lock for one tab only (no other tab can be coordinated with). */
export function localLock(): CrossTabLock {
  const tails = new Map<string, Promise<unknown>>();
  return {
    async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
      const prev = tails.get(name) ?? Promise.resolve();
      const mine = prev.catch(() => undefined).then(fn);
      tails.set(name, mine);
      try {
        return await mine;
      } finally {
        if (tails.get(name) === mine) tails.delete(name);
      }
    },
  };
}

/**
 * The best lock this environment has: Web Locks, else a BroadcastChannel
 * lock, else a lock for this tab only.
 */
export function defaultLock(): CrossTabLock {
  const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
  if (nav?.locks) return webLocks(nav.locks);
  if (typeof globalThis.BroadcastChannel === "function") {
    return broadcastLock((name) => new BroadcastChannel(name) as unknown as ChannelLike);
  }
  return localLock();
}

/**
 * The client's typed events.
 *
 * @module
 */
import type { SessionEndReason } from "../reasons.js";

/** Where the client learnt that the session ended. */
export type SessionEndSource = "logout" | "refresh" | "request" | "websocket" | "other-tab";

/** The detail of a `session-ended` event. */
export interface SessionEndedDetail {
  /** Why the session ended ({@link SessionEndReason}). */
  reason: SessionEndReason;
  /** How this tab learnt it. */
  source: SessionEndSource;
}

/** The detail of a `tokens` event: this tab has a new access token. */
export interface TokensDetail {
  /** When the access token expires (ms since the epoch). */
  expiresAt: number;
  /** The session id. */
  sessionId: string;
  /** True when another tab refreshed and shared the token. */
  fromOtherTab: boolean;
}

/** Every event of the client and its detail. */
export interface ClientEvents {
  "session-ended": SessionEndedDetail;
  tokens: TokensDetail;
}

/** A listener of event K. */
export type Listener<K extends keyof ClientEvents> = (detail: ClientEvents[K]) => void;

/** A minimal typed emitter (no DOM EventTarget needed, so it runs anywhere). */
export class Emitter {
  #listeners: { [K in keyof ClientEvents]?: Set<Listener<K>> } = {};

  /** Adds a listener and returns a function that removes it. */
  on<K extends keyof ClientEvents>(type: K, fn: Listener<K>): () => void {
    let set = this.#listeners[type] as Set<Listener<K>> | undefined;
    if (!set) {
      set = new Set();
      (this.#listeners as Record<string, unknown>)[type] = set;
    }
    set.add(fn);
    return () => this.off(type, fn);
  }

  /** Removes a listener. */
  off<K extends keyof ClientEvents>(type: K, fn: Listener<K>): void {
    (this.#listeners[type] as Set<Listener<K>> | undefined)?.delete(fn);
  }

  protected emit<K extends keyof ClientEvents>(type: K, detail: ClientEvents[K]): void {
    const set = this.#listeners[type] as Set<Listener<K>> | undefined;
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/**
 * Errors shared by the browser client and the Node verifier.
 *
 * @module
 */
import type { CheckReason } from "./reasons.js";

/** An error answer of a sessiond HTTP route: `{"error":"<code>","message":"…"}`. */
export class SessiondError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The machine-readable code, e.g. `invalid_credentials`, `session_ended`. */
  readonly code: string;
  /** Seconds to wait before retrying (429), when the server said. */
  readonly retryAfter: number | undefined;
  constructor(status: number, code: string, message: string, retryAfter?: number) {
    super(`sessiond: ${status} ${code}: ${message}`);
    this.name = "SessiondError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** The live session that holds a platform, as a 409 login conflict describes it. */
export interface ExistingSession {
  sessionId: string;
  deviceId: string;
  platform: string;
  region: string;
  created: string;
}

/**
 * A login refused because another device of the same platform holds a live
 * session (409). Ask the user, then call `forceLogin` to end that session.
 */
export class LoginConflictError extends SessiondError {
  /** The session that holds the platform. */
  readonly existing: ExistingSession;
  constructor(code: string, message: string, existing: ExistingSession) {
    super(409, code, message);
    this.name = "LoginConflictError";
    this.existing = existing;
  }
}

/** An access token the verifier refuses; `reason` is a {@link CheckReason}. */
export class TokenRejectedError extends Error {
  readonly reason: CheckReason;
  /** The session end reason, when the token's session ended and it is known. */
  readonly endReason: string | undefined;
  constructor(reason: CheckReason, detail?: string, endReason?: string) {
    super(`sessiond: access token not accepted: ${reason}${detail ? `: ${detail}` : ""}`);
    this.name = "TokenRejectedError";
    this.reason = reason;
    this.endReason = endReason;
  }
}

/**
 * The verifier cannot vouch for a token: its revocation set is not loaded
 * yet or the watch stream has been silent longer than `maxStaleness`. The
 * token may be fine; answer 503 and let the caller retry.
 */
export class StaleError extends Error {
  constructor(detail: string) {
    super(`sessiond: revocation state is stale: ${detail}`);
    this.name = "StaleError";
  }
}

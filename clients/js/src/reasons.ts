/**
 * The vocabulary sessiond speaks, defined once for every part of this
 * package: why a token is not accepted (the `reason` of CheckToken and of
 * the Go SDK's AuthError), why a session ended, and how a WebSocket close
 * code maps to a session end.
 *
 * @module
 */

/** Why an access token is not accepted; the strings CheckToken answers with. */
export const CheckReason = {
  Expired: "expired",
  NotYetValid: "not_yet_valid",
  Revoked: "revoked",
  SessionEnded: "session_ended",
  LoggedOutEverywhere: "user_logged_out_everywhere",
  UnknownKey: "unknown_key",
  Malformed: "malformed",
  InvalidSignature: "invalid_signature",
  WrongAudience: "wrong_audience",
  WrongIssuer: "wrong_issuer",
  WrongPurpose: "wrong_purpose",
  SessionNotFound: "session_not_found",
  MissingToken: "missing_token",
  InternalError: "internal_error",
  AccountSuspended: "account_suspended",
  AccountChanged: "account_changed",
  LifetimeTooLong: "lifetime_too_long",
  UpstreamRevoked: "upstream_revoked",
} as const;

/** One of the {@link CheckReason} values. */
export type CheckReason = (typeof CheckReason)[keyof typeof CheckReason];

/**
 * Why a session ended: sessiond's `EndReason` enum (store.v1), lower-case
 * without the `END_REASON_` prefix, as `/auth/sessions`, CheckToken's
 * `end_reason` and WatchRevocations (with `watch:details`) name them.
 */
export const EndReason = {
  Logout: "logout",
  ForcedOut: "forced_out",
  AdminRevoked: "admin_revoked",
  RefreshReuse: "refresh_reuse",
  Expired: "expired",
  LogoutAll: "logout_all",
  Replaced: "replaced",
  AccountSuspended: "account_suspended",
  AccountChanged: "account_changed",
  UpstreamRevoked: "upstream_revoked",
  CodeReuse: "code_reuse",
  SsoEnded: "sso_ended",
} as const;

/** One of the {@link EndReason} values. */
export type EndReason = (typeof EndReason)[keyof typeof EndReason];

/**
 * The reason a `session-ended` event carries: an {@link EndReason}, or
 * `unknown` when the server said the session ended without saying why.
 */
export type SessionEndReason = EndReason | "unknown";

const endReasons: ReadonlySet<string> = new Set(Object.values(EndReason));

/**
 * Normalises an end reason as any sessiond surface spells it
 * (`forced_out`, `END_REASON_FORCED_OUT`) to an {@link EndReason}, or
 * returns undefined for anything else.
 */
export function parseEndReason(s: string | undefined | null): EndReason | undefined {
  if (!s) return undefined;
  const v = s.toLowerCase().replace(/^end_reason_/, "");
  return endReasons.has(v) ? (v as EndReason) : undefined;
}

/**
 * WebSocket close codes that mean "your session ended", in the private-use
 * range, as sessiond's Go WebSocket helper (clients/go/wsguard) closes a
 * socket whose session ended. This table is the only place the JS client
 * knows them.
 */
export const SESSION_CLOSE_CODES: Readonly<Record<number, SessionEndReason>> = Object.freeze({
  /** The session ended (logout, expiry) or for a reason the server was not told. */
  4001: "unknown",
  4002: "forced_out",
  4003: "refresh_reuse",
  4004: "logout_all",
  /** An operator or service revoked the session or the token, or the account was suspended or changed, or the upstream identity provider revoked the user (the reason text says which). */
  4005: "admin_revoked",
  4006: "replaced",
});

/**
 * Maps a WebSocket close (code and reason text) to the session end it
 * reports, or undefined when the close is not a session end (a normal
 * close, a network drop, a server restart). The helper's reason text is
 * `<check reason>` or `<check reason>: <end reason>`
 * (`session_ended: logout`); an end reason there refines code 4001.
 */
export function sessionEndFromClose(code: number, reasonText?: string): SessionEndReason | undefined {
  const byCode = SESSION_CLOSE_CODES[code];
  if (byCode === undefined) return undefined;
  const end = reasonText?.includes(":") ? reasonText.slice(reasonText.indexOf(":") + 1).trim() : reasonText;
  return parseEndReason(end) ?? byCode;
}

/** The WebSocket subprotocol sessiond's WebSocket helper selects. */
export const WEBSOCKET_SUBPROTOCOL = "sessiond.v1";

/**
 * The prefix of the subprotocol that carries the access token on a
 * WebSocket upgrade (browsers cannot set an Authorization header there).
 */
export const WEBSOCKET_TOKEN_PREFIX = "sessiond.token.";

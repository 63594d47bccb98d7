/**
 * Local verification of sessiond access tokens (PASETO v4.public), with
 * the checks and their order of the Go SDK (clients/go/token.VerifyAccess).
 */
import { ClaimValidationError, PasetoError, PublicProtocol } from "paseto";
import { VerifyFactory, type PublicKey } from "paseto/v4/public";
import { TokenRejectedError } from "../errors.js";
import { CheckReason } from "../reasons.js";
import { msToNanos, rfc3339Nanos } from "./time.js";

const v4 = new PublicProtocol(VerifyFactory);

/** Tokens larger than this are refused before any work (clients/go/token.MaxTokenSize). */
export const MAX_TOKEN_SIZE = 8 << 10;
const MAX_FOOTER_ENCODED = 128;
const PREFIX = "v4.public.";

/** A verified access token's claims. */
export interface AccessClaims {
  /** iss */
  issuer: string;
  /** sub: the user id */
  subject: string;
  /** aud */
  audience: string;
  /** exp, iat and nbf (nbf undefined when absent) */
  expiresAt: Date;
  issuedAt: Date;
  notBefore: Date | undefined;
  /** iat in nanoseconds since the epoch, exactly as signed (user cut-offs compare with it). */
  issuedAtNanos: bigint;
  /** jti and sid */
  tokenId: string;
  sessionId: string;
  orgId: string;
  orgType: string;
  country: string;
  roles: string[];
  platform: string;
}

/** What a token must show. */
export interface Expectation {
  issuer: string;
  audience: string;
  /** Verification time (default now). */
  now?: Date;
  /** Clock skew tolerated for exp, nbf and iat, in seconds (default 0). */
  leewaySeconds?: number;
  /**
   * The longest access-token lifetime (exp - iat) accepted, in seconds: a
   * longer one is refused with `lifetime_too_long`, whatever its signature
   * (sessiond's `auth.max_access_lifetime`). 0 or absent: no bound.
   */
  maxLifetimeSeconds?: number;
}

const b64url = /^[A-Za-z0-9_-]*$/;

function decodeB64(s: string): Buffer | undefined {
  if (!b64url.test(s) || s.length % 4 === 1) return undefined;
  const b = Buffer.from(s, "base64url");
  return b.toString("base64url") === s ? b : undefined; // canonical only
}

function kindOf(token: string): string | undefined {
  for (const v of ["v1.", "v2.", "v3.", "v4."]) {
    if (token.startsWith(v)) {
      for (const p of ["local.", "public."]) if (token.slice(v.length).startsWith(p)) return `a PASETO ${v}${p.slice(0, -1)} token`;
      return `a PASETO ${v.slice(0, -1)} token`;
    }
  }
  if (token.startsWith("eyJ") && token.split(".").length === 3) return "a JWT";
  return undefined;
}

/**
 * Reads the kid of a v4.public token's footer, which must be byte-exactly
 * `{"kid":"k4.pid.<44 base64url>"}`, after the shape checks. Throws
 * {@link TokenRejectedError} (malformed, wrong_purpose).
 */
export function tokenKid(token: string): string {
  if (token === "") throw new TokenRejectedError(CheckReason.MissingToken, "empty");
  if (token.length > MAX_TOKEN_SIZE) throw new TokenRejectedError(CheckReason.Malformed, `${token.length} bytes, above ${MAX_TOKEN_SIZE}`);
  if (!token.startsWith(PREFIX)) {
    const kind = kindOf(token);
    if (kind) throw new TokenRejectedError(CheckReason.WrongPurpose, `got ${kind}, want a PASETO v4.public token`);
    throw new TokenRejectedError(CheckReason.Malformed, "not a PASETO v4.public token");
  }
  const parts = token.slice(PREFIX.length).split(".");
  if (parts.length !== 2) throw new TokenRejectedError(CheckReason.Malformed, "want payload and footer after v4.public.");
  const payload = decodeB64(parts[0]!);
  if (!payload || payload.length < 64) throw new TokenRejectedError(CheckReason.Malformed, "payload is not base64url of at least 64 bytes");
  const enc = parts[1]!;
  if (enc.length > MAX_FOOTER_ENCODED) throw new TokenRejectedError(CheckReason.Malformed, `footer longer than ${MAX_FOOTER_ENCODED} characters`);
  const footer = decodeB64(enc);
  if (!footer) throw new TokenRejectedError(CheckReason.Malformed, "footer is not canonical base64url");
  const m = /^\{"kid":"(k4\.pid\.[A-Za-z0-9_-]{44})"\}$/.exec(footer.toString("latin1"));
  if (!m || !decodeB64(m[1]!.slice(7))) throw new TokenRejectedError(CheckReason.Malformed, 'footer must be exactly {"kid":"k4.pid.…"}');
  return m[1]!;
}

function claimsOf(token: string): Record<string, unknown> {
  const payload = Buffer.from(token.slice(PREFIX.length).split(".")[0]!, "base64url");
  return JSON.parse(payload.subarray(0, payload.length - 64).toString("utf8")) as Record<string, unknown>;
}

/**
 * Verifies a token's signature with key and its claims against expect,
 * in the Go verifier's order: signature, iss, aud, exp, iat, nbf, then sub
 * required, then the lifetime bound. Throws {@link TokenRejectedError}.
 */
export async function verifyWithKey(token: string, key: PublicKey, expect: Expectation): Promise<AccessClaims> {
  if (!expect.issuer) throw new TokenRejectedError(CheckReason.WrongIssuer, "the expectation names no issuer");
  if (!expect.audience) throw new TokenRejectedError(CheckReason.WrongAudience, "the expectation names no audience");
  const now = expect.now ?? new Date();
  const leeway = expect.leewaySeconds ?? 0;
  let claims: Record<string, unknown>;
  try {
    ({ claims } = await v4.Verify(key, token, {
      now,
      clockTolerance: leeway,
      issuer: expect.issuer,
      audience: expect.audience,
      requiredClaims: ["iat"],
    }));
  } catch (err) {
    if (err instanceof ClaimValidationError) {
      // The signature verified (claims are checked after it): report an
      // issuer or audience mismatch before a time problem, as Go does.
      const c = claimsOf(token);
      if (c.iss !== expect.issuer) throw new TokenRejectedError(CheckReason.WrongIssuer, `want ${JSON.stringify(expect.issuer)}`);
      if (c.aud !== expect.audience) throw new TokenRejectedError(CheckReason.WrongAudience, `want ${JSON.stringify(expect.audience)}`);
      if (/^(Missing|Unexpected)|must be/.test(err.message)) throw new TokenRejectedError(CheckReason.Malformed, err.message);
      if (err.claim === "exp") throw new TokenRejectedError(CheckReason.Expired, `expired at ${String(c.exp)}`);
      if (err.claim === "iat" || err.claim === "nbf") throw new TokenRejectedError(CheckReason.NotYetValid, err.message);
      throw new TokenRejectedError(CheckReason.Malformed, err.message);
    }
    if (err instanceof PasetoError) throw new TokenRejectedError(CheckReason.InvalidSignature, err.message);
    throw err;
  }
  const exp = rfc3339Nanos(claims.exp);
  const iat = rfc3339Nanos(claims.iat);
  const nbf = claims.nbf === undefined ? undefined : rfc3339Nanos(claims.nbf);
  if (exp === undefined || iat === undefined || (claims.nbf !== undefined && nbf === undefined)) {
    throw new TokenRejectedError(CheckReason.Malformed, "exp, iat or nbf is not RFC 3339");
  }
  // Go refuses at now >= exp+leeway; the library at now > exp+leeway.
  if (msToNanos(now.getTime() - leeway * 1000) >= exp) throw new TokenRejectedError(CheckReason.Expired, `expired at ${String(claims.exp)}`);
  if (typeof claims.sub !== "string" || claims.sub === "") throw new TokenRejectedError(CheckReason.Malformed, "sub is required");
  const maxLifetime = expect.maxLifetimeSeconds ?? 0;
  if (maxLifetime > 0 && exp - iat > BigInt(maxLifetime) * 1_000_000_000n) {
    throw new TokenRejectedError(CheckReason.LifetimeTooLong, `exp - iat exceeds ${maxLifetime}s`);
  }
  const s = (k: string) => (typeof claims[k] === "string" ? (claims[k] as string) : "");
  return {
    issuer: s("iss"),
    subject: s("sub"),
    audience: s("aud"),
    expiresAt: new Date(Number(exp / 1_000_000n)),
    issuedAt: new Date(Number(iat / 1_000_000n)),
    notBefore: nbf === undefined ? undefined : new Date(Number(nbf / 1_000_000n)),
    issuedAtNanos: iat,
    tokenId: s("jti"),
    sessionId: s("sid"),
    orgId: s("org_id"),
    orgType: s("org_type"),
    country: s("country"),
    roles: Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === "string") : [],
    platform: s("platform"),
  };
}

/**
 * Verifies a token against a fixed key set (from {@link parseKeyDocument}),
 * without revocation checks: the shape, the kid (unknown_key when the set
 * lacks it or it is past its not_after), then {@link verifyWithKey}.
 */
export async function verifyToken(token: string, keys: ReadonlyMap<string, { key: PublicKey; notAfter: number | undefined }>, expect: Expectation): Promise<AccessClaims> {
  const kid = tokenKid(token);
  const k = keys.get(kid);
  const now = (expect.now ?? new Date()).getTime();
  if (!k || (k.notAfter !== undefined && now >= k.notAfter)) throw new TokenRejectedError(CheckReason.UnknownKey, kid);
  return verifyWithKey(token, k.key, expect);
}

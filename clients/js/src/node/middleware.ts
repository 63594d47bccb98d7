/**
 * HTTP middleware around a {@link Verifier}: Express/Connect style
 * `(req, res, next)` (also plain node:http) and a Fastify `onRequest` hook.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { StaleError, TokenRejectedError } from "../errors.js";
import { CheckReason } from "../reasons.js";
import type { AccessClaims } from "./verify.js";
import type { Verifier } from "./verifier.js";

/** The refusal a middleware answers with. */
export interface Refusal {
  status: 401 | 503;
  headers: Record<string, string>;
  /** `{"error": <CheckReason | "unavailable">, "message", "end_reason"?}`. */
  body: { error: string; message: string; end_reason?: string };
}

/** Reads the bearer token of an Authorization header value. */
export function bearerToken(header: string | string[] | undefined): string {
  const h = Array.isArray(header) ? header[0] : header;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h ?? "");
  return m ? m[1]! : "";
}

/**
 * Verifies the bearer token of a request's Authorization header value:
 * the claims, or the refusal to answer with (401 with `WWW-Authenticate`
 * and the reason; 503 with `Retry-After` when the verifier is stale).
 */
export async function authenticate(verifier: Verifier, authorization: string | string[] | undefined): Promise<{ claims: AccessClaims } | { refusal: Refusal }> {
  try {
    return { claims: await verifier.verify(bearerToken(authorization)) };
  } catch (err) {
    if (err instanceof TokenRejectedError) {
      const body: Refusal["body"] = { error: err.reason, message: err.message };
      if (err.endReason) body.end_reason = err.endReason;
      const desc = err.reason === CheckReason.MissingToken ? "" : `, error_description="${err.reason}"`;
      const wa = err.reason === CheckReason.MissingToken ? "Bearer" : `Bearer error="invalid_token"${desc}`;
      return { refusal: { status: 401, headers: { "WWW-Authenticate": wa, "Cache-Control": "no-store" }, body } };
    }
    if (err instanceof StaleError) {
      return { refusal: { status: 503, headers: { "Retry-After": "1", "Cache-Control": "no-store" }, body: { error: "unavailable", message: err.message } } };
    }
    throw err;
  }
}

/** A request the Express-style middleware has authenticated. */
export interface AuthenticatedRequest extends IncomingMessage {
  sessiond?: AccessClaims;
}

/**
 * Express/Connect-style middleware: sets `req.sessiond` to the verified
 * claims and calls `next()`, or answers 401/503 with a JSON body. Works
 * with plain node:http too (`next` is then your handler).
 */
export function expressMiddleware(verifier: Verifier) {
  return (req: AuthenticatedRequest, res: ServerResponse, next: (err?: unknown) => void): void => {
    authenticate(verifier, req.headers.authorization).then(
      (r) => {
        if ("claims" in r) {
          req.sessiond = r.claims;
          next();
          return;
        }
        const { status, headers, body } = r.refusal;
        res.writeHead(status, { ...headers, "Content-Type": "application/json" });
        res.end(JSON.stringify(body));
      },
      (err: unknown) => next(err),
    );
  };
}

/** The parts of a Fastify request and reply the hook uses. */
export interface FastifyLikeRequest {
  headers: Record<string, string | string[] | undefined>;
  sessiond?: AccessClaims;
}
export interface FastifyLikeReply {
  code(status: number): FastifyLikeReply;
  headers(h: Record<string, string>): FastifyLikeReply;
  send(body: unknown): unknown;
}

/**
 * A Fastify `onRequest`/`preHandler` hook: `fastify.addHook("onRequest",
 * fastifyHook(verifier))` (decorate the request with `sessiond` first:
 * `fastify.decorateRequest("sessiond", null)`).
 */
export function fastifyHook(verifier: Verifier) {
  return async (request: FastifyLikeRequest, reply: FastifyLikeReply): Promise<void> => {
    const r = await authenticate(verifier, request.headers.authorization);
    if ("claims" in r) {
      request.sessiond = r.claims;
      return;
    }
    await reply.code(r.refusal.status).headers(r.refusal.headers).send(r.refusal.body);
  };
}

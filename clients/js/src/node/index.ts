/**
 * `@sessiond/client/node`: verify sessiond access tokens locally in Node
 * services, with a revocation set kept by WatchRevocations, and HTTP
 * middleware.
 *
 * @module
 */
export { Verifier, type StalePolicy, type VerifierOptions, type VerifierStatus } from "./verifier.js";
export { verifyToken, verifyWithKey, tokenKid, MAX_TOKEN_SIZE, type AccessClaims, type Expectation } from "./verify.js";
export { parseKeyDocument, paserkPID, type PublishedKey } from "./keys.js";
export { RevocationSet, type Revocation, type RevocationEvent, type WatchMessage } from "./revocations.js";
export { authenticate, bearerToken, expressMiddleware, fastifyHook, type AuthenticatedRequest, type FastifyLikeReply, type FastifyLikeRequest, type Refusal } from "./middleware.js";
export { ConnectError } from "./connect.js";
export * from "../reasons.js";
export * from "../errors.js";

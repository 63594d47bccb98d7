/**
 * `@sessiond/client`: the shared vocabulary and errors. The browser client
 * is `@sessiond/client/browser`, the Node verifier and middleware
 * `@sessiond/client/node`.
 *
 * @module
 */
export * from "./reasons.js";
export * from "./errors.js";

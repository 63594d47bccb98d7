/**
 * `@sessiond/client/browser`: the session client for browsers.
 *
 * @module
 */
export { SessiondClient, type ClientOptions, type Device, type LoginInput, type Platform, type SessionInfo, type StorageLike } from "./client.js";
export { Emitter, type ClientEvents, type Listener, type SessionEndedDetail, type SessionEndSource, type TokensDetail } from "./events.js";
export { broadcastLock, defaultLock, localLock, webLocks, type BroadcastLockOptions, type ChannelFactory, type ChannelLike, type CrossTabLock, type LockManagerLike } from "./lock.js";
export * from "../reasons.js";
export * from "../errors.js";

/**
 * The node's published verification keys (GET /.well-known/paserk).
 */
import { blake2b } from "@noble/hashes/blake2.js";
import { PublicProtocol } from "paseto";
import { ImportPublicKeyFactory, type PublicKey } from "paseto/v4/public";

const v4 = new PublicProtocol(ImportPublicKeyFactory);

/** A key document bigger than this is refused (as the Go SDK does). */
export const MAX_KEYS_BODY = 1 << 20;

/** One published key. */
export interface PublishedKey {
  kid: string;
  key: PublicKey;
  /** ms since the epoch after which tokens of this key are refused; undefined: no limit. */
  notAfter: number | undefined;
}

const enc = new TextEncoder();

/**
 * The PASERK k4.pid of a k4.public PASERK: "k4.pid." + base64url of
 * BLAKE2b-264("k4.pid." + paserk) (PASERK operations/ID.md).
 */
export function paserkPID(paserk: string): string {
  const h = "k4.pid.";
  return h + Buffer.from(blake2b(enc.encode(h + paserk), { dkLen: 33 })).toString("base64url");
}

/** Parses and checks a /.well-known/paserk document: every kid must be its key's k4.pid. */
export async function parseKeyDocument(doc: unknown): Promise<Map<string, PublishedKey>> {
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new Error("sessiond: key document has no keys array");
  const out = new Map<string, PublishedKey>();
  for (const [i, k] of keys.entries()) {
    const { kid, paserk, not_after: na, notAfter } = (k ?? {}) as Record<string, unknown>;
    if (typeof kid !== "string" || typeof paserk !== "string" || !paserk.startsWith("k4.public.")) {
      throw new Error(`sessiond: key ${i}: want kid and a k4.public paserk`);
    }
    const pid = paserkPID(paserk);
    if (pid !== kid) throw new Error(`sessiond: key ${i}: kid ${JSON.stringify(kid)} is not the key's k4.pid ${JSON.stringify(pid)}`);
    const key = await v4.ImportPublicKey(paserk as `k4.public.${string}`);
    const until = na ?? notAfter;
    let notAfterMs: number | undefined;
    if (typeof until === "string" && !until.startsWith("0001-01-01")) {
      notAfterMs = Date.parse(until);
      if (Number.isNaN(notAfterMs)) throw new Error(`sessiond: key ${i}: not_after ${JSON.stringify(until)} is not a time`);
    }
    out.set(kid, { kid, key, notAfter: notAfterMs });
  }
  return out;
}

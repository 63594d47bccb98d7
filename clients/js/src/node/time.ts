/** RFC 3339 times at nanosecond precision (Go writes iat with nanoseconds; user cut-offs compare exactly). */

const re = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i;

/** Parses an RFC 3339 time to nanoseconds since the epoch, or undefined. */
export function rfc3339Nanos(s: unknown): bigint | undefined {
  if (typeof s !== "string") return undefined;
  const m = re.exec(s);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  const frac = BigInt((m[2] ?? "").padEnd(9, "0") || "0");
  return BigInt(ms) * 1_000_000n + frac;
}

/** Milliseconds to nanoseconds. */
export function msToNanos(ms: number): bigint {
  return BigInt(Math.trunc(ms)) * 1_000_000n;
}

/**
 * The Connect protocol's streaming JSON wire (connectrpc.com/docs/protocol),
 * enough for a server stream: one enveloped request, enveloped messages
 * back, then an end-stream envelope carrying the error, if any.
 */

/** A Connect error: code (e.g. `unavailable`, `resource_exhausted`) and message. */
export class ConnectError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`sessiond: connect ${code}: ${message}`);
    this.name = "ConnectError";
    this.code = code;
  }
}

/** A message bigger than this ends the stream (the server's messages are far smaller). */
const MAX_MESSAGE = 16 << 20;

function envelope(json: unknown): Uint8Array<ArrayBuffer> {
  const body = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

/**
 * Calls a server-streaming procedure and yields its messages. Aborting
 * signal ends the stream. Throws {@link ConnectError} for an error the
 * server sent, and the fetch error for a broken connection.
 */
export async function* serverStream(
  doFetch: typeof fetch,
  url: string,
  request: unknown,
  headers: Record<string, string>,
  signal: AbortSignal,
): AsyncGenerator<Record<string, unknown>> {
  const res = await doFetch(url, {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/connect+json", "Connect-Protocol-Version": "1" },
    body: envelope(request),
    signal,
  });
  if (res.status !== 200) {
    let code = `http_${res.status}`;
    let message = res.statusText;
    try {
      const b = (await res.json()) as { code?: string; message?: string };
      code = b.code ?? code;
      message = b.message ?? message;
    } catch {
      // not a Connect error body
    }
    throw new ConnectError(code, message);
  }
  if (!res.body) throw new ConnectError("internal", "no response body");
  const reader = res.body.getReader();
  let buf = new Uint8Array(0);
  const dec = new TextDecoder();
  try {
    for (;;) {
      while (buf.length >= 5) {
        const flags = buf[0]!;
        const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1);
        if (len > MAX_MESSAGE) throw new ConnectError("resource_exhausted", `message of ${len} bytes`);
        if (buf.length < 5 + len) break;
        const data = buf.subarray(5, 5 + len);
        buf = buf.slice(5 + len);
        if (flags & 0x01) throw new ConnectError("internal", "compressed message not asked for");
        const obj = (len ? JSON.parse(dec.decode(data)) : {}) as Record<string, unknown>;
        if (flags & 0x02) {
          const err = obj.error as { code?: string; message?: string } | undefined;
          if (err) throw new ConnectError(err.code ?? "unknown", err.message ?? "");
          return;
        }
        yield obj;
      }
      const { done, value } = await reader.read();
      if (done) throw new ConnectError("unavailable", "the stream ended without an end-stream message");
      const next = new Uint8Array(buf.length + value.length);
      next.set(buf);
      next.set(value, buf.length);
      buf = next;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** Calls a unary procedure with the Connect JSON codec. */
export async function unary(doFetch: typeof fetch, url: string, request: unknown, headers: Record<string, string>, signal?: AbortSignal): Promise<Record<string, unknown>> {
  const res = await doFetch(url, {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
    body: JSON.stringify(request),
    signal: signal ?? null,
  });
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.status !== 200) throw new ConnectError(typeof body.code === "string" ? body.code : `http_${res.status}`, typeof body.message === "string" ? body.message : res.statusText);
  return body;
}

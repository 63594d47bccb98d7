// The shared vocabulary and the browser client's session-end surface.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { SESSION_CLOSE_CODES, sessionEndFromClose, parseEndReason, EndReason, CheckReason } from "../dist/index.js";
import { SessiondClient, localLock } from "../dist/browser/index.js";

test("WebSocket close codes map to session ends in one table", () => {
  // The codes of clients/go/wsguard.
  assert.equal(sessionEndFromClose(4002, "session_ended: forced_out"), "forced_out");
  assert.equal(sessionEndFromClose(4003), "refresh_reuse");
  assert.equal(sessionEndFromClose(4004, "user_logged_out_everywhere"), "logout_all");
  assert.equal(sessionEndFromClose(4005, "revoked"), "admin_revoked");
  assert.equal(sessionEndFromClose(4006), "replaced");
  assert.equal(sessionEndFromClose(4001, "session_ended: logout"), "logout");
  assert.equal(sessionEndFromClose(4001, "session_ended"), "unknown");
  assert.equal(sessionEndFromClose(1000), undefined, "a normal close is no session end");
  assert.equal(sessionEndFromClose(1006), undefined, "a dropped connection is no session end");
  // Every end reason the server may name is reachable: by its code, or by 4001 with the reason text.
  const reasons = new Set(Object.values(SESSION_CLOSE_CODES));
  for (const r of Object.values(EndReason)) assert.ok(reasons.has(r) || sessionEndFromClose(4001, `session_ended: ${r}`) === r, r);
  assert.equal(parseEndReason("END_REASON_LOGOUT_ALL"), "logout_all");
  assert.equal(parseEndReason("nonsense"), undefined);
});

test("a session-end WebSocket close ends the session and tells the other tabs", async () => {
  const ns = `t-${Math.random().toString(36).slice(2)}`;
  const body = JSON.stringify({ access_token: "v4.public.x", token_type: "Bearer", expires_in: 900, session_id: "s1" });
  const fakeFetch = async () => new Response(body, { status: 200, headers: { "Content-Type": "application/json" } });
  const mk = () => new SessiondClient({ baseUrl: "http://127.0.0.1:1", fetch: fakeFetch, storage: null, lock: localLock(), namespace: ns, channel: (n) => new BroadcastChannel(n) });
  const a = mk();
  const b = mk();
  const seen = { a: [], b: [] };
  a.on("session-ended", (d) => seen.a.push(d));
  const gotEnd = new Promise((r) => b.on("session-ended", (d) => r(d)));
  const gotToken = new Promise((r) => b.on("tokens", r));
  const alive = setInterval(() => {}, 1000); // the clients' channels are unref'd: keep the loop up while waiting for them
  try {
    await a.login({ email: "x@example.com", password: "pw" });
    await gotToken;
    assert.equal(a.handleWebSocketClose({ code: 1006, reason: "" }), false);
    assert.equal(a.handleWebSocketClose({ code: 4002, reason: "session_ended: forced_out" }), true);
    assert.deepEqual(seen.a, [{ reason: "forced_out", source: "websocket" }]);
    assert.deepEqual(await gotEnd, { reason: "forced_out", source: "other-tab" });
    assert.equal(b.session, undefined);
  } finally {
    clearInterval(alive);
    a.close();
    b.close();
  }
});

// protoValues returns the wire strings of a proto enum's values (its names
// without prefix, lower case, UNSPECIFIED left out) from the .proto file.
function protoValues(file, enumName, prefix) {
  const src = readFileSync(new URL(file, import.meta.url), "utf8");
  const body = src.slice(src.indexOf(`enum ${enumName} {`)).split("}")[0];
  return [...body.matchAll(new RegExp(`\\b${prefix}([A-Z_]+) = \\d+;`, "g"))]
    .map((m) => m[1].toLowerCase())
    .filter((v) => v !== "unspecified")
    .sort();
}

test("the check and end reasons are exactly the proto enums' (one vocabulary)", () => {
  assert.deepEqual(Object.values(CheckReason).sort(), protoValues("../../../proto/sessiond/session/v1/reason.proto", "CheckReason", "CHECK_REASON_"));
  assert.deepEqual(Object.values(EndReason).sort(), protoValues("../../../proto/sessiond/store/v1/store.proto", "EndReason", "END_REASON_"));
  assert.equal(sessionEndFromClose(4005, "account_suspended: account_suspended"), "account_suspended");
});

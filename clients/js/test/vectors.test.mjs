// The Node verifier against sessiond's Go verifier: the same answers on the
// token vectors gen.go wrote with sessiond's own token package, and the
// official PASERK k4 vectors the Go side tests with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseKeyDocument, paserkPID, verifyToken, TokenRejectedError } from "../dist/node/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const vectors = JSON.parse(readFileSync(join(here, "../../testdata/token-vectors/access-v4.json"), "utf8"));
// The Go SDK token package's testdata.
const goTestdata = join(here, "../../go/token/testdata");

test("access token vectors: the Go verifier's answers", async (t) => {
  const keys = await parseKeyDocument({ keys: vectors.keys });
  const expect = { issuer: vectors.issuer, audience: vectors.audience, now: new Date(vectors.now), maxLifetimeSeconds: vectors.max_lifetime_seconds };
  for (const v of vectors.vectors) {
    await t.test(v.name, async () => {
      let got = "";
      let claims;
      try {
        claims = await verifyToken(v.token, keys, expect);
      } catch (err) {
        if (!(err instanceof TokenRejectedError)) throw err;
        got = err.reason;
      }
      assert.equal(got, v.reason, `got ${JSON.stringify(got)}, want ${JSON.stringify(v.reason)}`);
      if (v.claims) {
        assert.equal(claims.subject, v.claims.subject);
        assert.equal(claims.sessionId, v.claims.sessionId);
        assert.equal(claims.tokenId, v.claims.tokenId);
        assert.deepEqual(claims.roles, v.claims.roles);
        assert.equal(claims.orgId, v.claims.orgId);
        assert.equal(claims.country, v.claims.country);
        assert.equal(claims.platform, v.claims.platform);
        // iat keeps its nanoseconds: a logout-everywhere cut-off compares with them.
        const [, frac] = /\.(\d+)Z$/.exec(v.claims.issuedAt);
        assert.equal(claims.issuedAtNanos % 1_000_000_000n, BigInt(frac.padEnd(9, "0")));
      }
    });
  }
});

test("PASERK k4.pid vectors (paseto-standard test-vectors)", () => {
  const pid = JSON.parse(readFileSync(join(goTestdata, "k4.pid.json"), "utf8"));
  const pub = JSON.parse(readFileSync(join(goTestdata, "k4.public.json"), "utf8"));
  const paserkOf = new Map(pub.tests.map((v) => [v.key, v.paserk]));
  let checked = 0;
  for (const v of pid.tests) {
    if (v["expect-fail"] || !paserkOf.has(v.key)) continue;
    assert.equal(paserkPID(paserkOf.get(v.key)), v.paserk, v.name);
    checked++;
  }
  assert.ok(checked >= 2, `checked ${checked} vectors`);
});

test("a key document whose kid is not its key's k4.pid is refused", async () => {
  const k = vectors.keys[0];
  await assert.rejects(parseKeyDocument({ keys: [{ kid: "k4.pid." + "A".repeat(44), paserk: k.paserk }] }), /is not the key's k4.pid/);
  await assert.rejects(parseKeyDocument({ keys: [{ kid: k.kid, paserk: "k3.public.AAAA" }] }), /k4.public/);
});

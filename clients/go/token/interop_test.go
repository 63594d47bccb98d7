package token

import (
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// These tests verify our tokens with implementations that share no code
// with ours: Python's `cryptography` (OpenSSL) for the refresh JWT and
// Node's built-in crypto (OpenSSL) with a hand-written PAE for the PASETO.
// They skip, naming the missing tool, where it is not installed.

const pyVerifyJWT = `
import base64, json, sys
tok, x = sys.argv[1], sys.argv[2]
def d(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
h, p, s = tok.split(".")
try:
    import jwt  # PyJWT, when present
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    key = Ed25519PublicKey.from_public_bytes(d(x))
    claims = jwt.decode(tok, key, algorithms=["EdDSA"], audience=json.loads(d(p))["aud"], options={"verify_exp": False, "verify_iat": False})
    print("pyjwt", claims["token_use"], json.loads(d(h))["kid"])
except ImportError:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    Ed25519PublicKey.from_public_bytes(d(x)).verify(d(s), (h + "." + p).encode())
    print("cryptography", json.loads(d(p))["token_use"], json.loads(d(h))["kid"])
`

func TestInteropRefreshJWTWithPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	if exec.Command(py, "-c", "import cryptography").Run() != nil {
		t.Skip("python3 module cryptography not installed (PyJWT needs it too)")
	}
	a := newSigner(5)
	tok := must(SignRefresh(sampleRefresh(), a.kid, a.priv))
	x := base64.RawURLEncoding.EncodeToString(a.pub)
	out, err := exec.Command(py, "-c", pyVerifyJWT, tok, x).CombinedOutput()
	if err != nil {
		t.Fatalf("python refused our refresh JWT: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || f[1] != "refresh" || f[2] != a.kid {
		t.Fatalf("python output %q, want \"<lib> refresh %s\"", out, a.kid)
	}
	t.Logf("verified with %s", f[0])
	// A tampered copy must be refused by Python too (the check can fail).
	bad := tok[:len(tok)-3] + "AAA"
	if bad == tok {
		bad = tok[:len(tok)-3] + "BBB"
	}
	if out, err := exec.Command(py, "-c", pyVerifyJWT, bad, x).CombinedOutput(); err == nil {
		t.Fatalf("python accepted a tampered JWT: %s", out)
	}
}

const nodeVerifyPASETO = `
const crypto = require("crypto");
const [tok, x] = process.argv.slice(1);
const parts = tok.split(".");
if (parts.length !== 4 || parts[0] !== "v4" || parts[1] !== "public") { console.log("shape"); process.exit(2); }
const payload = Buffer.from(parts[2], "base64url"), footer = Buffer.from(parts[3], "base64url");
const body = payload.subarray(0, payload.length - 64), sig = payload.subarray(payload.length - 64);
function le64(n) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; }
function pae(...ps) { return Buffer.concat([le64(ps.length), ...ps.flatMap(p => [le64(p.length), p])]); }
const m2 = pae(Buffer.from("v4.public."), body, footer, Buffer.alloc(0));
const key = crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
if (!crypto.verify(null, m2, key, sig)) { console.log("badsig"); process.exit(1); }
const claims = JSON.parse(body.toString());
console.log(JSON.parse(footer.toString()).kid, claims.sub, claims.exp);
`

func TestInteropPASETOWithNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	a := newSigner(6)
	c := sampleAccess()
	tok := must(SignAccess(c, a.kid, a.priv))
	x := JWK(a.kid, a.pub).X
	out, err := exec.Command(node, "-e", nodeVerifyPASETO, tok, x).CombinedOutput()
	if err != nil {
		t.Fatalf("node refused our PASETO: %v\n%s", err, out)
	}
	want := a.kid + " " + c.Subject + " " + c.Expiration.UTC().Format(time.RFC3339)
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("node output %q, want %q", got, want)
	}
	if out, err := exec.Command(node, "-e", nodeVerifyPASETO, flipPayloadChar(tok), x).CombinedOutput(); err == nil {
		t.Fatalf("node accepted a tampered PASETO: %s", out)
	}
}

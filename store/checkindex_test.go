package store

import (
	"bytes"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// TestTokenStatusByIDForm checks that TokenStatus answers exactly for
// session ids in authsvc's form (indexed by their 18 bytes) and for ids
// that look like it but are not — each must be indexed by its string, or
// it would share a key with another id — through open, end, reopen,
// restore and purge.
func TestTokenStatusByIDForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	canon := canonicalID(t0, rng)
	for strings.ToUpper(canon) == canon || canon[28]%2 != 0 {
		canon = canonicalID(t0, rng)
	}
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	lastBit := canon[:28] + string(alphabet[strings.IndexByte(alphabet, canon[28])|1])
	type session struct {
		name, id string
		packed   bool              // indexed by its 18 bytes
		end      storev1.EndReason // ended with this reason (0: live)
		notBef   int64             // a not-before cut-off in its record
	}
	n := t0.UnixNano()
	cases := []*session{
		{name: "canonical", id: canon, packed: true},
		{name: "canonical, ended", id: canonicalID(t0.Add(time.Second), rng), packed: true, end: storev1.EndReason_END_REASON_FORCED_OUT},
		{name: "canonical with a not-before", id: canonicalID(t0.Add(2*time.Second), rng), notBef: n + 5},
		{name: "unused last bit set", id: lastBit, end: storev1.EndReason_END_REASON_LOGOUT},
		{name: "upper case", id: strings.ToUpper(canon), end: storev1.EndReason_END_REASON_REPLACED},
		{name: "28 characters", id: canon[:28], end: storev1.EndReason_END_REASON_ADMIN_REVOKED},
		{name: "30 characters", id: canon + "0"},
		{name: "w, outside the alphabet", id: canon[:3] + "w" + canon[4:], end: storev1.EndReason_END_REASON_LOGOUT},
		{name: "dash", id: canon[:3] + "-" + canon[4:]},
		{name: "tests' id", id: "s1", end: storev1.EndReason_END_REASON_SSO_ENDED},
	}
	path := filepath.Join(t.TempDir(), "forms.db")
	st, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	apply := func(cmd *storev1.Command) {
		t.Helper()
		if res := applyOne(t, st, mustEncode(t, cmd)); res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			t.Fatalf("apply: %s %s", res.GetCode(), res.GetMessage())
		}
	}
	// Session i expires at t0 + i+1 hours.
	for i, c := range cases {
		cmd := openCmd(t0, c.id, c.id+"-user", storev1.Platform_PLATFORM_WEB, "d", c.id+"-tok", time.Duration(i+1)*time.Hour, 24*time.Hour, false)
		cmd.GetOpenSession().GetSession().NotBeforeUnixNano = c.notBef
		apply(cmd)
	}
	ended := map[string]bool{}
	for _, c := range cases {
		if c.end != 0 {
			apply(&storev1.Command{NowUnixNano: n + 10, Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: c.id, Reason: c.end}}})
			ended[c.id] = true
		}
	}
	// expect checks every session's answer at now: found while it has not
	// expired, with its own end and not-before, and where it is indexed.
	expect := func(st *Store, now time.Time, stage string) {
		t.Helper()
		for i, c := range cases {
			got, err := st.TokenStatus(c.id, "u", "j", now)
			var want TokenStatus
			if now.Before(t0.Add(time.Duration(i+1) * time.Hour)) {
				want = TokenStatus{SessionFound: true, SessionEnded: c.end != 0, EndReason: c.end, SessionNotBefore: c.notBef}
			}
			if err != nil || got != want {
				t.Errorf("%s: %s (%q): TokenStatus = %+v, %v; want %+v", stage, c.name, c.id, got, err, want)
			}
			if !want.SessionFound {
				continue
			}
			inPacked := false
			if k, ok := canonicalKey(c.id); ok {
				_, inPacked = st.idx.sessions.packed[k]
			}
			_, inOther := st.idx.sessions.other[c.id]
			if inPacked != c.packed || inOther == c.packed {
				t.Errorf("%s: %s (%q): in the packed map %v, in the other %v; want packed %v", stage, c.name, c.id, inPacked, inOther, c.packed)
			}
		}
	}
	expect(st, t0.Add(time.Minute), "applied")
	expect(st, t0.Add(5*time.Hour+time.Minute), "applied, 5 expired")
	indexMatchesDisk(t, st)

	snap := persist(t, st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	expect(st, t0.Add(time.Minute), "reopened")
	restored := openTemp(t, "restored.db")
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	expect(restored, t0.Add(time.Minute), "restored")

	// Purge the first five (expired at t0+5h): they leave the index, so
	// even a check at t0 no longer finds them.
	apply(&storev1.Command{NowUnixNano: t0.Add(5*time.Hour + time.Minute).UnixNano(), Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 1000}}})
	indexMatchesDisk(t, st)
	if got := st.idx.sessions.len(); got != len(cases)-5 {
		t.Errorf("after the purge the index holds %d sessions, want %d", got, len(cases)-5)
	}
	for i, c := range cases {
		got, err := st.TokenStatus(c.id, "u", "j", t0.Add(time.Minute))
		if err != nil || got.SessionFound != (i >= 5) {
			t.Errorf("purged: %s (%q): TokenStatus = %+v, %v; want found %v", c.name, c.id, got, err, i >= 5)
		}
	}
}

// TestSessionIndexMovesBetweenMaps checks that a canonical id whose fields
// stop or start fitting the packed form moves between the two maps, never
// answering from a stale entry, and that an end reason above 255 is kept.
func TestSessionIndexMovesBetweenMaps(t *testing.T) {
	id := canonicalID(t0, rand.New(rand.NewPCG(5, 6)))
	x := newCheckIndex()
	exp := t0.Add(time.Hour).UnixNano()
	for i, f := range []sessionFields{
		{idle: exp, absolute: exp + 1},
		{idle: exp, absolute: exp, notBefore: 7},
		{idle: exp + 5, absolute: exp + 2, ended: 1, reason: storev1.EndReason_END_REASON_LOGOUT},
		{idle: exp, absolute: exp, ended: 1, reason: 300},
		{idle: exp, absolute: exp},
	} {
		x.apply([]indexOp{{bucket: iSessions, key: id, sess: f}})
		want := TokenStatus{SessionFound: true, SessionEnded: f.ended != 0, EndReason: f.reason, SessionNotBefore: f.notBefore}
		if got := x.status(id, "", "", min(f.idle, f.absolute)-1); got != want {
			t.Errorf("step %d: status = %+v, want %+v", i, got, want)
		}
		if got := x.status(id, "", "", min(f.idle, f.absolute)); got.SessionFound {
			t.Errorf("step %d: found at its expiry: %+v", i, got)
		}
		if n := x.sessions.len(); n != 1 {
			t.Errorf("step %d: the index holds %d entries, want 1", i, n)
		}
	}
	x.apply([]indexOp{{bucket: iSessions, key: id, del: true}})
	if got := x.status(id, "", "", 0); got.SessionFound || x.sessions.len() != 0 {
		t.Errorf("after delete: status %+v, %d entries", got, x.sessions.len())
	}
}

// FuzzCanonicalKey checks canonicalKey against encoding/base32: an id it
// accepts encodes back to itself, and every encoding of 18 bytes is
// accepted with those bytes.
func FuzzCanonicalKey(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 20 {
		f.Add(canonicalID(t0, rng))
	}
	for _, s := range []string{"", "s1", "00000000000000000000000000000", "vvvvvvvvvvvvvvvvvvvvvvvvvvvvv", "vvvvvvvvvvvvvvvvvvvvvvvvvvvvu",
		"0000000000000000000000000000w", "0000000000000000000000000000V", "000000000000000000000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if k, ok := canonicalKey(id); ok {
			if back := sortableEncoding.EncodeToString(k[:]); back != id {
				t.Fatalf("canonicalKey(%q) accepted, but its bytes encode to %q", id, back)
			}
			if kb, okb := canonicalKey([]byte(id)); kb != k || !okb {
				t.Fatalf("canonicalKey of %q as bytes = %x, %v; as string %x, true", id, kb, okb, k)
			}
		}
		if b, err := sortableEncoding.DecodeString(id); err == nil && len(b) == 18 && sortableEncoding.EncodeToString(b) == id {
			if k, ok := canonicalKey(id); !ok || !bytes.Equal(k[:], b) {
				t.Fatalf("canonicalKey(%q) = %x, %v; want %x, true", id, k, ok, b)
			}
		}
	})
}

package keys

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func h(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }

// sealedInfo returns a KeyInfo for a deterministic key sealed under kek.
func sealedInfo(t *testing.T, kek KEK, fill byte, kid string, act, ret, exp time.Time) KeyInfo {
	t.Helper()
	priv := testKey(t, fill)
	sealed, err := Seal(kek, priv, []byte(kid))
	if err != nil {
		t.Fatal(err)
	}
	return KeyInfo{Kid: kid, Purpose: "sign", Public: priv.Public().(ed25519.PublicKey), SealedPrivate: sealed,
		CreatedAt: act.Add(-time.Hour), ActivatesAt: act, RetiresAt: ret, ExpiresAt: exp}
}

func TestKeyringCurrentAndPublished(t *testing.T) {
	kek := testKEK(t, 1)
	infos := []KeyInfo{
		sealedInfo(t, kek, 1, "old", h(0), h(24), h(48)),
		sealedInfo(t, kek, 2, "cur", h(24), h(48), h(72)),
		sealedInfo(t, kek, 3, "next", h(48), h(72), h(96)),
	}
	r, err := NewKeyring(infos, kek)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		at        time.Time
		wantKid   string
		published []string
	}{
		{h(0), "old", []string{"next", "cur", "old"}},
		{h(23), "old", []string{"next", "cur", "old"}},
		{h(24), "cur", []string{"next", "cur", "old"}},
		{h(47), "cur", []string{"next", "cur", "old"}},
		{h(48), "next", []string{"next", "cur"}},
		{h(71), "next", []string{"next", "cur"}},
		{h(72), "", []string{"next"}},
		{h(96), "", nil},
		{h(-1), "", []string{"next", "cur", "old"}},
	}
	for _, c := range cases {
		kid, priv, err := r.Current(c.at)
		if c.wantKid == "" {
			if !errors.Is(err, ErrNoSigningKey) {
				t.Errorf("at %v: Current = %q, %v; want ErrNoSigningKey", c.at, kid, err)
			}
		} else {
			if err != nil || kid != c.wantKid {
				t.Errorf("at %v: Current = %q, %v; want %q", c.at, kid, err, c.wantKid)
			} else if pub, _ := r.Public(kid); !pub.Equal(priv.Public()) {
				t.Errorf("at %v: Current private key does not match Public(%q)", c.at, kid)
			}
		}
		pub := r.Published(c.at)
		var got []string
		for _, p := range pub {
			got = append(got, p.Kid)
		}
		if len(got) != len(c.published) {
			t.Errorf("at %v: Published = %v, want %v", c.at, got, c.published)
			continue
		}
		for i := range got {
			if got[i] != c.published[i] {
				t.Errorf("at %v: Published = %v, want %v", c.at, got, c.published)
				break
			}
		}
	}
	for _, p := range r.Published(h(0)) {
		if p.Kid == "cur" && !p.NotAfter.Equal(h(72)) {
			t.Errorf("Published cur NotAfter = %v, want %v", p.NotAfter, h(72))
		}
	}
}

func TestKeyringNeverRetiringAndTies(t *testing.T) {
	kek := testKEK(t, 1)
	a := sealedInfo(t, kek, 1, "a", h(0), time.Time{}, time.Time{})
	b := sealedInfo(t, kek, 2, "b", h(0), time.Time{}, time.Time{})
	b.CreatedAt = a.CreatedAt.Add(time.Minute)
	r, err := NewKeyring([]KeyInfo{a, b}, kek)
	if err != nil {
		t.Fatal(err)
	}
	if kid, _, err := r.Current(h(10000)); err != nil || kid != "b" {
		t.Fatalf("Current = %q, %v; want b (same activation, created later)", kid, err)
	}
}

func TestKeyringPublicOnly(t *testing.T) {
	kek := testKEK(t, 1)
	info := sealedInfo(t, kek, 1, "a", h(0), h(24), h(48))
	r, err := NewKeyring([]KeyInfo{info}, KEK{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Current(h(1)); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("Current without KEK: err = %v, want ErrNoSigningKey", err)
	}
	if pub, ok := r.Public("a"); !ok || !pub.Equal(info.Public) {
		t.Fatalf("Public(a) = %x, %v; want the key", pub, ok)
	}
	if _, ok := r.Public("zzz"); ok {
		t.Fatal("Public(unknown) ok = true")
	}
}

func TestNewKeyringRefuses(t *testing.T) {
	kek := testKEK(t, 1)
	good := sealedInfo(t, kek, 1, "a", h(0), h(24), h(48))
	swapped := sealedInfo(t, kek, 2, "b", h(0), h(24), h(48))
	swapped.SealedPrivate = good.SealedPrivate // blob of key a under kid b
	mismatch := sealedInfo(t, kek, 3, "c", h(0), h(24), h(48))
	mismatch.Public = good.Public
	cases := []struct {
		name  string
		infos []KeyInfo
		kek   KEK
		want  error
	}{
		{"empty kid", []KeyInfo{{Public: good.Public}}, kek, nil},
		{"duplicate kid", []KeyInfo{good, good}, kek, nil},
		{"short public", []KeyInfo{{Kid: "x", Public: good.Public[:31]}}, kek, nil},
		{"blob swapped between kids", []KeyInfo{good, swapped}, kek, ErrSealed},
		{"wrong KEK", []KeyInfo{good}, testKEK(t, 2), ErrSealed},
		{"private does not match public", []KeyInfo{mismatch}, kek, nil},
	}
	for _, c := range cases {
		_, err := NewKeyring(c.infos, c.kek)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: NewKeyring err = %v, want an error (wrapping %v)", c.name, err, c.want)
		}
	}
}

func TestPlanRotation(t *testing.T) {
	policy := RotationPolicy{SigningPeriod: 24 * time.Hour, PrePublish: time.Hour, MaxTokenLifetime: 30 * 24 * time.Hour}
	if err := policy.Validate(); err != nil {
		t.Fatal(err)
	}
	life := policy.MaxTokenLifetime
	key := func(act, ret, exp time.Time) KeyInfo {
		return KeyInfo{Kid: act.String(), ActivatesAt: act, RetiresAt: ret, ExpiresAt: exp}
	}
	cur := key(h(0), h(24), h(24).Add(life))
	cases := []struct {
		name     string
		keys     []KeyInfo
		now      time.Time
		need     bool
		activate time.Time
	}{
		{"no keys: sign at once", nil, h(5), true, h(5)},
		{"fresh key mid-period", []KeyInfo{cur}, h(10), false, time.Time{}},
		{"just before pre-publish window", []KeyInfo{cur}, h(23).Add(-time.Nanosecond), false, time.Time{}},
		{"pre-publish window opens", []KeyInfo{cur}, h(23), true, h(24)},
		{"inside pre-publish window", []KeyInfo{cur}, h(23).Add(30 * time.Minute), true, h(24)},
		{"successor already published", []KeyInfo{cur, key(h(24), h(48), h(48).Add(life))}, h(23).Add(30 * time.Minute), false, time.Time{}},
		{"late: current retired already", []KeyInfo{cur}, h(30), true, h(30)},
		{"late by a bit: no gap", []KeyInfo{key(h(0), h(24), h(24).Add(life))}, h(24).Add(-time.Minute), true, h(24)},
		{"only retired keys still published", []KeyInfo{key(h(-48), h(-24), h(-24).Add(life)), key(h(-24), h(0), h(0).Add(life))}, h(1), true, h(1)},
		{"expired keys ignored", []KeyInfo{key(h(0), time.Time{}, h(2))}, h(3), true, h(3)},
		{"never-retiring key: period from activation", []KeyInfo{key(h(0), time.Time{}, time.Time{})}, h(22), false, time.Time{}},
		{"never-retiring key: window opens", []KeyInfo{key(h(0), time.Time{}, time.Time{})}, h(23), true, h(24)},
		{"order of input irrelevant", []KeyInfo{key(h(24), h(48), h(48).Add(life)), cur}, h(47), true, h(48)},
	}
	for _, c := range cases {
		need, act, ret, exp := PlanRotation(c.keys, c.now, policy)
		if need != c.need || !act.Equal(c.activate) {
			t.Errorf("%s: PlanRotation = %v, activates %v; want %v, %v", c.name, need, act, c.need, c.activate)
			continue
		}
		if !need {
			if !ret.IsZero() || !exp.IsZero() {
				t.Errorf("%s: no key needed but times %v, %v are set", c.name, ret, exp)
			}
			continue
		}
		if want := act.Add(policy.SigningPeriod); !ret.Equal(want) {
			t.Errorf("%s: retiresAt = %v, want %v", c.name, ret, want)
		}
		if want := ret.Add(life); !exp.Equal(want) {
			t.Errorf("%s: expiresAt = %v, want %v", c.name, exp, want)
		}
	}
}

// TestRotationSimulation runs the planner every 10 minutes for 10 days and
// checks the properties users rely on: there is always exactly one signing
// key, every key is published at least PrePublish before it signs (after
// the first), and every key stays published MaxTokenLifetime after it stops
// signing.
func TestRotationSimulation(t *testing.T) {
	policy := RotationPolicy{SigningPeriod: 24 * time.Hour, PrePublish: time.Hour, MaxTokenLifetime: 2 * time.Hour}
	var keys []KeyInfo
	for now := t0; now.Before(t0.Add(240 * time.Hour)); now = now.Add(10 * time.Minute) {
		if need, act, ret, exp := PlanRotation(keys, now, policy); need {
			keys = append(keys, KeyInfo{Kid: now.String(), CreatedAt: now, ActivatesAt: act, RetiresAt: ret, ExpiresAt: exp})
		}
		signing := 0
		for _, k := range keys {
			if k.signsAt(now) {
				signing++
			}
		}
		if signing != 1 {
			t.Fatalf("at %v: %d keys may sign, want 1", now, signing)
		}
	}
	if len(keys) != 10 && len(keys) != 11 {
		t.Fatalf("created %d keys in 10 days with a 24h period, want 10 or 11", len(keys))
	}
	for i, k := range keys[1:] {
		if lead := k.ActivatesAt.Sub(k.CreatedAt); lead < policy.PrePublish {
			t.Errorf("key %d published %v before it signs, want >= %v", i+1, lead, policy.PrePublish)
		}
	}
	for i, k := range keys {
		if tail := k.ExpiresAt.Sub(k.RetiresAt); tail != policy.MaxTokenLifetime {
			t.Errorf("key %d published %v after retiring, want %v", i, tail, policy.MaxTokenLifetime)
		}
	}
}

func TestRotationPolicyValidate(t *testing.T) {
	for _, p := range []RotationPolicy{
		{},
		{SigningPeriod: time.Hour, PrePublish: time.Hour},
		{SigningPeriod: time.Hour, PrePublish: -1},
		{SigningPeriod: time.Hour, MaxTokenLifetime: -1},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", p)
		}
	}
}

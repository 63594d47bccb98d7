package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// t0 is the scripts' and tests' time origin.
var t0 = time.Unix(1_700_000_000, 0).UTC()

func openTemp(t testing.TB, name string) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), name), Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stateHash is SHA-256 over every bucket's name, keys and values, in bbolt
// order. With withMeta false the meta bucket (applied index) is left out.
func stateHash(t testing.TB, s *Store, withMeta bool) string {
	t.Helper()
	h := sha256.New()
	err := s.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !withMeta && string(name) == string(bucketMeta) {
				return nil
			}
			writeLP(h, name)
			return b.ForEach(func(k, v []byte) error {
				writeLP(h, k)
				writeLP(h, v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("hash state: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeLP(h interface{ Write([]byte) (int, error) }, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	_, _ = h.Write(n[:])
	_, _ = h.Write(b)
}

func tokHash(name string) []byte {
	h := sha256.Sum256([]byte("tok:" + name))
	return h[:]
}

func mustEncode(t testing.TB, c *storev1.Command) []byte {
	t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// applyOne applies data as the next log entry and decodes the result.
func applyOne(t testing.TB, s *Store, data []byte) *storev1.Result {
	t.Helper()
	idx := s.AppliedIndex() + 1
	resp := s.Apply(&raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data})
	b, ok := resp.([]byte)
	if !ok {
		t.Fatalf("Apply response is %T (%v), want []byte", resp, resp)
	}
	res, err := DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func openCmd(now time.Time, sid, user string, p storev1.Platform, dev, tok string, idle, abs time.Duration, force bool) *storev1.Command {
	return &storev1.Command{
		NowUnixNano: now.UnixNano(),
		Op: &storev1.Command_OpenSession{OpenSession: &storev1.OpenSession{
			Session: &storev1.Session{
				Id: sid, UserId: user, Platform: p, DeviceId: dev, CreatedUnixNano: now.UnixNano(),
				IdleExpiresUnixNano: now.Add(idle).UnixNano(), AbsoluteExpiresUnixNano: now.Add(abs).UnixNano(),
				Region: "eu", NodeId: "n1",
			},
			Refresh: &storev1.RefreshToken{IdHash: tokHash(tok), ExpiresUnixNano: now.Add(idle).UnixNano()},
			Force:   force,
		}},
	}
}

func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		<-tick.C
	}
}

func protoUnmarshal(b []byte, m *storev1.Command) error { return proto.Unmarshal(b, m) }

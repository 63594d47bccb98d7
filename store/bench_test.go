package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// benchDBVersion keys the cached 1M-session file; bump it when the layout
// or the generator changes.
const benchDBVersion = 1

const benchSessions = 1_000_000

// benchID is a random-looking but reproducible session id.
func benchID(i int) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i)*0x9e3779b97f4a7c15)
	return fmt.Sprintf("%x", tokHash(string(b[:]))[:12])
}

func benchOpen(b *testing.B, i int, now time.Time) []byte {
	c := openCmd(now, benchID(i), fmt.Sprintf("user-%d", i), storev1.Platform_PLATFORM_WEB, "dev", fmt.Sprintf("tok-%d", i),
		30*24*time.Hour, 90*24*time.Hour, false)
	c.GetOpenSession().GetSession().UserAgent = "Mozilla/5.0 (X11; Linux x86_64) bench"
	c.GetOpenSession().GetSession().ClientIp = "203.0.113.7"
	return mustEncode(b, c)
}

// BenchmarkApplyBatch measures OpenSession commands applied through
// ApplyBatch with real fsync (default Options), one transaction per batch.
func BenchmarkApplyBatch(b *testing.B) {
	for _, size := range []int{1, 64, 512} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			logs := make([]*raft.Log, b.N)
			for i := range logs {
				logs[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: benchOpen(b, i, t0)}
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < len(logs); i += size {
				resp := s.ApplyBatch(logs[i:min(i+size, len(logs))])
				if _, ok := resp[0].([]byte); !ok {
					b.Fatalf("response %v", resp[0])
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cmds/s")
		})
	}
}

// benchStore opens (building once and caching under os.TempDir) a store
// holding benchSessions sessions.
func benchStore(b *testing.B) *Store {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("sessiond-store-bench-v%d-%d.db", benchDBVersion, benchSessions))
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		b.Logf("building %s (once)", path)
		tmp := path + ".building"
		_ = os.Remove(tmp)
		s, err := Open(tmp, Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		const batch = 2000
		logs := make([]*raft.Log, 0, batch)
		for i := 0; i < benchSessions; i++ {
			logs = append(logs, &raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: benchOpen(b, i, t0)})
			if len(logs) == batch || i == benchSessions-1 {
				s.ApplyBatch(logs)
				logs = logs[:0]
			}
		}
		if err := s.Err(); err != nil {
			b.Fatal(err)
		}
		if err := s.db.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
	}
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	if got := s.AppliedIndex(); got != benchSessions {
		b.Fatalf("cached bench store has applied index %d, want %d; delete %s", got, benchSessions, path)
	}
	return s
}

// BenchmarkSessionLookup measures Store.Session on a store of 1M sessions.
func BenchmarkSessionLookup(b *testing.B) {
	s := benchStore(b)
	defer s.Close()
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = benchID((i * 7919) % benchSessions)
	}
	now := t0.Add(time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sess, err := s.Session(ids[i%len(ids)], now)
		if err != nil || sess == nil {
			b.Fatalf("Session: %v", err)
		}
	}
}

// BenchmarkEndSessionPages: EndSession (a logout, a revoke).
func BenchmarkEndSessionPages(b *testing.B) {
	benchPages(b, func(i int, now time.Time) *storev1.Command {
		return &storev1.Command{NowUnixNano: now.UnixNano(), RequestId: fmt.Sprintf("end-%d", i),
			Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: benchID(i), Reason: storev1.EndReason_END_REASON_LOGOUT}}}
	})
}

// BenchmarkRotatePages: RotateRefresh (a refresh).
func BenchmarkRotatePages(b *testing.B) {
	benchPages(b, func(i int, now time.Time) *storev1.Command {
		return &storev1.Command{NowUnixNano: now.UnixNano(), RequestId: fmt.Sprintf("rot-%d", i),
			Op: &storev1.Command_RotateRefresh{RotateRefresh: &storev1.RotateRefresh{
				OldIdHash: tokHash(fmt.Sprintf("tok-%d", i)), Next: &storev1.RefreshToken{IdHash: tokHash(fmt.Sprintf("tok-%d-2", i)), ExpiresUnixNano: now.Add(time.Hour).UnixNano()},
				IdleExpiresUnixNano: now.Add(time.Hour).UnixNano(),
			}}}
	})
}

// benchPages applies op to sessions of many users, 64 commands per
// transaction, on a store holding 50,000 sessions of as many users, and
// reports the pages each command made bbolt write (pages/cmd) besides the
// time: the figure the store's layout decides (docs/benchmarks.md).
func benchPages(b *testing.B, op func(i int, now time.Time) *storev1.Command) {
	const users = 50_000
	s, err := Open(filepath.Join(b.TempDir(), "pages.db"), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Unix(1_700_000_000, 0)
	idx := uint64(0)
	apply := func(cmds [][]byte) {
		logs := make([]*raft.Log, len(cmds))
		for i, c := range cmds {
			idx++
			logs[i] = &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: c}
		}
		s.ApplyBatch(logs)
	}
	var batch [][]byte
	for i := range users {
		batch = append(batch, benchOpen(b, i, now))
		if len(batch) == 256 {
			apply(batch)
			batch = batch[:0]
		}
	}
	apply(batch)
	if b.N > users {
		b.Fatalf("b.N %d > %d sessions", b.N, users)
	}
	// End them in an order unrelated to their ids or users.
	order := rand.New(rand.NewPCG(1, 2)).Perm(users)[:b.N]
	st := s.db.Stats()
	before := st.TxStats.GetWrite()
	b.ResetTimer()
	batch = batch[:0]
	for _, i := range order {
		batch = append(batch, mustEncode(b, op(i, now.Add(time.Second))))
		if len(batch) == 64 {
			apply(batch)
			batch = batch[:0]
		}
	}
	apply(batch)
	b.StopTimer()
	st = s.db.Stats()
	b.ReportMetric(float64(st.TxStats.GetWrite()-before)/float64(b.N), "pages/cmd")
}

// BenchmarkLifetimePages: b.N sessions of as many users are opened, each
// ended by its own EndSession (19 per transaction, the group commit of a
// revocation load), and all purged after they expired (512 per Purge, the
// daemon's batch). It reports the pages written per ended session at the
// end and at the purge, and in all, with the index rule of layout 3
// (an ended session leaves sessions_by_user at once, through layout3Txn)
// and of today's layout (it leaves it when purged).
func BenchmarkLifetimePages(b *testing.B) {
	for _, layout := range []int{3, 4} {
		b.Run(fmt.Sprintf("layout=%d", layout), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "life.db"), Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			now := time.Unix(1_700_000_000, 0)
			idx := uint64(0)
			apply := func(cmds [][]byte) {
				applyInTxn(b, s, layout == 3, idx+1, cmds...)
				idx += uint64(len(cmds))
			}
			inBatches := func(n, size int, cmd func(i int) []byte) {
				var batch [][]byte
				for i := range n {
					batch = append(batch, cmd(i))
					if len(batch) == size {
						apply(batch)
						batch = batch[:0]
					}
				}
				if len(batch) > 0 {
					apply(batch)
				}
			}
			pages := func() int64 { st := s.db.Stats(); return st.TxStats.GetWrite() }
			inBatches(b.N, 256, func(i int) []byte {
				return mustEncode(b, openCmd(now, fmt.Sprintf("s%012d", i), benchID(i), storev1.Platform_PLATFORM_WEB, "dev", fmt.Sprintf("tok-%d", i), time.Hour, 2*time.Hour, false))
			})
			order := rand.New(rand.NewPCG(1, 2)).Perm(b.N)
			b.ResetTimer()
			p0 := pages()
			inBatches(b.N, 19, func(i int) []byte {
				return mustEncode(b, &storev1.Command{NowUnixNano: now.Add(time.Second).UnixNano(),
					Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: fmt.Sprintf("s%012d", order[i]), Reason: storev1.EndReason_END_REASON_LOGOUT}}})
			})
			p1 := pages()
			later := now.Add(3 * time.Hour)
			for s.HasExpired(later) {
				apply([][]byte{mustEncode(b, &storev1.Command{NowUnixNano: later.UnixNano(), Op: &storev1.Command_Purge{Purge: &storev1.Purge{Limit: 512}}})})
			}
			p2 := pages()
			b.StopTimer()
			b.ReportMetric(float64(p1-p0)/float64(b.N), "end-pages/session")
			b.ReportMetric(float64(p2-p1)/float64(b.N), "purge-pages/session")
			b.ReportMetric(float64(p2-p0)/float64(b.N), "pages/session")
		})
	}
}

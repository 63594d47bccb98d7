package store

import (
	"encoding/base32"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// sortableEncoding is authsvc's id encoding (authsvc/service.go).
var sortableEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// canonicalID is an id as authsvc's sortableID mints them: now in
// nanoseconds, big-endian, then 10 random bytes, 29 characters.
func canonicalID(now time.Time, rng *rand.Rand) string {
	var b [18]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	binary.BigEndian.PutUint64(b[8:16], rng.Uint64())
	binary.BigEndian.PutUint16(b[16:], uint16(rng.Uint32()))
	return sortableEncoding.EncodeToString(b[:])
}

// BenchmarkCheckIndexMemory reports the live heap the check index holds
// per session (B/session: HeapAlloc after a GC, before and after) for
// benchSessions live sessions put through apply in batches of 1,000, as
// committed transactions do; ids=canonical are authsvc's ids, ids=other
// 24 hex characters (the other store benchmarks' ids). Run it with
// -benchtime 1x: every iteration builds a whole index.
func BenchmarkCheckIndexMemory(b *testing.B) {
	for _, kind := range []string{"canonical", "other"} {
		b.Run("ids="+kind, func(b *testing.B) {
			var perSession float64
			for range b.N {
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				before := ms.HeapAlloc
				x, _ := benchCheckIndex(kind == "canonical")
				runtime.GC()
				runtime.ReadMemStats(&ms)
				runtime.KeepAlive(x)
				perSession = float64(int64(ms.HeapAlloc)-int64(before)) / benchSessions
			}
			b.ReportMetric(perSession, "B/session")
		})
	}
}

// BenchmarkCheckIndexStatus measures a check's lookups in an index of
// benchSessions sessions, for every 10th id in random order (copies, as
// ids parsed from tokens are). chained: each lookup waits for the one
// before, as checks arriving one by one do (the latency of one check);
// independent: back to back, the CPU overlaps their cache misses.
func BenchmarkCheckIndexStatus(b *testing.B) {
	for _, kind := range []string{"canonical", "other"} {
		x, ids := benchCheckIndex(kind == "canonical")
		rand.New(rand.NewPCG(3, 4)).Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for i := range ids {
			ids[i] = strings.Clone(ids[i])
		}
		now := t0.UnixNano()
		runtime.GC() // not during the loops: the build's garbage
		b.Run("ids="+kind+"/chained", func(b *testing.B) {
			b.ReportAllocs()
			j := 0
			for b.Loop() {
				st := x.status(ids[j], "u", "j", now)
				j = (j + 1 + int(st.SessionNotBefore&1)) % len(ids) // depends on the lookup
			}
		})
		b.Run("ids="+kind+"/independent", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if st := x.status(ids[i], "u", "j", now); !st.SessionFound {
					b.Fatal("session not found")
				}
				i = (i + 1) % len(ids)
			}
		})
	}
}

// benchCheckIndex builds an index of benchSessions live sessions through
// apply, and returns it with every 10th id.
func benchCheckIndex(canonical bool) (*checkIndex, []string) {
	x := newCheckIndex()
	rng := rand.New(rand.NewPCG(1, 2))
	ops := make([]indexOp, 0, 1000)
	var sample []string
	for i := range benchSessions {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		id := benchID(i)
		if canonical {
			id = canonicalID(now, rng)
		}
		if i%10 == 0 {
			sample = append(sample, id)
		}
		ops = append(ops, indexOp{bucket: iSessions, key: id, sess: sessionFields{
			idle: now.Add(30 * 24 * time.Hour).UnixNano(), absolute: now.Add(90 * 24 * time.Hour).UnixNano()}})
		if len(ops) == cap(ops) || i == benchSessions-1 {
			x.apply(ops)
			clear(ops)
			ops = ops[:0]
		}
	}
	return x, sample
}

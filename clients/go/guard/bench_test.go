package guard

import (
	"context"
	"testing"
)

// BenchmarkCheckCached is a repeated token: hash, cache lookup, revocation
// lookups.
func BenchmarkCheckCached(b *testing.B) {
	g, _, k, _ := startedGuard(b, nil)
	tok := k.mint(b, nil)
	ctx := context.Background()
	if _, err := g.Check(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Check(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckCachedParallel is BenchmarkCheckCached from all cores.
func BenchmarkCheckCachedParallel(b *testing.B) {
	g, _, k, _ := startedGuard(b, nil)
	tok := k.mint(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.Check(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCheckUncached verifies the signature every time (cache off).
func BenchmarkCheckUncached(b *testing.B) {
	g, _, k, _ := startedGuard(b, func(c *Config) { c.CacheSize = -1 })
	tok := k.mint(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Check(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/authsvc/keys"
	"github.com/sessiond/sessiond/authsvc/password"
	"github.com/sessiond/sessiond/clients/go/token"
)

// Benchmarks of the auth service. Run (no -race):
//
//	go test -run '^$' -bench 'Login|Argon2Hash|Refresh|CheckToken' -benchtime 3s ./cmd/sessiond/
//
// BenchmarkLogin and BenchmarkArgon2Hash run on the same cores with the
// same (default, OWASP minimum) argon2id parameters: their ratio is the
// share of a login's cost that is not the password hash.

// authBenchClient keeps enough idle connections for 64 concurrent clients.
var authBenchClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
	MaxIdleConns: 256, MaxIdleConnsPerHost: 128, IdleConnTimeout: time.Minute,
}}

// authBenchPost posts a JSON body and decodes a 200 answer into a pair.
func authBenchPost(u string, body any) (authPair, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return authPair{}, err
	}
	res, err := authBenchClient.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		return authPair{}, err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, res.Body) // read to EOF so the connection is reused
		res.Body.Close()
	}()
	var p authPair
	if res.StatusCode != http.StatusOK {
		var e authErrBody
		_ = json.NewDecoder(res.Body).Decode(&e)
		return p, fmt.Errorf("POST %s: status %d: %s: %s", u, res.StatusCode, e.Error, e.Message)
	}
	return p, json.NewDecoder(res.Body).Decode(&p)
}

func BenchmarkLogin(b *testing.B) {
	def := defaultConfig().Auth.Password
	tc := startTestCluster(b, 3, func(_ int, c *Config) { c.Auth.Password = def })
	const nUsers = 16
	for i := range nUsers {
		tc.createUser("bench"+strconv.Itoa(i)+"@example.com", authPW)
	}
	b.Run("3-nodes-default-argon2", func(b *testing.B) {
		var worker atomic.Int64
		// More logins in flight than cores: while one waits for its Raft
		// write, another hashes.
		b.SetParallelism(3)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			w := int(worker.Add(1))
			// All logins go to one node: its hasher admits as many hashes
			// as there are cores, as on a real machine. Spread over the
			// three in-process nodes, three hashers would run 3x the
			// hashes at once on the same two cores and thrash the cache
			// (each hash walks 19 MiB).
			base := tc.nodes[0].apiURL + "/auth/login"
			// One device per worker: a repeated login replaces its own
			// session, never a 409.
			body := authLoginBody("bench"+strconv.Itoa(w%nUsers)+"@example.com", authPW, "web", "bench-device", false)
			for pb.Next() {
				if _, err := authBenchPost(base, body); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
	})
}

func BenchmarkArgon2Hash(b *testing.B) {
	h, err := password.NewHasher(password.Config{Params: password.DefaultParams(), MaxWait: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(authPW); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

func BenchmarkRefresh(b *testing.B) {
	tc := startTestCluster(b, 3, nil)
	const clients = 64
	chains := make([]string, clients)
	for i := range clients {
		email := "refresh" + strconv.Itoa(i) + "@example.com"
		tc.createUser(email, authPW)
		p, err := authBenchPost(tc.nodes[i%3].apiURL+"/auth/login", authLoginBody(email, authPW, "web", "d", false))
		if err != nil {
			b.Fatal(err)
		}
		chains[i] = p.RefreshToken
	}
	b.Run("64-clients-3-nodes", func(b *testing.B) {
		var remaining atomic.Int64
		remaining.Store(int64(b.N))
		lat := make([][]time.Duration, clients)
		var wg sync.WaitGroup
		b.ResetTimer()
		for w := range clients {
			wg.Go(func() {
				for k := w; remaining.Add(-1) >= 0; k++ {
					start := time.Now()
					p, err := authBenchPost(tc.nodes[k%3].apiURL+"/auth/token", map[string]string{"refresh_token": chains[w]})
					if err != nil {
						b.Error(err)
						return
					}
					lat[w] = append(lat[w], time.Since(start))
					chains[w] = p.RefreshToken
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		all := slices.Concat(lat...)
		slices.Sort(all)
		if len(all) == 0 {
			return
		}
		pct := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / float64(time.Millisecond) }
		b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "refresh/s")
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
	})
}

func BenchmarkCheckTokenInProcess(b *testing.B) {
	tc := startTestCluster(b, 1, nil)
	tc.createUser("check@example.com", authPW)
	p, err := authBenchPost(tc.nodes[0].apiURL+"/auth/login", authLoginBody("check@example.com", authPW, "web", "d", false))
	if err != nil {
		b.Fatal(err)
	}
	svc := tc.nodes[0].auth
	if c := svc.CheckToken(p.AccessToken); !c.Active {
		b.Fatalf("CheckToken: %s", c.Reason)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c := svc.CheckToken(p.AccessToken); !c.Active {
				b.Fatalf("CheckToken: %s", c.Reason)
			}
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if c := svc.CheckToken(p.AccessToken); !c.Active {
					b.Errorf("CheckToken: %s", c.Reason)
					return
				}
			}
		})
	})
}

func BenchmarkCheckTokenUncached(b *testing.B) {
	tc := startTestCluster(b, 1, nil)
	tc.createUser("uncached@example.com", authPW)
	p, err := authBenchPost(tc.nodes[0].apiURL+"/auth/login", authLoginBody("uncached@example.com", authPW, "web", "d", false))
	if err != nil {
		b.Fatal(err)
	}
	nd := tc.nodes[0]
	claims := nd.auth.CheckToken(p.AccessToken).Claims
	if claims == nil {
		b.Fatal("no claims")
	}
	// The cluster's own signing key, opened with its KEK, signs a distinct
	// token per operation: every check misses the verified-token cache.
	kek, err := keys.ParseKEK(tc.kek)
	if err != nil {
		b.Fatal(err)
	}
	kid := authKid(b, p.AccessToken)
	var priv ed25519.PrivateKey
	recs, err := nd.st.SigningKeys(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range recs {
		if r.GetKid() == kid {
			if priv, err = keys.Open(kek, r.GetEncryptedPrivateKey(), []byte(kid)); err != nil {
				b.Fatal(err)
			}
		}
	}
	if priv == nil {
		b.Fatalf("signing key %s not in the store", kid)
	}
	b.Run("Service.CheckToken", func(b *testing.B) {
		toks := make([]string, b.N)
		for i := range toks {
			c := *claims
			c.TokenID = "bench-" + strconv.Itoa(i) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			if toks[i], err = token.SignAccess(c, kid, priv); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if c := nd.auth.CheckToken(toks[i]); !c.Active {
				b.Fatalf("CheckToken: %s", c.Reason)
			}
		}
	})
	b.Run("token.VerifyAccess", func(b *testing.B) {
		pub := priv.Public().(ed25519.PublicKey)
		lookup := func(string) (ed25519.PublicKey, bool) { return pub, true }
		exp := token.Expectation{Issuer: tc.issuer, Audience: "sessiond"}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := token.VerifyAccess(p.AccessToken, lookup, exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare-ed25519.Verify", func(b *testing.B) {
		pub, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		msg := []byte(p.AccessToken) // a message of a token's size
		sig := ed25519.Sign(sk, msg)
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
}

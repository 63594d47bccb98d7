package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/sessiond/sessiond/api/gateway"
	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/cluster"
)

// BenchmarkGatewayCheck: 64 concurrent gateway checks of an active token
// on the leader, as nginx (GET /gateway/check over HTTP/1.1 keep-alive,
// the gateway's Basic credential in X-Sessiond-Authorization) and Envoy
// (ext_authz over gRPC, h2c) ask them.
func BenchmarkGatewayCheck(b *testing.B) {
	to := cluster.LANTimeouts()
	tc := startTestCluster(b, 3, func(_ int, c *Config) { c.raftTimeouts = &to })
	tc.createUser("ana@example.com", ptPassword)
	leader := tc.leader()
	tp := ptLogin(b, leader, "ana@example.com", "laptop", authv1.Platform_PLATFORM_WEB)
	access := "Bearer " + tp.GetAccessToken()

	b.Run("forward-auth", func(b *testing.B) {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 128}}
		ptConcurrent(b, 64, max(b.N, 64), func() error {
			req, err := http.NewRequest(http.MethodGet, leader.apiURL+gateway.CheckPath, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", access)
			req.Header.Set(gateway.CredentialHeader, gwBasic)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	})
	b.Run("ext_authz", func(b *testing.B) {
		ext := gwExtAuthzB(b, leader)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", gwBasic)
		req := gwEnvoyRequest(map[string]string{"authorization": access})
		ptConcurrent(b, 64, max(b.N, 64), func() error {
			res, err := ext.Check(ctx, req)
			if err == nil && res.GetOkResponse() == nil {
				err = fmt.Errorf("denied: %v", res.GetStatus())
			}
			return err
		})
	})
}

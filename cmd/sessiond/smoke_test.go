package main

import (
	"context"
	"testing"

	"github.com/sessiond/sessiond/authsvc"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

func TestHarnessLoginEverywhere(t *testing.T) {
	tc := startTestCluster(t, 3, nil)
	tc.createUser("ana@example.com", "correct horse battery")
	ctx := context.Background()
	tok, err := tc.nodes[1].auth.Login(ctx, authsvc.LoginInput{Email: "ana@example.com", Password: "correct horse battery",
		Platform: storev1.Platform_PLATFORM_WEB, DeviceID: "laptop"})
	if err != nil {
		t.Fatalf("login on node 1: %v", err)
	}
	for i, nd := range tc.nodes {
		if _, err := nd.auth.Authenticate(ctx, tok.AccessToken); err != nil {
			t.Errorf("node %d: authenticate: %v", i, err)
		}
	}
}

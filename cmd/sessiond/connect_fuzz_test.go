package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	authv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// fzProcedures are the Connect procedures whose request bodies
// FuzzConnectBodies sends (as the test service client, with every
// service scope but admin's writes).
var fzProcedures = []string{
	sessionv1connect.SessionServiceCheckTokenProcedure,
	sessionv1connect.SessionServiceCheckSessionProcedure,
	sessionv1connect.SessionServiceIsRevokedProcedure,
	authv1connect.AuthServiceLoginProcedure,
	authv1connect.AuthServiceRefreshProcedure,
	authv1connect.AuthServiceAuthorizeProcedure,
}

// FuzzConnectBodies sends arbitrary bodies, as JSON and as binary
// protobuf, to the Connect procedures of a real node (through the limits
// and the caller authentication): never a 5xx, never an internal or
// unknown error. Seeds are real requests: a login and checks of the
// token it returned.
func FuzzConnectBodies(f *testing.F) {
	tc := startTestCluster(f, 1, nil)
	nd := tc.nodes[0]
	tc.createUser("fuzz@example.com", ptPassword)
	pair := authLogin(f, ptURL(nd), "fuzz@example.com", ptPassword, "web", "laptop")
	seeds := []proto.Message{
		&sessionv1.CheckTokenRequest{Token: pair.AccessToken},
		&sessionv1.CheckSessionRequest{SessionId: pair.SessionID},
		&sessionv1.IsRevokedRequest{},
		&authv1.LoginRequest{Email: "fuzz@example.com", Password: ptPassword, Platform: authv1.Platform_PLATFORM_IOS, DeviceId: "phone"},
		&authv1.RefreshRequest{RefreshToken: pair.RefreshToken},
		&authv1.AuthorizeRequest{Token: pair.AccessToken, Action: "read", Resource: "th-customs"},
	}
	for i, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b, false)
		j, _ := json.Marshal(map[string]any{"token": pair.AccessToken, "session_id": pair.SessionID})
		f.Add(uint8(i), j, true)
	}
	f.Add(uint8(0), []byte(`{"token":1}`), true)
	f.Add(uint8(3), []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, false)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: basicAuth{id: tcServiceID, secret: tcServiceSecret, base: http.DefaultTransport}}
	f.Fuzz(func(t *testing.T, proc uint8, body []byte, asJSON bool) {
		path := fzProcedures[int(proc)%len(fzProcedures)]
		ct := "application/proto"
		if asJSON {
			ct = "application/json"
		}
		req, err := http.NewRequest(http.MethodPost, ptURL(nd)+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ct)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var e struct{ Code string }
		_ = json.Unmarshal(b, &e)
		if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable || e.Code == "internal" || e.Code == "unknown" {
			t.Fatalf("%s (%s) %q: %d %s", path, ct, body, res.StatusCode, b)
		}
	})
}

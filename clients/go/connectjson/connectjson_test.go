package connectjson

import (
	"strings"
	"testing"

	sessionv1 "github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1"
)

// Answers use the proto (snake_case) names; requests are read in either
// spelling.
func TestSnakeCase(t *testing.T) {
	c := codec{"json"}
	b, err := c.Marshal(&sessionv1.CheckTokenResponse{Reason: "expired", EndReason: "logout", Claims: &sessionv1.Claims{SessionId: "s1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"end_reason"`, `"session_id"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("marshal: %s lacks %s", b, want)
		}
	}
	if strings.Contains(string(b), "endReason") || strings.Contains(string(b), "sessionId") {
		t.Errorf("marshal: %s has camelCase names", b)
	}
	for _, in := range []string{`{"session_id":"s1","unknown":1}`, `{"sessionId":"s1"}`} {
		var m sessionv1.CheckSessionRequest
		if err := c.Unmarshal([]byte(in), &m); err != nil || m.GetSessionId() != "s1" {
			t.Errorf("unmarshal %s: %v, session %q", in, err, m.GetSessionId())
		}
	}
	if s, err := c.MarshalStable(&sessionv1.CheckSessionRequest{SessionId: "s1"}); err != nil || string(s) != `{"session_id":"s1"}` {
		t.Errorf("MarshalStable: %s %v", s, err)
	}
}

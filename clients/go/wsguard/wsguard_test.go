package wsguard

import (
	"testing"

	"github.com/coder/websocket"

	"github.com/sessiond/sessiond/clients/go/checkreason"
	"github.com/sessiond/sessiond/clients/go/guard"
)

// Each way a session ends has its own close code; the reason names the
// check reason and the end reason. The JS client matches these codes.
func TestCloseFor(t *testing.T) {
	for _, c := range []struct {
		reason checkreason.Reason
		end    string
		code   websocket.StatusCode
		text   string
	}{
		{checkreason.SessionEnded, "logout", CodeSessionEnded, "session_ended: logout"},
		{checkreason.SessionEnded, "expired", CodeSessionEnded, "session_ended: expired"},
		{checkreason.SessionEnded, "", CodeSessionEnded, "session_ended"},
		{checkreason.SessionEnded, "forced_out", CodeForcedOut, "session_ended: forced_out"},
		{checkreason.SessionEnded, "refresh_reuse", CodeRefreshReuse, "session_ended: refresh_reuse"},
		{checkreason.SessionEnded, "admin_revoked", CodeRevoked, "session_ended: admin_revoked"},
		{checkreason.SessionEnded, "replaced", CodeReplaced, "session_ended: replaced"},
		{checkreason.SessionEnded, "code_reuse", CodeRevoked, "session_ended: code_reuse"},
		{checkreason.SessionEnded, "sso_ended", CodeSessionEnded, "session_ended: sso_ended"},
		{checkreason.LoggedOutAll, "logout_all", CodeLoggedOutEverywhere, "user_logged_out_everywhere: logout_all"},
		{checkreason.LoggedOutAll, "", CodeLoggedOutEverywhere, "user_logged_out_everywhere"},
		{checkreason.Revoked, "", CodeRevoked, "revoked"},
	} {
		code, text := CloseFor(&guard.AuthError{Reason: c.reason, EndReason: c.end})
		if code != c.code || text != c.text {
			t.Errorf("CloseFor(%v, %q): got %d %q, exp %d %q", c.reason, c.end, code, text, c.code, c.text)
		}
		if len(text) > 123 {
			t.Errorf("close reason %q longer than a close frame allows", text)
		}
	}
}

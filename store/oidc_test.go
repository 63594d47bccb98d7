package store

import (
	"strings"
	"testing"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// ssoCmd opens a browser SSO session (outside the platform slot).
func ssoCmd(now time.Time, sid, user string) *storev1.Command {
	c := openCmd(now, sid, user, storev1.Platform_PLATFORM_WEB, "sso-browser", "tok-"+sid, time.Hour, 24*time.Hour, false)
	c.GetOpenSession().Session.BrowserSecretSha256 = tokHash("secret-" + sid)
	return c
}

func codeCmd(now time.Time, code, client, sid, user string, life time.Duration) *storev1.Command {
	return &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_PutAuthCode{PutAuthCode: &storev1.PutAuthCode{Code: &storev1.AuthCode{
		CodeHash: tokHash("code-" + code), ClientId: client, SessionId: sid, UserId: user, RedirectUri: "https://app.test/cb",
		CodeChallenge: strings.Repeat("c", 43), Scope: "openid", ExpiresUnixNano: now.Add(life).UnixNano(),
		RecordExpiresUnixNano: now.Add(time.Hour).UnixNano(),
	}}}}
}

func redeemCmd(now time.Time, code, client, sid string) *storev1.Command {
	open := openCmd(now, sid, "ignored", storev1.Platform_PLATFORM_OTHER, "oidc:"+client, "tok-"+sid, time.Hour, 24*time.Hour, false)
	return &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_RedeemAuthCode{RedeemAuthCode: &storev1.RedeemAuthCode{
		CodeHash: tokHash("code-" + code), ClientId: client, Session: open.GetOpenSession()}}}
}

// TestOIDCRecords: the provider's rules in the state machine — SSO and
// client sessions beside the platform's live session, one redemption per
// code (a second ends the client session), the code's client only, ending
// the SSO session ends its client sessions, one-time marks, and shape
// bounds that refuse and change nothing.
func TestOIDCRecords(t *testing.T) {
	s := openTemp(t, "oidc.db")
	now := t0
	must := func(what string, res *storev1.Result, want storev1.ErrorCode) *storev1.Result {
		t.Helper()
		if res.GetCode() != want {
			t.Fatalf("%s: %s %q, want %s", what, res.GetCode(), res.GetMessage(), want)
		}
		return res
	}
	apply := func(c *storev1.Command) *storev1.Result { return applyOne(t, s, mustEncode(t, c)) }
	ok := storev1.ErrorCode_ERROR_CODE_UNSPECIFIED

	must("app login on web", apply(openCmd(now, "app", "u1", storev1.Platform_PLATFORM_WEB, "laptop", "t-app", time.Hour, 24*time.Hour, false)), ok)
	must("SSO session on web beside it", apply(ssoCmd(now, "sso", "u1")), ok)
	if ss, err := s.Session("app", now); err != nil || ss.GetEndedUnixNano() != 0 {
		t.Fatalf("the app's web session after the SSO login: %v, %v; want live", ss, err)
	}
	must("code", apply(codeCmd(now, "c1", "spa", "sso", "u1", time.Minute)), ok)
	must("another client's redemption", apply(redeemCmd(now, "c1", "other", "cs0")), storev1.ErrorCode_ERROR_CODE_NOT_FOUND)
	res := must("redemption", apply(redeemCmd(now, "c1", "spa", "cs1")), ok)
	if cs := res.GetSession(); cs.GetClientId() != "spa" || cs.GetParentSessionId() != "sso" || cs.GetUserId() != "u1" {
		t.Fatalf("client session %+v: want client spa, parent sso, user u1 (from the code)", cs)
	}
	res = must("second redemption", apply(redeemCmd(now.Add(time.Second), "c1", "spa", "cs2")), storev1.ErrorCode_ERROR_CODE_REUSE)
	if len(res.GetEndedSessionIds()) != 1 || res.GetEndedSessionIds()[0] != "cs1" {
		t.Fatalf("second redemption ended %v, want [cs1]", res.GetEndedSessionIds())
	}
	if ss, _ := s.Session("cs1", now); ss.GetEndReason() != storev1.EndReason_END_REASON_CODE_REUSE {
		t.Fatalf("cs1 end reason %s, want CODE_REUSE", ss.GetEndReason())
	}
	if _, err := s.Session("cs2", now); err == nil {
		t.Fatalf("the second redemption opened a session")
	}
	must("code 2", apply(codeCmd(now, "c2", "spa", "sso", "u1", time.Minute)), ok)
	must("expired code", apply(redeemCmd(now.Add(2*time.Minute), "c2", "spa", "cs3")), storev1.ErrorCode_ERROR_CODE_NOT_FOUND)
	must("code 3", apply(codeCmd(now, "c3", "spa", "sso", "u1", time.Minute)), ok)
	must("redemption 3", apply(redeemCmd(now, "c3", "spa", "cs4")), ok)
	end := &storev1.Command{NowUnixNano: now.UnixNano(), Op: &storev1.Command_EndSession{EndSession: &storev1.EndSession{SessionId: "sso", Reason: storev1.EndReason_END_REASON_LOGOUT}}}
	res = must("SSO logout", apply(end), ok)
	if got := strings.Join(res.GetEndedSessionIds(), ","); got != "sso,cs4" {
		t.Fatalf("SSO logout ended %q, want sso,cs4", got)
	}
	if ss, _ := s.Session("cs4", now); ss.GetEndReason() != storev1.EndReason_END_REASON_SSO_ENDED {
		t.Fatalf("cs4 end reason %s, want SSO_ENDED", ss.GetEndReason())
	}
	if ss, _ := s.Session("app", now); ss.GetEndedUnixNano() != 0 {
		t.Fatalf("the app's own session ended with the SSO session")
	}
	must("code on an ended SSO session", apply(codeCmd(now, "c4", "spa", "sso", "u1", time.Minute)), storev1.ErrorCode_ERROR_CODE_ENDED)

	mark := func(at time.Time) *storev1.Command {
		return &storev1.Command{NowUnixNano: at.UnixNano(), Op: &storev1.Command_MarkOnce{MarkOnce: &storev1.MarkOnce{Key: tokHash("jti"), ExpiresUnixNano: now.Add(time.Minute).UnixNano()}}}
	}
	must("mark", apply(mark(now)), ok)
	must("mark again", apply(mark(now.Add(time.Second))), storev1.ErrorCode_ERROR_CODE_CONFLICT)

	before := stateHash(t, s, false)
	for name, c := range map[string]*storev1.Command{
		"code for 11 minutes":    codeCmd(now, "c5", "spa", "app", "u1", 11*time.Minute),
		"code with a bad client": codeCmd(now, "c6", "sp a", "app", "u1", time.Minute),
		"mark for two days":      {NowUnixNano: now.UnixNano(), Op: &storev1.Command_MarkOnce{MarkOnce: &storev1.MarkOnce{Key: tokHash("k"), ExpiresUnixNano: now.Add(48 * time.Hour).UnixNano()}}},
		"mark with a short key":  {NowUnixNano: now.UnixNano(), Op: &storev1.Command_MarkOnce{MarkOnce: &storev1.MarkOnce{Key: []byte("k"), ExpiresUnixNano: now.Add(time.Minute).UnixNano()}}},
		"redeem without session": {NowUnixNano: now.UnixNano(), Op: &storev1.Command_RedeemAuthCode{RedeemAuthCode: &storev1.RedeemAuthCode{CodeHash: tokHash("code-c3"), ClientId: "spa"}}},
		"browser secret 5 bytes": func() *storev1.Command {
			c := ssoCmd(now, "sso2", "u1")
			c.GetOpenSession().Session.BrowserSecretSha256 = []byte("short")
			return c
		}(),
	} {
		if res := apply(c); res.GetCode() != storev1.ErrorCode_ERROR_CODE_INVALID {
			t.Errorf("%s: %s %q, want INVALID", name, res.GetCode(), res.GetMessage())
		}
	}
	if stateHash(t, s, false) != before {
		t.Errorf("refused commands changed the state")
	}
}

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// BenchmarkOIDCCodeFlow measures full code flows (authorize with the SSO
// cookie → code → token with PKCE → userinfo) of a signed-in browser and a
// first-party public client, against the password login, on the same
// 3-node in-process cluster with the default argon2id parameters:
//
//	go test -run '^$' -bench OIDCCodeFlow -benchtime 3s ./cmd/sessiond/
func BenchmarkOIDCCodeFlow(b *testing.B) {
	tc := opCluster(b, "")
	tc.createUser(opUserEmail, opUserPassword)
	router := &opRouter{}
	router.to(tc.nodes[0])
	jar, _ := cookiejar.New(nil)
	browser := router.client(jar)
	// Sign in once (the SSO cookie).
	resp, err := browser.Get(opTestIssuer + "/oidc/authorize?" + benchAuthz(oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())).Encode())
	if err != nil {
		b.Fatal(err)
	}
	form := formFields(b, readPage(b, resp))
	form.Set("email", opUserEmail)
	form.Set("password", opUserPassword)
	if resp, err = browser.PostForm(opTestIssuer+"/oidc/login", form); err != nil || resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	b.Run("code-flow", func(b *testing.B) {
		for b.Loop() {
			verifier := oauth2.GenerateVerifier()
			resp, err := browser.Get(opTestIssuer + "/oidc/authorize?" + benchAuthz(oauth2.S256ChallengeFromVerifier(verifier)).Encode())
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			loc, err := resp.Location()
			if err != nil {
				b.Fatalf("authorize: %d", resp.StatusCode)
			}
			tok, err := browser.PostForm(opTestIssuer+"/oidc/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
				"redirect_uri": {opRedirectURI}, "code_verifier": {verifier}, "client_id": {opSPAClient}})
			if err != nil || tok.StatusCode != http.StatusOK {
				b.Fatalf("token: %v %v", tok, err)
			}
			var tr struct {
				AccessToken string `json:"access_token"`
			}
			_ = json.NewDecoder(tok.Body).Decode(&tr)
			tok.Body.Close()
			req, _ := http.NewRequest(http.MethodGet, opTestIssuer+"/oidc/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
			ui, err := browser.Do(req)
			if err != nil || ui.StatusCode != http.StatusOK {
				b.Fatalf("userinfo: %v %v", ui, err)
			}
			_, _ = io.Copy(io.Discard, ui.Body)
			ui.Body.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
	})
	b.Run("password-login", func(b *testing.B) {
		body := authLoginBody(opUserEmail, opUserPassword, "ios", "bench-device", false)
		for b.Loop() {
			if _, err := authBenchPost(tc.nodes[0].apiURL+"/auth/login", body); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
	})
}

func benchAuthz(challenge string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {opSPAClient}, "redirect_uri": {opRedirectURI},
		"scope": {"openid email"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {strings.Repeat("s", 8)}}
}

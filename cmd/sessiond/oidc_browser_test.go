package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestOIDCPagesInChromium: a real browser (headless Chromium) signs in on
// the login page and allows access on the consent page of a third-party
// client, then lands on the app's redirect URI with a code. The form
// fields have labels, and the pages load no external asset.
func TestOIDCPagesInChromium(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no Chromium at " + chromium)
	}
	e2eSkipShort(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!doctype html><title>app</title><p id=done>signed in</p>")
	}))
	defer app.Close()
	tc := opCluster(t, "", app.URL+"/cb")
	tc.createUser(opUserEmail, opUserPassword)
	node := tc.nodes[1].ln.Addr().String()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("host-resolver-rules", "MAP auth.test:80 "+node))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	_, challenge := pkceChallenge()
	q := url.Values{"response_type": {"code"}, "client_id": {opWebClient}, "redirect_uri": {app.URL + "/cb"},
		"scope": {"openid email"}, "state": {"browser-state"}, "nonce": {"n"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	var labels, consent, loc string
	var requests []string
	err := chromedp.Do(ctx,
		chromedp.Navigate(opTestIssuer+"/oidc/authorize?"+q.Encode()),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
	)
	if err == nil {
		labels, err = chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('input:not([type=hidden])')].map(i => i.id + '=' + (i.labels.length ? i.labels[0].textContent : '')).join(',')`))
	}
	if err == nil {
		requests, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`performance.getEntriesByType('resource').map(r => r.name)`))
	}
	if err == nil {
		err = chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS(`#email`), opUserEmail),
			chromedp.SendKeys(chromedp.CSS(`#password`), opUserPassword),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`button[value=allow]`)),
		)
	}
	if err == nil {
		consent, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	}
	if err == nil {
		err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value=allow]`)), chromedp.WaitVisible(chromedp.CSS(`#done`)))
	}
	if err == nil {
		loc, err = chromedp.Run(ctx, chromedp.Location())
	}
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if labels != "email=Email,password=Password" {
		t.Errorf("inputs and their labels: %q; want every field labelled", labels)
	}
	if len(requests) != 0 {
		t.Errorf("the login page loaded %v; want no external asset", requests)
	}
	if !strings.Contains(consent, "Back Office") || !strings.Contains(consent, "your email address") {
		t.Errorf("consent page text %q: want the client's name and what it reads", consent)
	}
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, app.URL+"/cb?") || u.Query().Get("code") == "" || u.Query().Get("state") != "browser-state" {
		t.Fatalf("landed on %q; want the app's redirect URI with a code and the state", loc)
	}
}

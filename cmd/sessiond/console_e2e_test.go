package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// consoleChromium is Debian's chromium (.ci/run installs it).
const consoleChromium = "/usr/bin/chromium"

// consoleScreenshotDir is where the browser test saves its screenshots:
// $SESSIOND_CONSOLE_SCREENSHOTS if set (e.g. docs/console to refresh the
// docs' pictures), else a temporary dir named in the log.
func consoleScreenshotDir(t *testing.T) string {
	if d := os.Getenv("SESSIOND_CONSOLE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// consoleUser creates a user with the CLI through base.
func consoleUser(t *testing.T, c *e2eCluster, via *e2eNode, email, name string, roles ...string) {
	t.Helper()
	args := []string{"user", "create", "--addr", via.url(), "--token-file", c.opToken(via), "--password-stdin",
		"--email", email, "--display-name", name, "--org-name", "Siam Customs Brokers", "--country", "TH", "--org-type", "SUPPLIER"}
	for _, r := range roles {
		args = append(args, "--role", r)
	}
	if r := e2eCLI(t, e2ePassword+"\n", args...); r.code != 0 {
		t.Fatalf("user create %s: exit %d, %s", email, r.code, r.stderr)
	}
}

// TestConsoleInBrowser drives the operator console in a real headless
// Chromium against a real 3-node cluster of sessiond processes: an
// operator logs in, finds a user, revokes one of the user's sessions (and
// another node then refuses its token), suspends the user, rotates the
// signing key and reads the audit; a user without the operator role is
// refused, and a cross-site POST is refused. Each page is saved as a
// screenshot; first paint on loopback is measured and logged.
func TestConsoleInBrowser(t *testing.T) {
	e2eSkipShort(t)
	if _, err := exec.LookPath(consoleChromium); err != nil {
		t.Skipf("no browser: %s is missing (apt-get install -y chromium)", consoleChromium)
	}
	c := newE2ECluster(t, false)
	hk, seoul, _ := e2eThreeNodes(t, c)
	shots := consoleScreenshotDir(t)
	t.Logf("screenshots in %s", shots)

	const opsEmail, userEmail, plainEmail = "ops@example.com", "alice@example.com", "bob@example.com"
	consoleUser(t, c, hk, opsEmail, "Olga Operator", "operator")
	consoleUser(t, c, hk, userEmail, "Alice Agent", "customs-agent")
	consoleUser(t, c, hk, plainEmail, "Bob Broker", "customs-agent")
	alice := e2eLogin(t, hk.url(), userEmail, e2ePassword, "web", "alice-laptop")
	e2eLogin(t, seoul.url(), userEmail, e2ePassword, "android", "alice-phone")

	// Refusals a browser cannot be talked out of, checked at the HTTP level.
	t.Run("cross-site POST refused", func(t *testing.T) {
		code, body, err := e2ePost(hk.url()+"/console/login", map[string]any{"email": opsEmail, "password": e2ePassword},
			"Origin", "https://evil.example", "X-Sessiond-Console", "1")
		if err != nil || code != http.StatusForbidden || !strings.Contains(string(body), "cross_site_request") {
			t.Errorf("login from origin https://evil.example: got %d %s (%v); want 403 cross_site_request", code, body, err)
		}
		code, body, err = e2ePost(hk.url()+"/console/login", map[string]any{"email": opsEmail, "password": e2ePassword})
		if err != nil || code != http.StatusForbidden || !strings.Contains(string(body), "X-Sessiond-Console") {
			t.Errorf("login without the console header: got %d %s (%v); want 403 naming the header", code, body, err)
		}
	})
	t.Run("non-operator refused", func(t *testing.T) {
		code, body, err := e2ePost(hk.url()+"/console/login", map[string]any{"email": plainEmail, "password": e2ePassword},
			"Origin", hk.url(), "X-Sessiond-Console", "1")
		if err != nil || code != http.StatusForbidden || !strings.Contains(string(body), "not_an_operator") {
			t.Errorf("login as %s (no operator role): got %d %s (%v); want 403 not_an_operator", plainEmail, code, body, err)
		}
	})

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(consoleChromium), chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1200, 860))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, without a deadline
		t.Fatalf("start %s: %v", consoleChromium, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 4*time.Minute)
	defer cancel()

	fail := func(what string, err error) {
		t.Helper()
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status") ? document.getElementById("status").textContent : ""`))
		t.Fatalf("%s: %v (console status line: %q)", what, err, body)
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			fail(what, err)
		}
	}
	str := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			fail(what, err)
		}
		return v
	}
	js := func(expr string) chromedp.Action[chromedp.Void] { return chromedp.Evaluate[chromedp.Void](expr) }
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			fail("screenshot "+name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(what, expr string) {
		t.Helper()
		run(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(45*time.Second)))
	}

	// Log in; first paint of the login page on loopback, measured.
	// First paint and page weight, as the browser measured them (reported,
	// not asserted: the machine is shared).
	paint := func(what string) {
		t.Helper()
		fcp, err := chromedp.Run(ctx, chromedp.Poll[float64](`(performance.getEntriesByType("paint").find(e => e.name === "first-contentful-paint") || {}).startTime`,
			chromedp.WithPollingTimeout(10*time.Second)))
		if err != nil {
			fail("first paint", err)
		}
		bytes, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`[...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")].reduce((s, e) => s + e.decodedBodySize, 0)`))
		if err != nil {
			fail("page weight", err)
		}
		nav, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const n = performance.getEntriesByType("navigation")[0]; return "request sent " + n.requestStart.toFixed(0) + " ms, response " + n.responseEnd.toFixed(0) + " ms, DOM interactive " + n.domInteractive.toFixed(0) + " ms"; })()`))
		if err != nil {
			fail("navigation timing", err)
		}
		t.Logf("%s: first contentful paint %.0f ms on loopback (%s), page %.1f KB", what, fcp, nav, bytes/1024)
	}
	run("open the console", chromedp.Navigate(hk.url()+"/console/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	paint("/console/ in a fresh browser (cold)")
	run("open it again", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	paint("/console/ loaded again (warm)")
	shot("login")

	// A non-operator is refused in the browser too.
	run("log in as a non-operator", chromedp.SendKeys(chromedp.CSS("#login-email"), plainEmail),
		chromedp.SendKeys(chromedp.CSS("#login-password"), e2ePassword), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	wait("the refusal", `document.getElementById("status").textContent.includes("operator or admin role")`)

	run("log in as the operator", js(`document.getElementById("login-email").value = document.getElementById("login-password").value = ""`), chromedp.SendKeys(chromedp.CSS("#login-email"), opsEmail),
		chromedp.SendKeys(chromedp.CSS("#login-password"), e2ePassword), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	wait("the cluster page with 3 nodes", `document.querySelectorAll("#cluster-regions tbody tr").length === 3 && !document.getElementById("page-cluster").hidden`)
	wait("a leader shown", `document.getElementById("cluster-summary").textContent.includes("3 voters, tolerates 1")`)
	shot("cluster")

	// The remove confirmation states the quorum consequence.
	run("open a remove confirmation", chromedp.Click(chromedp.CSS(`#cluster-regions button.danger`)), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	confirmText := str("read the confirmation", chromedp.Text(chromedp.CSS("#confirm-text")))
	if !strings.Contains(confirmText, "3 voters → 2; the cluster then tolerates 0 failure(s)") {
		t.Errorf("remove confirmation %q: want it to state 3 voters → 2 and 0 failures tolerated", confirmText)
	}
	shot("cluster-remove-confirm")
	run("cancel", chromedp.Click(chromedp.CSS(`#confirm button[value=cancel]`)))

	// Find the user.
	run("search", js(`location.hash = "#users"`), chromedp.WaitVisible(chromedp.CSS("#user-q")),
		chromedp.SendKeys(chromedp.CSS("#user-q"), "alice"), chromedp.Click(chromedp.CSS(`#user-search button`)))
	wait("alice in the results", `[...document.querySelectorAll("#user-table tbody tr")].length === 1 && document.querySelector("#user-table tbody").textContent.includes("`+userEmail+`")`)
	run("open alice", chromedp.Click(chromedp.CSS(`#user-table tbody tr`)), chromedp.WaitVisible(chromedp.CSS("#user-edit")))
	shot("users")

	// Her devices; revoke the laptop's session, then another node refuses
	// its token.
	run("sessions", js(`location.hash = "#sessions/`+userEmail+`"`))
	wait("two devices", `document.querySelectorAll("#session-list tbody tr").length === 2`)
	wait("the live feed", `document.getElementById("feed-state").textContent.startsWith("Watching")`)
	if got := e2eCheckToken(t, seoul.url(), alice.AccessToken, e2eLinear); !got.GetActive() {
		t.Fatalf("alice's token before the revoke: %v; want active", got)
	}
	run("revoke the laptop", chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Revoke session %s"]`, alice.SessionID))),
		chromedp.WaitVisible(chromedp.CSS("#confirm")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	wait("the session gone or shown ended", `![...document.querySelectorAll("#session-list tbody tr")].some(r => r.textContent.includes("alice-laptop") && !r.textContent.includes("ended"))`)
	wait("the revocation in the live feed", `document.getElementById("feed").textContent.includes("`+alice.SessionID+`")`)
	shot("sessions")
	if got := e2eCheckToken(t, seoul.url(), alice.AccessToken, e2eLinear); got.GetActive() {
		t.Errorf("alice's revoked token checked on seoul: active, reason %q; want refused", got.GetReason())
	} else {
		t.Logf("alice's revoked token on seoul: refused, %s", got.GetReason())
	}

	// Suspend her; she can no longer log in.
	run("suspend", js(`location.hash = "#users/alice"`))
	wait("alice listed", `document.querySelector("#user-table tbody").textContent.includes("`+userEmail+`")`)
	run("open and suspend", chromedp.Click(chromedp.CSS(`#user-table tbody tr`)), chromedp.WaitVisible(chromedp.CSS("#user-edit")),
		chromedp.Click(chromedp.CSS(`#user-edit button.danger`)), chromedp.WaitVisible(chromedp.CSS("#confirm")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	wait("alice suspended", `document.querySelector("#user-table tbody").textContent.includes("suspended")`)
	if _, code, err := e2eTryLogin(seoul.url(), userEmail, e2ePassword, "web", "alice-laptop"); err == nil || code == http.StatusOK {
		t.Errorf("login of the suspended user on seoul: status %d, err %v; want refused", code, err)
	}

	// Rotate the signing key.
	run("keys", js(`location.hash = "#keys"`))
	wait("an active key", `[...document.querySelectorAll("#key-table tbody tr")].some(r => r.textContent.includes("active"))`)
	activeKid := `[...document.querySelectorAll("#key-table tbody tr")].find(r => r.textContent.includes("active")).querySelector("code").textContent`
	before := str("read the active key", chromedp.Evaluate[string](activeKid))
	run("rotate", chromedp.Click(chromedp.CSS("#rotate")), chromedp.WaitVisible(chromedp.CSS("#confirm")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	wait("a new active key", activeKid+` !== "`+before+`"`)
	after := str("read the new key", chromedp.Evaluate[string](activeKid))
	shot("keys")
	lr := e2eLogin(t, seoul.url(), opsEmail, e2ePassword, "web", "ops-laptop")
	if got := e2eCheckToken(t, hk.url(), lr.AccessToken, e2eLinear); !got.GetActive() {
		t.Errorf("a token issued on seoul after the rotation, checked on hk: %v; want active", got)
	}

	// The audit, cluster-wide: the console user's actions are there.
	run("audit", js(`location.hash = "#audit"`))
	wait("the suspension in the audit", `[...document.querySelectorAll("#audit-table tbody tr")].some(r => r.textContent.includes("SetUserStatus") && r.textContent.includes("user/`+opsEmail+`"))`)
	wait("the rotation in the audit", `document.querySelector("#audit-table tbody").textContent.includes("signing_key_rotated")`)
	run("filter by type", chromedp.SendKeys(chromedp.CSS("#a-type"), "login"), chromedp.Click(chromedp.CSS(`#audit-form button[type=submit]`)))
	wait("only logins", `(() => { const rs = [...document.querySelectorAll("#audit-table tbody tr")]; return rs.length > 0 && rs.every(r => r.children[2].textContent === "login"); })()`)
	run("unfilter", js(`document.getElementById("a-type").value = ""`), chromedp.Click(chromedp.CSS(`#audit-form button[type=submit]`)))
	wait("every type again", `[...document.querySelectorAll("#audit-table tbody tr")].some(r => r.children[2].textContent !== "login")`)
	shot("audit")

	// Charts: one per measure, one line per region.
	run("charts", js(`location.hash = "#charts"`))
	wait("five charts with three regions each", `document.querySelectorAll("#charts figure").length === 5 && [...document.querySelectorAll("#charts .legend")].every(l => l.children.length === 3)`)
	wait("logins counted", `[...document.querySelectorAll("#charts svg")][0].getAttribute("aria-label").match(/peak [1-9]/) !== null`)
	wait("two samples drawn", `document.querySelector("#charts polyline").getAttribute("points").split(" ").length >= 2`)
	shot("charts")
	t.Logf("rotated %s → %s", before, after)

	// A cross-site form POST from another origin, in the same browser that
	// holds the operator's cookies, is refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/console/rpc/sessiond.session.v1.SessionService/RevokeUserSessions"><input name="user_id" value="x"></form><script>document.forms[0].submit()</script>`, hk.url())
	}))
	defer evil.Close()
	run("cross-site form", chromedp.Navigate(evil.URL))
	wait("the refusal page", `document.body && document.body.textContent.includes("cross_site_request")`)
	page := str("read it", chromedp.Text(chromedp.CSS("body")))
	if !strings.Contains(page, "own origin") {
		t.Errorf("cross-site POST answer %q: want a refusal naming the console's own origin", page)
	}

	// On a phone-sized screen.
	run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(hk.url()+"/console/#cluster"))
	wait("the cluster page on a phone", `document.querySelectorAll("#cluster-regions tbody tr").length === 3`)
	shot("cluster-phone")
}

package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// SignatureHeader carries the webhook signature: "sha256=" followed by the
// hex HMAC-SHA256 of the request body keyed with Webhook.Secret. The body
// holds the event's time ("at") for receivers that reject stale events.
const SignatureHeader = "X-Sessiond-Signature"

// Webhook posts each event as a JSON object (the fields of Event) to URL.
// A 2xx answer is success; 408, 429 and 5xx are retried (honouring a
// Retry-After header in seconds); other answers are permanent failures.
type Webhook struct {
	URL string
	// Client defaults to http.DefaultClient.
	Client *http.Client
	// Secret, when set, signs the body (see SignatureHeader).
	Secret string
}

// Name returns "webhook".
func (w *Webhook) Name() string { return "webhook" }

// Notify posts ev. Errors are *DeliveryError naming only the URL's scheme
// and host (webhook paths often hold a token).
func (w *Webhook) Notify(ctx context.Context, ev Event) error {
	shown := redactURL(w.URL)
	fail := func(de *DeliveryError) error {
		de.Notifier, de.URL = "webhook", shown
		return de
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fail(&DeliveryError{Permanent: true, err: err})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fail(&DeliveryError{Permanent: true, Description: "bad URL"})
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sessiond-notify")
	if w.Secret != "" {
		m := hmac.New(sha256.New, []byte(w.Secret))
		m.Write(body)
		req.Header.Set(SignatureHeader, "sha256="+hex.EncodeToString(m.Sum(nil)))
	}
	resp, err := client(w.Client).Do(req)
	if err != nil {
		return fail(&DeliveryError{err: transportError(err)})
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	de := &DeliveryError{StatusCode: resp.StatusCode, Description: http.StatusText(resp.StatusCode), Permanent: permanentStatus(resp.StatusCode)}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		de.RetryAfter = time.Duration(s) * time.Second
	}
	return fail(de)
}

// redactURL keeps only the scheme and host of raw.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<redacted URL>"
	}
	return u.Scheme + "://" + u.Host + "/<redacted>"
}

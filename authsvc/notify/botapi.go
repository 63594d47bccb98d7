package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"io"
)

// BotAPI calls methods of the Telegram Bot API: POST
// {BaseURL}/bot{Token}/{method} with a JSON body, answered by the envelope
// {"ok":true,"result":...} or {"ok":false,"error_code":N,"description":...,
// "parameters":{"retry_after":S}}. It holds no state but its settings and
// is safe for concurrent use.
//
// The token is part of every URL, so no URL this type builds ever reaches
// an error or a log line: failures are *DeliveryError values naming the
// method with the token replaced by <redacted>, transport errors are
// stripped of their URL, and descriptions echoing the token are redacted.
type BotAPI struct {
	// BaseURL defaults to DefaultTelegramBaseURL.
	BaseURL string
	// Token is the bot's token (from BotFather).
	Token string
	// Client defaults to http.DefaultClient. Bound every call with ctx; a
	// long poll needs a deadline beyond its timeout.
	Client *http.Client
	// UserAgent, when set, is sent with every request (the node's id, so
	// that a fake Bot API in tests can tell the callers apart).
	UserAgent string
}

// Call invokes method with params (marshalled to JSON; nil sends {}) and,
// when result is not nil, decodes the answer's result into it. Errors are
// *DeliveryError: StatusCode is the Bot API's error_code (or the HTTP status
// when the body is not an envelope), RetryAfter its parameters.retry_after,
// Permanent true for 4xx answers other than 408 and 429.
func (b *BotAPI) Call(ctx context.Context, method string, params, result any) error {
	base := strings.TrimRight(b.BaseURL, "/")
	if base == "" {
		base = DefaultTelegramBaseURL
	}
	fail := func(de *DeliveryError) error {
		de.Notifier, de.URL = "telegram", base+"/bot<redacted>/"+method
		return de
	}
	if b.Token == "" {
		return fail(&DeliveryError{Permanent: true, Description: "bot token is required"})
	}
	if params == nil {
		params = struct{}{}
	}
	body, err := json.Marshal(params)
	if err != nil {
		return fail(&DeliveryError{Permanent: true, err: err})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/bot"+b.Token+"/"+method, bytes.NewReader(body))
	if err != nil {
		// The error names the URL: do not wrap it.
		return fail(&DeliveryError{Permanent: true, Description: "bad base URL or token"})
	}
	req.Header.Set("Content-Type", "application/json")
	if b.UserAgent != "" {
		req.Header.Set("User-Agent", b.UserAgent)
	}
	resp, err := client(b.Client).Do(req)
	if err != nil {
		return fail(&DeliveryError{err: transportError(err)})
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fail(&DeliveryError{StatusCode: resp.StatusCode, err: transportError(err)})
	}
	var tr struct {
		telegramResponse
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(raw, &tr); err != nil {
		return fail(&DeliveryError{StatusCode: resp.StatusCode, Permanent: permanentStatus(resp.StatusCode),
			Description: "response is not a Bot API answer"})
	}
	if tr.OK && resp.StatusCode/100 == 2 {
		if result != nil && len(tr.Result) > 0 {
			if err := json.Unmarshal(tr.Result, result); err != nil {
				return fail(&DeliveryError{StatusCode: resp.StatusCode, Permanent: true, Description: "result does not decode: " + sanitize(err.Error(), b.Token)})
			}
		}
		return nil
	}
	code := tr.ErrorCode
	if code == 0 {
		code = resp.StatusCode
	}
	de := &DeliveryError{StatusCode: code, Description: sanitize(tr.Description, b.Token), Permanent: permanentStatus(code)}
	if tr.Parameters != nil && tr.Parameters.RetryAfter > 0 {
		de.RetryAfter = time.Duration(tr.Parameters.RetryAfter) * time.Second
	}
	return fail(de)
}

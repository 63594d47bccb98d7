// Package notify sends security events (failed logins, refresh-token
// reuse, forced logins, lockouts) to pluggable notifiers: a Telegram bot,
// a webhook, or anything implementing Notifier. A Dispatcher queues events
// so that a slow or failing notifier never slows down a login.
//
// Events never hold a password or a token. The Telegram bot token never
// appears in an error or a log line: URLs in errors are redacted.
package notify

import (
	"context"
	"fmt"
	"time"
)

// Event kinds the auth service emits.
const (
	KindLoginFailed  = "login_failed"
	KindRefreshReuse = "refresh_reuse"
	KindForcedLogin  = "forced_login"
	KindLockout      = "lockout"
	// KindCertExpiring: a TLS certificate the node uses expires within 30
	// days (or has expired).
	KindCertExpiring = "cert_expiring"
	// KindUntrustedKey: a signing key record in the replicated store does
	// not open with the node's key-encryption key; it is refused.
	KindUntrustedKey = "untrusted_signing_key"
	// KindNodeUnreachable: the leader's heartbeats to a node have failed
	// for a while (the node is out of the quorum). Raised by the leader.
	KindNodeUnreachable = "node_unreachable"
	// KindRegionUnreachable: the leader reaches no node of a region.
	KindRegionUnreachable = "region_unreachable"
	// KindNoQuorum: this node has known no leader for a while (it is cut
	// off, or the cluster lost its quorum). Raised by each such node: no
	// claim can be replicated without a quorum.
	KindNoQuorum = "no_quorum"
	// KindTokenErrors: many refused tokens from one client address.
	KindTokenErrors = "token_errors"
	// KindSessionExpirySpike: far more sessions ended by expiry than usual.
	KindSessionExpirySpike = "session_expiry_spike"
	// KindRefreshReuseSpike: far more sessions ended by refresh-token
	// reuse (theft) than usual.
	KindRefreshReuseSpike = "refresh_reuse_spike"
	// KindSigningKeyExpiring: no signing key will be able to sign soon
	// (key rotation is stuck).
	KindSigningKeyExpiring = "signing_key_expiring"
)

// Event is one security event. It must never hold a password, a token or
// any other secret; Detail is free text for humans.
type Event struct {
	Kind      string    `json:"kind"`
	UserID    string    `json:"user_id,omitempty"`
	Email     string    `json:"email,omitempty"`
	IP        string    `json:"ip,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	Region    string    `json:"region,omitempty"`
	Node      string    `json:"node,omitempty"`
	At        time.Time `json:"at"`
	Detail    string    `json:"detail,omitempty"`
}

// Notifier delivers one event. Notify may be called from one goroutine at a
// time per Dispatcher worker; it should honour ctx. An error that is (or
// wraps) a *DeliveryError tells the Dispatcher whether and when to retry;
// any other error is retried with backoff.
type Notifier interface {
	Notify(ctx context.Context, ev Event) error
}

// DeliveryError is a failed delivery as the notifiers of this package
// report it.
type DeliveryError struct {
	// Notifier names the notifier ("telegram", "webhook").
	Notifier string
	// URL is where the request went, redacted of secrets.
	URL string
	// StatusCode is the HTTP status (or the Bot API error_code), 0 when
	// no response arrived.
	StatusCode int
	// Description is the server's explanation, if any.
	Description string
	// RetryAfter is the wait the server asked for (Telegram's
	// parameters.retry_after, or a Retry-After header), 0 if none.
	RetryAfter time.Duration
	// Permanent is true when retrying cannot help (a 4xx other than 408
	// and 429).
	Permanent bool
	err       error
}

// Error describes the failure with the redacted URL; it never holds a secret.
func (e *DeliveryError) Error() string {
	s := fmt.Sprintf("notify: %s: POST %s", e.Notifier, e.URL)
	if e.StatusCode != 0 {
		s += fmt.Sprintf(": status %d", e.StatusCode)
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

// Unwrap returns the transport error, if any (never one holding the URL).
func (e *DeliveryError) Unwrap() error { return e.err }

// permanentStatus reports whether an HTTP status means "do not retry".
func permanentStatus(code int) bool {
	return code >= 400 && code < 500 && code != 408 && code != 429
}

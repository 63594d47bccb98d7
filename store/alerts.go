package store

import (
	"fmt"
	"time"

	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Alert claims (ClaimAlert): the replicated half of the alerts' dedup. A
// node that observes an event claims its key; the first claim within the
// window wins and that node alerts, the others are refused and stay quiet.
// Keys are SHA-256 hashes chosen by the caller; the store only compares.

// maxAlertClaimWindow bounds ClaimAlert.window_nanos (7 days).
const maxAlertClaimWindow int64 = 7 * 24 * 3600 * 1e9

// --- typed transaction ---

func (t *boltTxn) alertClaim(key []byte) (*storev1.AlertClaim, error) {
	c := new(storev1.AlertClaim)
	ok, err := t.getMsg(iAlertClaims, key, c)
	if !ok {
		return nil, err
	}
	return c, nil
}

func (t *boltTxn) putAlertClaim(c *storev1.AlertClaim) error {
	old, err := t.alertClaim(c.GetKey())
	if err != nil {
		return err
	}
	if err := t.putMsg(iAlertClaims, c.GetKey(), c); err != nil {
		return err
	}
	return t.moveExpiry(kindAlertClaim, c.GetKey(), old.GetExpiresUnixNano(), c.GetExpiresUnixNano(), old != nil)
}

func (t *boltTxn) deleteAlertClaim(key []byte) error {
	old, err := t.alertClaim(key)
	if err != nil || old == nil {
		return err
	}
	if err := t.b[iAlertClaims].Delete(key); err != nil {
		return err
	}
	return t.dropExpiry(kindAlertClaim, key, old.GetExpiresUnixNano())
}

// --- rules ---

// claimAlert implements ClaimAlert (its shape is checked by
// validateCommand): a key that is not held at now is claimed by the node
// until now + window; a held key is refused with CONFLICT.
func claimAlert(t txn, now int64, op *storev1.ClaimAlert) (*storev1.Result, error) {
	c, err := t.alertClaim(op.GetKey())
	if err != nil {
		return nil, err
	}
	if c != nil && c.GetExpiresUnixNano() > now {
		return refuse(storev1.ErrorCode_ERROR_CODE_CONFLICT, "alert already claimed by %s at %s, until %s",
			c.GetNodeId(), time.Unix(0, c.GetClaimedUnixNano()).UTC().Format(time.RFC3339), time.Unix(0, c.GetExpiresUnixNano()).UTC().Format(time.RFC3339)), nil
	}
	c = &storev1.AlertClaim{Key: op.GetKey(), NodeId: op.GetNodeId(), ClaimedUnixNano: now, ExpiresUnixNano: now + op.GetWindowNanos()}
	if err := t.putAlertClaim(c); err != nil {
		return nil, fmt.Errorf("store: alert claim: %w", err)
	}
	return &storev1.Result{}, nil
}

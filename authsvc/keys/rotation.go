package keys

import (
	"errors"
	"time"
)

// RotationPolicy says how long keys sign and stay published.
type RotationPolicy struct {
	// SigningPeriod is how long each key signs (e.g. 24h). Must be > 0.
	SigningPeriod time.Duration
	// PrePublish is how long a new key is published before it starts
	// signing, so verifiers learn it first (e.g. 1h). 0 <= PrePublish <
	// SigningPeriod.
	PrePublish time.Duration
	// MaxTokenLifetime is the longest lifetime of any token signed with
	// these keys (include clock-skew leeway). A retired key stays published
	// this long after it stops signing. Must be >= 0.
	MaxTokenLifetime time.Duration
}

// Validate reports whether p can be used by PlanRotation.
func (p RotationPolicy) Validate() error {
	switch {
	case p.SigningPeriod <= 0:
		return errors.New("keys: rotation policy: SigningPeriod must be positive")
	case p.PrePublish < 0 || p.PrePublish >= p.SigningPeriod:
		return errors.New("keys: rotation policy: PrePublish must be in [0, SigningPeriod)")
	case p.MaxTokenLifetime < 0:
		return errors.New("keys: rotation policy: MaxTokenLifetime must not be negative")
	}
	return nil
}

// PlanRotation decides, from the keys that exist (of one purpose), whether
// a new key must be created at now and with which dates. It is pure.
//
// Keys already retired (RetiresAt <= now) or expired (ExpiresAt <= now) are
// ignored. Among the others, the "last" key is the one with the latest
// ActivatesAt; its end is its RetiresAt, or ActivatesAt+SigningPeriod when
// RetiresAt is zero. Then:
//   - no such key: a key is needed at once: activatesAt = now;
//   - now >= end - PrePublish: the successor is needed; activatesAt = end,
//     or now if end has already passed (no signing gap, at the cost of a
//     shorter pre-publication when the planner ran late);
//   - otherwise no key is needed and the times are zero.
//
// For a new key, retiresAt = activatesAt + SigningPeriod and expiresAt =
// retiresAt + MaxTokenLifetime. Callers run it periodically, more often than
// PrePublish, so that successors are normally created PrePublish ahead. With
// a policy that fails Validate the result is unspecified (but PlanRotation
// does not panic).
func PlanRotation(keys []KeyInfo, now time.Time, policy RotationPolicy) (newKeyNeeded bool, activatesAt, retiresAt, expiresAt time.Time) {
	var last *KeyInfo
	for i := range keys {
		k := &keys[i]
		if !beforeOrNever(now, k.RetiresAt) || !beforeOrNever(now, k.ExpiresAt) {
			continue
		}
		if last == nil || k.ActivatesAt.After(last.ActivatesAt) {
			last = k
		}
	}
	switch {
	case last == nil:
		activatesAt = now
	default:
		end := last.RetiresAt
		if end.IsZero() {
			end = last.ActivatesAt.Add(policy.SigningPeriod)
		}
		if now.Before(end.Add(-policy.PrePublish)) {
			return false, time.Time{}, time.Time{}, time.Time{}
		}
		activatesAt = end
		if end.Before(now) {
			activatesAt = now
		}
	}
	retiresAt = activatesAt.Add(policy.SigningPeriod)
	expiresAt = retiresAt.Add(policy.MaxTokenLifetime)
	return true, activatesAt, retiresAt, expiresAt
}

package authsvc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sessiond/sessiond/authsvc/idp"
	"github.com/sessiond/sessiond/authsvc/keys"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
)

// Offline access: the upstream refresh tokens kept (sealed) in the links
// are used on the leader, every interval, to ask each provider whether it
// still accepts the user. When it answers that the grant is gone
// (invalid_grant: the account was deleted or disabled, or the user revoked
// sessiond's access) the user's sessions end everywhere with reason
// UPSTREAM_REVOKED, and checks answer upstream_revoked.

// maxRevalidatePass bounds the links one pass asks about.
const maxRevalidatePass = 10000

// RevalidationResult counts one pass.
type RevalidationResult struct {
	Checked, Revoked, Failed int
}

// RunUpstreamRevalidation revalidates the links every interval on the
// leader until ctx ends. Each provider call is bounded by callTimeout.
func (s *Service) RunUpstreamRevalidation(ctx context.Context, interval, callTimeout time.Duration) {
	if s.d.Upstream == nil || len(s.d.Upstream.Providers) == 0 || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.d.Cluster.IsLeader() {
			continue
		}
		res, err := s.RevalidateUpstream(ctx, callTimeout)
		if err != nil && ctx.Err() == nil {
			s.d.Logger.Warn("upstream revalidation pass failed", "err", err)
		}
		if res.Checked > 0 {
			s.d.Logger.Info("upstream revalidation pass", "checked", res.Checked, "revoked", res.Revoked, "failed", res.Failed)
		}
	}
}

// RevalidateUpstream runs one pass over every link holding a refresh
// token of a configured provider (at most maxRevalidatePass).
func (s *Service) RevalidateUpstream(ctx context.Context, callTimeout time.Duration) (RevalidationResult, error) {
	var res RevalidationResult
	ls, err := s.linkState()
	if err != nil {
		return res, err
	}
	if callTimeout <= 0 {
		callTimeout = 10 * time.Second
	}
	var links []*storev1.UpstreamLink
	err = ls.UpstreamLinks("", func(l *storev1.UpstreamLink) bool {
		if len(l.GetSealedRefreshToken()) > 0 && l.GetRevokedUnixNano() == 0 {
			if _, ok := s.d.Upstream.Providers[l.GetProvider()]; ok {
				links = append(links, l)
			}
		}
		return len(links) < maxRevalidatePass
	})
	if err != nil {
		return res, s.internal(err)
	}
	for _, l := range links {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Checked++
		revoked, err := s.revalidateLink(ctx, l, callTimeout)
		switch {
		case err != nil:
			res.Failed++
		case revoked:
			res.Revoked++
		}
	}
	return res, nil
}

// revalidateLink asks the provider about one link.
func (s *Service) revalidateLink(ctx context.Context, l *storev1.UpstreamLink, callTimeout time.Duration) (bool, error) {
	p := s.d.Upstream.Providers[l.GetProvider()]
	attrs := []slog.Attr{slog.String("provider", l.GetProvider()), slog.String("user", l.GetUserId())}
	rt, err := keys.OpenData(s.d.KEK, sealRefreshToken, l.GetSealedRefreshToken(), linkAAD(l.GetProvider(), l.GetSubject()))
	if err != nil {
		s.audit(ctx, "upstream_revalidation_failed", append(attrs, slog.String("why", "the sealed refresh token does not open"))...)
		return false, err
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	g, err := p.Provider.Refresh(cctx, string(rt))
	cancel()
	now := s.now()
	if errors.Is(err, idp.ErrRevoked) {
		why := err.Error()
		n, _, err := s.EndUserSessions(ctx, l.GetUserId(), storev1.EndReason_END_REASON_UPSTREAM_REVOKED)
		if err != nil {
			s.audit(ctx, "upstream_revalidation_failed", append(attrs, slog.String("why", "the sessions could not be ended: "+err.Error()))...)
			return false, err
		}
		s.audit(ctx, "upstream_revoked", append(attrs, slog.String("why", why), slog.Int("ended", n))...)
		next := proto.Clone(l).(*storev1.UpstreamLink)
		next.SealedRefreshToken, next.RevokedUnixNano, next.UpdatedUnixNano = nil, now.UnixNano(), now.UnixNano()
		if err := s.writeLink(ctx, next, false, now); err != nil {
			s.d.Logger.Warn("upstream link not marked revoked; the next pass asks again", "provider", l.GetProvider(), "user", l.GetUserId(), "err", err)
		}
		return true, nil
	}
	if err != nil {
		s.audit(ctx, "upstream_revalidation_failed", append(attrs, slog.String("why", err.Error()))...)
		return false, err
	}
	if g.Identity.Claims != nil && g.Identity.Subject != l.GetSubject() {
		s.audit(ctx, "upstream_revalidation_failed", append(attrs, slog.String("why", "the provider's refreshed ID token names another subject"))...)
		return false, errors.New("subject changed")
	}
	next := proto.Clone(l).(*storev1.UpstreamLink)
	next.UpdatedUnixNano, next.ValidatedUnixNano = now.UnixNano(), now.UnixNano()
	if g.RefreshToken != "" {
		sealed, err := keys.SealData(s.d.KEK, sealRefreshToken, []byte(g.RefreshToken), linkAAD(l.GetProvider(), l.GetSubject()))
		if err != nil {
			return false, s.internal(err)
		}
		next.SealedRefreshToken = sealed
	}
	if err := s.writeLink(ctx, next, false, now); err != nil {
		return false, err
	}
	s.audit(ctx, "upstream_revalidated", attrs...)
	return false, nil
}

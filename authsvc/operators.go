package authsvc

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/authsvc/callers"
	storev1 "github.com/sessiond/sessiond/proto/gen/sessiond/store/v1"
	"github.com/sessiond/sessiond/store"
)

// Operator token lifetimes.
const (
	DefaultOperatorTokenTTL = 30 * 24 * time.Hour
	MaxOperatorTokenTTL     = 365 * 24 * time.Hour
)

// OperatorTokenState is the part of the local state that holds operator
// tokens; *store.Store implements it. The service finds it on its State.
type OperatorTokenState interface {
	OperatorToken(id string, now time.Time) (*storev1.OperatorToken, error)
	OperatorTokens(now time.Time) ([]*storev1.OperatorToken, error)
}

func (s *Service) operatorState() (OperatorTokenState, error) {
	st, ok := s.d.State.(OperatorTokenState)
	if !ok {
		return nil, newErr(KindUnavailable, "unavailable", "this node keeps no operator tokens")
	}
	return st, nil
}

// callerErr converts a callers refusal into a service error.
func callerErr(err error) error {
	var ce *callers.Error
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Code {
	case callers.CodeInvalid:
		return newErr(KindInvalid, "invalid_request", ce.Message)
	case callers.CodeForbidden:
		return newErr(KindForbidden, "forbidden", ce.Message)
	}
	return newErr(KindUnauthenticated, "unauthenticated", ce.Message)
}

// CreateOperatorToken creates a named operator token for by, which must
// hold every scope it grants. ttl 0 means DefaultOperatorTokenTTL; at most
// MaxOperatorTokenTTL. It returns the token (shown once: only its hash is
// stored) and its record.
func (s *Service) CreateOperatorToken(ctx context.Context, by callers.Principal, name string, scopes []string, ttl time.Duration) (string, *storev1.OperatorToken, error) {
	if !store.OperatorTokenNameRE.MatchString(name) {
		return "", nil, newErr(KindInvalid, "invalid_request", "name: want 1-64 of a-z 0-9 . _ - starting with a letter or digit")
	}
	scopes = slices.Compact(slices.Sorted(slices.Values(scopes)))
	if err := callers.CheckGrantable(by, scopes); err != nil {
		return "", nil, callerErr(err)
	}
	switch {
	case ttl == 0:
		ttl = DefaultOperatorTokenTTL
	case ttl < time.Minute || ttl > MaxOperatorTokenTTL:
		return "", nil, newErr(KindInvalid, "invalid_request", "ttl: want 1m to 8760h (365 days)")
	}
	tok, id, hash := callers.NewOperatorToken()
	now := s.now()
	rec := &storev1.OperatorToken{
		Id: id, Name: name, Scopes: scopes, SecretSha256: hash[:], CreatedUnixNano: now.UnixNano(),
		ExpiresUnixNano: now.Add(ttl).UnixNano(), CreatedBy: by.ID(),
	}
	_, res, err := s.propose(ctx, now, &storev1.Command{Op: &storev1.Command_PutOperatorToken{PutOperatorToken: &storev1.PutOperatorToken{Token: rec}}})
	if err != nil {
		return "", nil, err
	}
	if res.GetCode() == storev1.ErrorCode_ERROR_CODE_CONFLICT {
		return "", nil, newErr(KindConflict, "conflict", res.GetMessage())
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return "", nil, s.resultErr(res)
	}
	s.audit(ctx, "operator_token_created", slog.String("by", by.String()), slog.String("token_id", id),
		slog.String("name", name), slog.String("scopes", strings.Join(scopes, ",")), slog.Time("expires", now.Add(ttl)))
	return tok, rec, nil
}

// ListOperatorTokens lists the live operator tokens by name, as of every
// write acknowledged before the call.
func (s *Service) ListOperatorTokens(ctx context.Context) ([]*storev1.OperatorToken, error) {
	st, err := s.operatorState()
	if err != nil {
		return nil, err
	}
	if err := s.d.Cluster.Sync(ctx); err != nil {
		return nil, clusterUnavailable("cannot reach the leader for a consistent read", err)
	}
	list, err := st.OperatorTokens(s.now())
	if err != nil {
		return nil, s.internal(err)
	}
	return list, nil
}

// RevokeOperatorToken revokes the token with this id or name. It returns
// the token's id and the revocation's log index.
func (s *Service) RevokeOperatorToken(ctx context.Context, by callers.Principal, idOrName string) (string, uint64, error) {
	list, err := s.ListOperatorTokens(ctx)
	if err != nil {
		return "", 0, err
	}
	i := slices.IndexFunc(list, func(o *storev1.OperatorToken) bool { return o.GetId() == idOrName || o.GetName() == idOrName })
	if i < 0 {
		return "", 0, newErr(KindNotFound, "not_found", "no live operator token has this id or name")
	}
	id := list[i].GetId()
	idx, res, err := s.propose(ctx, s.now(), &storev1.Command{Op: &storev1.Command_DeleteOperatorToken{DeleteOperatorToken: &storev1.DeleteOperatorToken{Id: id}}})
	if err != nil {
		return "", 0, err
	}
	if res.GetCode() == storev1.ErrorCode_ERROR_CODE_NOT_FOUND {
		return "", 0, newErr(KindNotFound, "not_found", "no live operator token has this id or name")
	}
	if res.GetCode() != storev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return "", 0, s.resultErr(res)
	}
	s.audit(ctx, "operator_token_revoked", slog.String("by", by.String()), slog.String("token_id", id), slog.String("name", list[i].GetName()))
	return id, idx, nil
}

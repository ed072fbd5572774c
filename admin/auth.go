package admin

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/keycache"
)

// What an unauthenticated client can make the admin API do: parse one header,
// check the token's form (anything but dd_ and 43 base64url characters is
// refused there), hash it, and look the hash up. Known tokens, revoked ones
// included, are served from a cache for DefaultTokenCacheTTL, so a revocation
// takes effect on every server within it; a hash the cache does not hold is
// read from the store through at most maxTokenLookups reads at once, waiting at
// most tokenLookupWait (then 503 busy), exactly as the gateway bounds unknown
// app keys. The body of a request is never read before its token is valid.
//
// The token is never logged nor echoed, and the answer does not say whether a
// refused token is unknown, revoked or malformed.

var (
	errNoToken = &apiError{http.StatusUnauthorized, codeUnauthorized,
		"an admin token is required: send Authorization: Bearer dd_… (daodian admin token create)"}
	errBadToken = &apiError{http.StatusUnauthorized, codeUnauthorized,
		"the admin token is not valid (unknown, revoked, or not an admin token)"}
	errTokenBusy = &apiError{http.StatusServiceUnavailable, codeBusy,
		"too many admin tokens being checked at once; retry"}
)

// authenticate returns the request's valid token, or the error to answer.
func (a *API) authenticate(c *call) (*daodian.AdminToken, *apiError) {
	vals := c.r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return nil, errNoToken
	case 1:
	default:
		return nil, errBadToken
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	token = strings.TrimLeft(token, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, errBadToken
	}
	return a.Authenticate(c.r.Context(), token, c.requestID)
}

// Authenticate returns the valid admin token token, or the error to answer
// (401 for a token that is malformed, unknown or revoked, without saying
// which). requestID names the request in the log line of an internal error.
func (a *API) Authenticate(ctx context.Context, token, requestID string) (*daodian.AdminToken, *Error) {
	if !daodian.WellFormedAdminToken(token) {
		return nil, errBadToken
	}
	return a.TokenByHash(ctx, daodian.HashAdminToken(token), requestID)
}

// TokenByHash returns the valid admin token with the hash (HashAdminToken),
// through the token cache: a token revoked is refused within
// Config.TokenCacheTTL. The console re-checks its sessions' tokens this way
// on every request.
func (a *API) TokenByHash(ctx context.Context, hash, requestID string) (*daodian.AdminToken, *Error) {
	tok, err := a.tokens.Get(ctx, hash, func(ctx context.Context) (*daodian.AdminToken, error) {
		return a.ledger.AdminTokenByHash(ctx, hash)
	})
	switch {
	case err == nil:
	case errors.Is(err, daodian.ErrNotFound):
		return nil, errBadToken
	case errors.Is(err, keycache.ErrBusy):
		return nil, errTokenBusy
	case errors.Is(err, daodian.ErrTransient):
		return nil, errUnavailable
	default:
		a.cfg.Logger.Error("admin token lookup failed", "request_id", requestID, "err", err)
		return nil, errInternal(requestID)
	}
	if tok.Revoked() {
		return nil, errBadToken
	}
	return tok, nil
}

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
	if !ok || !strings.EqualFold(scheme, "Bearer") || !daodian.WellFormedAdminToken(token) {
		return nil, errBadToken
	}
	hash := daodian.HashAdminToken(token)
	tok, err := a.tokens.Get(c.r.Context(), hash, func(ctx context.Context) (*daodian.AdminToken, error) {
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
		a.cfg.Logger.Error("admin token lookup failed", "request_id", c.requestID, "err", err)
		return nil, errInternal(c.requestID)
	}
	if tok.Revoked() {
		return nil, errBadToken
	}
	return tok, nil
}

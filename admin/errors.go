package admin

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/daodian/daodian"
)

// Error codes of the admin API: stable, one per kind of fault, each with its
// HTTP status. A client branches on the code; the message is for people.
const (
	codeUnauthorized         = "unauthorized"           // 401: no token, or not a valid one
	codeForbidden            = "forbidden"              // 403: a merchant outside the token's scope
	codeNotFound             = "not_found"              // 404: no such ticket, merchant or endpoint
	codeMethodNotAllowed     = "method_not_allowed"     // 405
	codeInvalidParameter     = "invalid_parameter"      // 400: a parameter missing, malformed or out of range
	codeBadCursor            = "bad_cursor"             // 400: a records cursor not made for this query
	codeBadFile              = "bad_file"               // 400: a POS file that does not parse (FILE:LINE: reason)
	codeRequestTimeout       = "request_timeout"        // 408: the body did not arrive in time
	codePayloadTooLarge      = "payload_too_large"      // 413
	codeUnsupportedMediaType = "unsupported_media_type" // 415
	codeBusy                 = "busy"                   // 503: a bounded resource is taken; retry
	codeUnavailable          = "unavailable"            // 503: the store failed transiently; retry
	codeInternal             = "internal"               // 500: a bug; logged with the request id
)

// apiError is an answer other than a success.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errNotFound(msg string) *apiError { return &apiError{http.StatusNotFound, codeNotFound, msg} }

func errInvalid(msg string) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidParameter, msg}
}

// errUnavailable is a transient failure of the store.
var errUnavailable = &apiError{http.StatusServiceUnavailable, codeUnavailable, "the store is busy or unreachable; retry"}

func errInternal(requestID string) *apiError {
	return &apiError{http.StatusInternalServerError, codeInternal, "internal error; the server's log has it under request_id " + requestID}
}

// errorBody is {"error": {"code", "message"}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// fail answers err.
func (c *call) fail(err *apiError) {
	h := c.w.Header()
	switch err.status {
	case http.StatusUnauthorized:
		// RFC 6750: a token that was sent and refused is invalid_token.
		if err == errBadToken {
			h.Set("WWW-Authenticate", `Bearer realm="daodian admin", error="invalid_token"`)
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="daodian admin"`)
		}
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "1")
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	var b errorBody
	b.Error.Code, b.Error.Message = err.code, err.message
	c.status, c.code, c.written = err.status, err.code, true
	c.w.WriteHeader(err.status)
	enc := json.NewEncoder(c.w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(b)
}

// failWith answers an error of the ledger: what the caller did wrong as 4xx,
// a transient store failure as 503, anything else as 500 (logged; the answer
// says only the request id, never the cause, which may name internals).
func (a *API) failWith(c *call, err error, notFound string) {
	var ip *daodian.InvalidParameter
	var pe *daodian.POSFileError
	switch {
	case errors.As(err, &ip):
		c.fail(errInvalid(ip.Error()))
	case errors.Is(err, daodian.ErrBadCursor):
		c.fail(&apiError{http.StatusBadRequest, codeBadCursor, err.Error()})
	case errors.As(err, &pe):
		c.fail(&apiError{http.StatusBadRequest, codeBadFile, pe.Error()})
	case errors.Is(err, daodian.ErrNoSuchShop): // before ErrNotFound, which it wraps
		c.fail(errNotFound("no such shop"))
	case errors.Is(err, daodian.ErrNotFound):
		c.fail(errNotFound(notFound))
	case errors.Is(err, daodian.ErrTransient):
		c.fail(errUnavailable)
	default:
		a.cfg.Logger.Error("admin request failed", "request_id", c.requestID, "err", err)
		c.fail(errInternal(c.requestID))
	}
}

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
	codeConflict             = "conflict"               // 409: exists already, a bound of the store is reached, an event not redeliverable
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

// Error is an answer of the admin API other than a success, as the console
// (package console) gets it from the API's Go methods: the HTTP status, the
// stable code and the message of the JSON answer.
type Error = apiError

func (e *apiError) Error() string { return e.code + ": " + e.message }

// Status is the error's HTTP status.
func (e *apiError) Status() int { return e.status }

// Code is the error's stable code (errors.go lists them).
func (e *apiError) Code() string { return e.code }

// Message is the error's text for people.
func (e *apiError) Message() string { return e.message }

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

// failWith answers an error of the ledger (errorOf).
func (a *API) failWith(c *call, err error, notFound string) {
	c.fail(a.errorOf(err, c.requestID, notFound))
}

// errorOf is the answer to an error of the ledger: what the caller did wrong
// as 4xx (notFound is the message of a 404), a transient store failure as
// 503, anything else as 500 (logged; the answer says only the request id,
// never the cause, which may name internals).
func (a *API) errorOf(err error, requestID, notFound string) *apiError {
	var ip *daodian.InvalidParameter
	var pe *daodian.POSFileError
	var nf *daodian.NotFoundError
	switch {
	case errors.As(err, &ip):
		return errInvalid(ip.Error())
	case errors.Is(err, daodian.ErrBadCursor):
		return &apiError{http.StatusBadRequest, codeBadCursor, err.Error()}
	case errors.As(err, &pe):
		return &apiError{http.StatusBadRequest, codeBadFile, pe.Error()}
	case errors.As(err, &nf): // before ErrNotFound, which it wraps: says which of the things named is missing
		return errNotFound("no such " + nf.What)
	case errors.Is(err, daodian.ErrNoSuchShop): // before ErrNotFound, which it wraps
		return errNotFound("no such shop")
	case errors.Is(err, daodian.ErrNotFound):
		return errNotFound(notFound)
	case errors.Is(err, daodian.ErrTooManyFaultRules):
		return &apiError{http.StatusConflict, codeConflict, err.Error()}
	case errors.Is(err, daodian.ErrTransient):
		return errUnavailable
	}
	a.cfg.Logger.Error("admin request failed", "request_id", requestID, "err", err)
	return errInternal(requestID)
}

// NewError returns an error answer: for the console, which answers faults of
// its own forms as the API answers its parameters.
func NewError(status int, code, message string) *Error {
	return &apiError{status: status, code: code, message: message}
}

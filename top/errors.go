package top

import (
	"strconv"
	"time"
)

// Error is a platform-level error (SPEC §3.5), rendered as an error_response.
// SubCode and SubMsg are omitted from the response when empty.
type Error struct {
	Code    int
	Msg     string
	SubCode string
	SubMsg  string
}

// Error formats the error for logs; the wire form is produced by AppendError.
func (e *Error) Error() string {
	if e == nil {
		return "top: <nil>"
	}
	s := "top: " + strconv.Itoa(e.Code) + " " + e.Msg
	if e.SubCode != "" {
		s += ": " + e.SubCode
	}
	if e.SubMsg != "" {
		s += ": " + e.SubMsg
	}
	return s
}

// Messages of §3.5. They are part of the wire contract: clients match on them.
const (
	msgAppCallLimited     = "App Call Limited"
	msgInsufficientPerms  = "Insufficient ISV Permissions"
	msgRemoteService      = "Remote service error"
	msgMissingMethod      = "Missing Method"
	msgInvalidMethod      = "Invalid Method"
	msgInvalidFormat      = "Invalid Format"
	msgMissingSignature   = "Missing Signature"
	msgInvalidSignature   = "Invalid Signature"
	msgMissingAppKey      = "Missing App Key"
	msgInvalidAppKey      = "Invalid App Key"
	msgMissingTimestamp   = "Missing Timestamp"
	msgInvalidTimestamp   = "Invalid Timestamp"
	msgMissingVersion     = "Missing Version"
	msgInvalidVersion     = "Invalid Version"
	msgUnsupportedVersion = "Unsupported Version"
	msgMissingArguments   = "Missing Required Arguments"
	msgInvalidArguments   = "Invalid Arguments"
)

// Sub codes of §3.5.
const (
	// SubCodeAppCallLimited is the sub_code of code 7.
	SubCodeAppCallLimited = "accesscontrol.limited-by-app-access-count"
	// SubCodeMissingParameter prefixes the name of the missing argument in code 40.
	SubCodeMissingParameter = "isv.missing-parameter"
	// SubCodeInvalidParameter is the sub_code of business-parameter validation (code 50).
	SubCodeInvalidParameter = "isv.invalid-parameter"
)

// ErrAppCallLimited is code 7. The sub_msg tells the caller how long to back off,
// rounded up to whole seconds so that a caller who waits exactly that long is not
// refused again.
func ErrAppCallLimited(retryAfter time.Duration) *Error {
	secs := int64(retryAfter / time.Second)
	if retryAfter%time.Second > 0 {
		secs++
	}
	if secs < 1 {
		secs = 1
	}
	return &Error{
		Code:    7,
		Msg:     msgAppCallLimited,
		SubCode: SubCodeAppCallLimited,
		SubMsg:  "This ban will last for " + strconv.FormatInt(secs, 10) + " more seconds",
	}
}

// ErrInsufficientPermissions is code 11: the app is not granted the method.
func ErrInsufficientPermissions() *Error { return &Error{Code: 11, Msg: msgInsufficientPerms} }

// ErrRemoteService is code 15: the method failed unexpectedly (a bug or an outage).
func ErrRemoteService() *Error { return &Error{Code: 15, Msg: msgRemoteService} }

// ErrMissingMethod is code 21: no method parameter.
func ErrMissingMethod() *Error { return &Error{Code: 21, Msg: msgMissingMethod} }

// ErrInvalidMethod is code 22: an unknown method.
func ErrInvalidMethod() *Error { return &Error{Code: 22, Msg: msgInvalidMethod} }

// ErrInvalidFormat is code 23: format is neither xml nor json.
func ErrInvalidFormat() *Error { return &Error{Code: 23, Msg: msgInvalidFormat} }

// ErrMissingSignature is code 24: no sign parameter.
func ErrMissingSignature() *Error { return &Error{Code: 24, Msg: msgMissingSignature} }

// ErrInvalidSignature is code 25: a wrong sign or an unknown sign_method.
func ErrInvalidSignature() *Error { return &Error{Code: 25, Msg: msgInvalidSignature} }

// ErrMissingAppKey is code 28: no app_key parameter.
func ErrMissingAppKey() *Error { return &Error{Code: 28, Msg: msgMissingAppKey} }

// ErrInvalidAppKey is code 29: an unknown or disabled app.
func ErrInvalidAppKey() *Error { return &Error{Code: 29, Msg: msgInvalidAppKey} }

// ErrMissingTimestamp is code 30: no timestamp parameter.
func ErrMissingTimestamp() *Error { return &Error{Code: 30, Msg: msgMissingTimestamp} }

// ErrInvalidTimestamp is code 31: an unparseable timestamp or one outside the window.
func ErrInvalidTimestamp() *Error { return &Error{Code: 31, Msg: msgInvalidTimestamp} }

// ErrMissingVersion is code 32: no v parameter.
func ErrMissingVersion() *Error { return &Error{Code: 32, Msg: msgMissingVersion} }

// ErrInvalidVersion is code 33: a malformed v.
func ErrInvalidVersion() *Error { return &Error{Code: 33, Msg: msgInvalidVersion} }

// ErrUnsupportedVersion is code 34: a well-formed v other than 2.0.
func ErrUnsupportedVersion() *Error { return &Error{Code: 34, Msg: msgUnsupportedVersion} }

// ErrMissingArgument is code 40: the method's required business parameter name is
// absent. The name travels in the sub_code, as on the real platform.
func ErrMissingArgument(name string) *Error {
	return &Error{Code: 40, Msg: msgMissingArguments, SubCode: SubCodeMissingParameter + ":" + name}
}

// ErrInvalidArguments is code 41: a protocol-level fault of the request itself
// (a repeated parameter, bytes that are not UTF-8, a body over the limit); why
// becomes the sub_msg.
func ErrInvalidArguments(why string) *Error {
	return &Error{Code: 41, Msg: msgInvalidArguments, SubMsg: why}
}

// ErrInvalidParameter is code 50 with sub_code isv.invalid-parameter: business
// parameter validation inside a method. why names the field and the fault, e.g.
// "request_id 不能为空", and is appended to the platform's "非法参数" prefix.
func ErrInvalidParameter(why string) *Error {
	msg := "非法参数"
	if why != "" {
		msg += ":" + why
	}
	return &Error{Code: 50, Msg: msgRemoteService, SubCode: SubCodeInvalidParameter, SubMsg: msg}
}

// ErrBusiness is code 50 with a method-specific sub_code (e.g. isv.ticket-not-found),
// for business refusals that the method's contract reports as error_response.
func ErrBusiness(subCode, subMsg string) *Error {
	return &Error{Code: 50, Msg: msgRemoteService, SubCode: subCode, SubMsg: subMsg}
}

package top

import (
	"testing"
	"time"
)

func TestErrorConstructors(t *testing.T) {
	cases := []struct {
		err                  *Error
		code                 int
		msg, subCode, subMsg string
	}{
		{ErrAppCallLimited(3 * time.Second), 7, "App Call Limited", "accesscontrol.limited-by-app-access-count", "This ban will last for 3 more seconds"},
		{ErrAppCallLimited(1500 * time.Millisecond), 7, "App Call Limited", "accesscontrol.limited-by-app-access-count", "This ban will last for 2 more seconds"},
		{ErrAppCallLimited(0), 7, "App Call Limited", "accesscontrol.limited-by-app-access-count", "This ban will last for 1 more seconds"},
		{ErrAppCallLimited(-time.Hour), 7, "App Call Limited", "accesscontrol.limited-by-app-access-count", "This ban will last for 1 more seconds"},
		{ErrInsufficientPermissions(), 11, "Insufficient ISV Permissions", "", ""},
		{ErrRemoteService(), 15, "Remote service error", "", ""},
		{ErrMissingMethod(), 21, "Missing Method", "", ""},
		{ErrInvalidMethod(), 22, "Invalid Method", "", ""},
		{ErrInvalidFormat(), 23, "Invalid Format", "", ""},
		{ErrMissingSignature(), 24, "Missing Signature", "", ""},
		{ErrInvalidSignature(), 25, "Invalid Signature", "", ""},
		{ErrMissingAppKey(), 28, "Missing App Key", "", ""},
		{ErrInvalidAppKey(), 29, "Invalid App Key", "", ""},
		{ErrMissingTimestamp(), 30, "Missing Timestamp", "", ""},
		{ErrInvalidTimestamp(), 31, "Invalid Timestamp", "", ""},
		{ErrMissingVersion(), 32, "Missing Version", "", ""},
		{ErrInvalidVersion(), 33, "Invalid Version", "", ""},
		{ErrUnsupportedVersion(), 34, "Unsupported Version", "", ""},
		{ErrMissingArgument("ticket_reverse_top_request"), 40, "Missing Required Arguments", "isv.missing-parameter:ticket_reverse_top_request", ""},
		{ErrInvalidArguments("why"), 41, "Invalid Arguments", "", "why"},
		{ErrInvalidParameter("request_id 不能为空"), 50, "Remote service error", "isv.invalid-parameter", "非法参数:request_id 不能为空"},
		{ErrInvalidParameter(""), 50, "Remote service error", "isv.invalid-parameter", "非法参数"},
		{ErrBusiness("isv.ticket-not-found", "凭证不存在"), 50, "Remote service error", "isv.ticket-not-found", "凭证不存在"},
	}
	for _, c := range cases {
		e := c.err
		if e.Code != c.code || e.Msg != c.msg || e.SubCode != c.subCode || e.SubMsg != c.subMsg {
			t.Errorf("got %+v; want %d %q %q %q", *e, c.code, c.msg, c.subCode, c.subMsg)
		}
	}
	// Constructors return fresh values, so a caller adjusting one cannot corrupt another.
	a, b := ErrInvalidSignature(), ErrInvalidSignature()
	if a == b {
		t.Error("constructors share a value")
	}
}

func TestErrorString(t *testing.T) {
	if got := ErrInvalidParameter("x").Error(); got != "top: 50 Remote service error: isv.invalid-parameter: 非法参数:x" {
		t.Errorf("Error() = %q", got)
	}
	if got := ErrMissingMethod().Error(); got != "top: 21 Missing Method" {
		t.Errorf("Error() = %q", got)
	}
	var nilErr *Error
	if got := nilErr.Error(); got != "top: <nil>" {
		t.Errorf("nil Error() = %q", got)
	}
}

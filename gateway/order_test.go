package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
)

// Faults a request can carry, one per check of SPEC §3.5.
const (
	fNoMethod     = "no method"
	fBadMethod    = "unknown method"
	fNoAppKey     = "no app_key"
	fBadApp       = "unknown app"
	fNoVersion    = "no v"
	fBadVersion   = "v=abc"
	fOldVersion   = "v=3.0"
	fBadFormat    = "format=yaml"
	fNoTimestamp  = "no timestamp"
	fBadTimestamp = "timestamp an hour old"
	fNoSign       = "no sign"
	fBadSign      = "wrong sign"
	fLimited      = "over rate limit"
	fNoPermission = "method not granted"
	fNoParam      = "consult_request missing"
	fBadParam     = "consult_request not JSON"
)

// faultCode is the code each fault gets when it is the first.
var faultCode = map[string]int{
	fNoMethod: 21, fBadMethod: 22, fNoAppKey: 28, fBadApp: 29, fNoVersion: 32, fBadVersion: 33,
	fOldVersion: 34, fBadFormat: 23, fNoTimestamp: 30, fBadTimestamp: 31, fNoSign: 24, fBadSign: 25,
	fLimited: 7, fNoPermission: 11, fNoParam: 40, fBadParam: 50,
}

// orderEnv is a gateway with four apps: granted every method or only
// taobao.time.get, each unlimited or at 1 call/s with the call already spent.
func orderEnv(t *testing.T) *env {
	t.Helper()
	e := stdEnv(t, envOpts{})
	narrow := []string{alsc.MethodTimeGet}
	e.addApp(daodian.App{Key: "narrow", Secret: "ns", Enabled: true, Methods: narrow})
	e.addApp(daodian.App{Key: "limited", Secret: "ls", Enabled: true, RateLimitPerS: 1})
	e.addApp(daodian.App{Key: "limited-narrow", Secret: "lns", Enabled: true, RateLimitPerS: 1, Methods: narrow})
	// Spend the limited apps' call; the clock stays put, so the buckets stay empty.
	e.expectOK(e.get(signed(e.pubParams(alsc.MethodTimeGet, "limited"), "ls")))
	e.expectOK(e.get(signed(e.pubParams(alsc.MethodTimeGet, "limited-narrow"), "lns")))
	return e
}

// faulty sends a consult carrying the given faults, in an urlencoded POST.
func (e *env) faulty(faults ...string) answer {
	e.t.Helper()
	has := map[string]bool{}
	for _, f := range faults {
		if _, ok := faultCode[f]; !ok {
			e.t.Fatalf("unknown fault %q", f)
		}
		has[f] = true
	}
	key, secret := testKey, testSecret
	switch {
	case has[fLimited] && has[fNoPermission]:
		key, secret = "limited-narrow", "lns"
	case has[fLimited]:
		key, secret = "limited", "ls"
	case has[fNoPermission]:
		key, secret = "narrow", "ns"
	}
	p := e.pubParams(alsc.MethodConsult, key)
	p["consult_request"] = validConsult
	set := func(f, name, value string) {
		if has[f] {
			if value == "" {
				delete(p, name)
			} else {
				p[name] = value
			}
		}
	}
	set(fNoMethod, "method", "")
	set(fBadMethod, "method", "taobao.no.such")
	set(fNoAppKey, "app_key", "")
	set(fBadApp, "app_key", "nobody")
	set(fNoVersion, "v", "")
	set(fBadVersion, "v", "abc")
	set(fOldVersion, "v", "3.0")
	set(fBadFormat, "format", "yaml")
	set(fNoTimestamp, "timestamp", "")
	set(fBadTimestamp, "timestamp", tsText(t0.Add(-time.Hour)))
	set(fNoParam, "consult_request", "")
	set(fBadParam, "consult_request", "not json")
	signed(p, secret)
	set(fBadSign, "sign", specSign(p, secret+"x", p["sign_method"]))
	set(fNoSign, "sign", "")
	return e.post(nil, p)
}

// TestCheckOrder: with several faults, the first in the order of SPEC §3.5 answers.
func TestCheckOrder(t *testing.T) {
	tests := []struct {
		faults []string
		code   int
	}{
		{[]string{fNoMethod, fBadSign}, 21},
		{[]string{fNoMethod, fBadApp}, 21},
		{[]string{fBadMethod, fNoAppKey}, 22},
		{[]string{fBadApp, fBadVersion}, 29},
		{[]string{fNoAppKey, fNoVersion}, 28},
		{[]string{fNoVersion, fBadFormat}, 32},
		{[]string{fBadVersion, fBadFormat}, 33},
		{[]string{fOldVersion, fBadFormat}, 34},
		{[]string{fBadFormat, fBadTimestamp}, 23},
		{[]string{fBadFormat, fNoTimestamp}, 23},
		{[]string{fBadTimestamp, fBadSign}, 31},
		{[]string{fNoTimestamp, fNoSign}, 30},
		{[]string{fBadSign, fLimited}, 25},
		{[]string{fNoSign, fLimited}, 24},
		{[]string{fLimited, fNoPermission}, 7},
		{[]string{fNoPermission, fNoParam}, 11},
		{[]string{fNoPermission, fBadParam}, 11},
		{[]string{fLimited, fNoParam}, 7},
		{[]string{fBadSign, fNoParam}, 25},
		{[]string{fBadApp, fBadSign, fLimited, fNoPermission}, 29},
	}
	e := orderEnv(t)
	for _, tt := range tests {
		t.Run(strings.Join(tt.faults, "+"), func(t *testing.T) {
			e.t = t
			e.expectError(e.faulty(tt.faults...), want{code: tt.code})
		})
	}
}

// TestCheckOrderWalk starts from a request with one fault per check and fixes them
// one at a time, first to last: each step must be answered by the next check.
func TestCheckOrderWalk(t *testing.T) {
	// One gateway for every walk: the limited apps' buckets stay empty because the
	// clock does not move.
	e := orderEnv(t)
	for _, version := range []string{fNoVersion, fBadVersion, fOldVersion} {
		for _, ts := range []string{fNoTimestamp, fBadTimestamp} {
			for _, sign := range []string{fNoSign, fBadSign} {
				for _, param := range []string{fNoParam, fBadParam} {
					order := []string{fNoMethod, fBadApp, version, fBadFormat, ts, sign, fLimited, fNoPermission, param}
					t.Run(strings.Join([]string{version, ts, sign, param}, ","), func(t *testing.T) {
						e.t = t
						for i := range order {
							e.expectError(e.faulty(order[i:]...), want{code: faultCode[order[i]]})
						}
						e.expectOK(e.faulty())
					})
				}
			}
		}
	}
	// The method and app-key checks in their other forms.
	t.Run("unknown method, no app_key", func(t *testing.T) {
		e.t = t
		order := []string{fBadMethod, fNoAppKey, fOldVersion, fBadFormat, fBadTimestamp, fBadSign, fNoParam}
		for i := range order {
			e.expectError(e.faulty(order[i:]...), want{code: faultCode[order[i]]})
		}
		e.expectOK(e.faulty())
	})
}

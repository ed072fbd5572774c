package client_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/spectest"
	"github.com/daodian/daodian/top"
)

var signMethods = []string{top.SignMD5, top.SignHMAC, top.SignHMACSHA256}

var formats = []struct {
	name     string
	format   top.Format
	simplify bool
}{
	{"xml", top.XML, false},
	{"json", top.JSON, false},
	{"json+simplify", top.JSON, true},
}

// TestTimeGet: every sign method in every format, against the real gateway.
func TestTimeGet(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	ctx := context.Background()
	seen := map[string]bool{}
	for _, sm := range signMethods {
		for _, f := range formats {
			for _, epoch := range []bool{false, true} {
				name := sm + "/" + f.name
				opts := []client.Option{client.WithSignMethod(sm), client.WithFormat(f.format, f.simplify)}
				if epoch {
					name += "/epoch-ms"
					opts = append(opts, client.WithEpochMillis())
				}
				t.Run(name, func(t *testing.T) {
					c := e.client(opts...)
					r, err := c.TimeGet(ctx)
					if err != nil {
						t.Fatalf("TimeGet: %v", err)
					}
					if r.Time != t0Text {
						t.Fatalf("time %q, want %q", r.Time, t0Text)
					}
					if r.RequestID == "" || seen[r.RequestID] {
						t.Fatalf("request_id %q empty or repeated", r.RequestID)
					}
					seen[r.RequestID] = true

					var r2 alsc.TimeGetResponse
					if err := c.Execute(ctx, alsc.TimeGetRequest{}, &r2); err != nil {
						t.Fatalf("Execute: %v", err)
					}
					if r2.Time != t0Text || r2.RequestID == "" || r2.RequestID == r.RequestID {
						t.Fatalf("Execute decoded %+v", r2)
					}
				})
			}
		}
	}
}

// TestURLWithoutPath: a bare base URL gets /router/rest.
func TestURLWithoutPath(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	for _, u := range []string{e.srv.URL, e.srv.URL + "/"} {
		c := client.New(u, testKey, testSecret, client.WithClock(e.clock))
		if _, err := c.TimeGet(context.Background()); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
}

// TestTypedMethods: consult, use and reverse with typed requests and responses,
// lists included, decoded in every format.
func TestTypedMethods(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	ctx := context.Background()
	for i, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			c := e.client(client.WithFormat(f.format, f.simplify))
			is := e.issue(2)
			tk := is.Tickets[0]

			cr, err := c.Consult(ctx, alsc.ConsultTopRequest{RequestID: "c" + strconv.Itoa(i), ShopID: shop, TicketCode: tk.Code})
			if err != nil {
				t.Fatalf("Consult: %v", err)
			}
			if !cr.Result.Success || cr.Result.Value == nil || cr.RequestID == "" {
				t.Fatalf("Consult: %+v", cr)
			}
			v := cr.Result.Value
			if len(v.TicketInfoList) != 2 || v.AvailableQuantity != 2 {
				t.Fatalf("consult value: %+v", v)
			}
			first := v.TicketInfoList[0]
			if first.TicketID != tk.ID || first.TicketCode != tk.Code || first.TotalAmount != 9900 ||
				first.RealAmount != 8800 || first.OriginalPrice != 12800 || first.Quantity != 1 || first.TicketName != "洗剪吹" {
				t.Fatalf("first ticket: %+v", first)
			}
			if v.TicketInfoList[1].TicketCode != "" {
				t.Fatalf("sibling ticket carries a code: %+v", v.TicketInfoList[1])
			}
			if v.UserPhone != "*******4139" || v.AlscOrderNo != is.Order.OrderNo || v.AlscSubOrderNo != is.Order.SubOrderNo {
				t.Fatalf("consult value: %+v", v)
			}

			ur, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: shop, Quantity: 1, TicketRequestID: "u" + strconv.Itoa(i)})
			if err != nil {
				t.Fatalf("Use: %v", err)
			}
			if ur.TicketTransID == "" || ur.TicketCode != tk.Code || len(ur.TicketUseDetails) != 1 ||
				ur.TicketUseDetails[0].TicketID != tk.ID || ur.BuyerPayAmount != "99.00" {
				t.Fatalf("Use: %+v", ur)
			}

			rr, err := c.ReverseWithRetry(ctx, alsc.TicketReverseTopRequest{TicketUseTransID: ur.TicketTransID, TicketID: tk.ID},
				client.RetryPolicy{BaseDelay: time.Millisecond})
			if err != nil {
				t.Fatalf("Reverse: %v", err)
			}
			if !rr.Result.Success || rr.RequestID == "" {
				t.Fatalf("Reverse: %+v", rr)
			}

			cr, err = c.Consult(ctx, alsc.ConsultTopRequest{RequestID: "c" + strconv.Itoa(i), ShopID: shop, TicketCode: tk.Code})
			if err != nil || cr.Result.Value == nil || cr.Result.Value.AvailableQuantity != 2 {
				t.Fatalf("Consult after the reversal: %+v, %v", cr, err)
			}

			// A business failure of the reversal is an answer, not an error.
			rr, err = c.Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: "x" + strconv.Itoa(i), TicketID: "1234567890123456789"})
			if err != nil {
				t.Fatalf("Reserve: %v", err)
			}
			if rr.Result.Success || rr.Result.ErrorCode != daodian.CodeTicketNotFound || rr.Result.Retry {
				t.Fatalf("Reserve of an unknown ticket: %+v", rr.Result)
			}
		})
	}
}

// TestPlatformError: an error_response comes back as *client.Error, every field filled.
func TestPlatformError(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	e.addApp(daodian.App{Key: "limited", Secret: "ls", Enabled: true, RateLimitPerS: 1})
	ctx := context.Background()
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			opt := client.WithFormat(f.format, f.simplify)
			check := func(err error, code int, msg, subCode, subMsgPrefix string) *client.Error {
				t.Helper()
				var ce *client.Error
				if !errors.As(err, &ce) {
					t.Fatalf("error %v (%T), want *client.Error", err, err)
				}
				anySubMsg := subMsgPrefix == "*"
				if anySubMsg {
					subMsgPrefix = ""
				}
				if ce.Code != code || ce.Msg != msg || ce.SubCode != subCode || !strings.HasPrefix(ce.SubMsg, subMsgPrefix) || ce.RequestID == "" {
					t.Fatalf("got %+v, want code %d msg %q sub_code %q sub_msg %q…", ce, code, msg, subCode, subMsgPrefix)
				}
				if subMsgPrefix == "" && !anySubMsg && ce.SubMsg != "" {
					t.Fatalf("unexpected sub_msg: %+v", ce)
				}
				if client.RetryableError(err) != (code == 7 || code == 15) {
					t.Fatalf("RetryableError(%d) = %v", code, client.RetryableError(err))
				}
				return ce
			}

			_, err := e.clientAs(testKey, "wrong", opt).TimeGet(ctx)
			check(err, 25, "Invalid Signature", "", "")
			_, err = e.clientAs("nobody", testSecret, opt).TimeGet(ctx)
			check(err, 29, "Invalid App Key", "", "")
			_, err = e.client(opt, client.WithSignMethod("sha1")).TimeGet(ctx)
			if err == nil || errors.As(err, new(*client.Error)) {
				t.Fatalf("an unknown sign method must fail in the SDK, got %v", err)
			}

			_, err = e.client(opt).Consult(ctx, alsc.ConsultTopRequest{ShopID: shop, TicketCode: "123456789012"})
			check(err, 50, "Remote service error", "isv.invalid-parameter", "非法参数")

			var cr alsc.ConsultResponse
			err = e.client(opt).Execute(ctx, &alsc.ConsultRequest{}, &cr)
			check(err, 40, "Missing Required Arguments", "isv.missing-parameter:consult_request", "")

			lim := e.clientAs("limited", "ls", opt)
			var ce *client.Error
			for i := 0; i < 3 && ce == nil; i++ {
				_, err = lim.TimeGet(ctx)
				if err != nil {
					ce = check(err, 7, "App Call Limited", top.SubCodeAppCallLimited, "*") // any sub_msg
				}
			}
			if ce == nil || ce.SubMsg == "" {
				t.Fatalf("no code 7 with a sub_msg from an app limited to 1/s: %+v", ce)
			}
			if !strings.Contains(ce.Error(), "7") || !strings.Contains(ce.Error(), ce.RequestID) {
				t.Fatalf("Error() = %q", ce.Error())
			}
		})
	}
}

// TestSignVectors: the SDK reproduces every worked case of vectors/sign.json, both
// through top.SignMap and through a client building the same parameters.
func TestSignVectors(t *testing.T) {
	public := map[string]bool{"method": true, "app_key": true, "timestamp": true, "v": true, "sign_method": true, "format": true, "simplify": true, "session": true}
	same := 0
	for _, v := range spectest.SignVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			if got := specSign(v.Params, v.Secret, v.SignMethod); got != v.Sign {
				t.Fatalf("the test's own signer gives %s, vector says %s", got, v.Sign)
			}
			got, err := top.SignMap(v.Params, v.Secret, v.SignMethod)
			if err != nil || got != v.Sign {
				t.Fatalf("top.SignMap = %q, %v; want %s", got, err, v.Sign)
			}
			withSign := map[string]string{"sign": "ignored"}
			for k, x := range v.Params {
				withSign[k] = x
			}
			if got, _ := top.SignMap(withSign, v.Secret, v.SignMethod); got != v.Sign {
				t.Fatalf("a sign parameter changed the signature: %s", got)
			}

			ts := v.Params["timestamp"]
			var now time.Time
			opts := []client.Option{client.WithSignMethod(v.SignMethod)}
			if ms, err := strconv.ParseInt(ts, 10, 64); err == nil {
				now = time.UnixMilli(ms)
				opts = append(opts, client.WithEpochMillis())
			} else {
				now, err = time.ParseInLocation("2006-01-02 15:04:05", ts, t0.Location())
				if err != nil {
					t.Fatal(err)
				}
				now = now.UTC() // the SDK must render it in GMT+8 whatever the zone
			}
			opts = append(opts, client.WithClock(func() time.Time { return now }))
			switch v.Params["format"] {
			case "xml":
				opts = append(opts, client.WithFormat(top.XML, false))
			case "json":
				opts = append(opts, client.WithFormat(top.JSON, v.Params["simplify"] == "true"))
			}
			if s := v.Params["session"]; s != "" {
				opts = append(opts, client.WithSession(s))
			}
			business := map[string]string{}
			for k, x := range v.Params {
				if !public[k] {
					business[k] = x
				}
			}
			c := client.New("http://127.0.0.1:1/router/rest", v.Params["app_key"], v.Secret, opts...)
			p, err := c.Params(v.Params["method"], business)
			if err != nil {
				t.Fatal(err)
			}
			if p["sign"] != specSign(p, v.Secret, v.SignMethod) {
				t.Fatalf("client signed %v as %s, SPEC §3.3 gives %s", p, p["sign"], specSign(p, v.Secret, v.SignMethod))
			}
			want := map[string]string{}
			for k, x := range v.Params {
				if x != "" {
					want[k] = x
				}
			}
			gotParams := map[string]string{}
			for k, x := range p {
				if k != "sign" && x != "" {
					gotParams[k] = x
				}
			}
			if !sameMap(gotParams, want) {
				// The SDK always sends format; a vector without it is reproduced by
				// top.SignMap above only.
				if _, ok := v.Params["format"]; ok {
					t.Fatalf("client params %v, vector params %v", gotParams, want)
				}
				t.Logf("vector has no format; the SDK always sends one")
				return
			}
			if p["sign"] != v.Sign {
				t.Fatalf("client sign %s, vector %s", p["sign"], v.Sign)
			}
			same++
		})
	}
	if same < 5 {
		t.Fatalf("the client reproduced only %d vectors through Params", same)
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

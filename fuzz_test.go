package daodian_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/sqlite"
)

// The validation rules of the ledger, written here from SPEC §4 and the limits of
// package daodian, independently of its own checks.

func refRequestID(v string) bool {
	if v == "" || len(v) > daodian.MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func refDigits(v string, required bool) bool {
	if v == "" {
		return !required
	}
	if len(v) > 32 {
		return false
	}
	return strings.Trim(v, "0123456789") == ""
}

func refText(v string, max int) bool {
	if v == "" || len(v) > max || !utf8.ValidString(v) {
		return false
	}
	for _, r := range v {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// FuzzLedgerValidation calls Use, Reverse, Consult and Refund of a ledger over the
// embedded store with arbitrary fields ($CODE, $ID and $TRANS stand for a real
// ticket's code and id and a real use). Every call answers a business outcome, a
// *Refusal or an *InvalidParameter exactly when the spec's rules say the input is
// invalid, never another error (a bug); an invalid input changes nothing; and the
// ledger keeps every invariant of SPEC §4.4.
func FuzzLedgerValidation(f *testing.F) {
	f.Add(uint8(0), "u1", "$CODE", "shop-1", int32(1), int32(0))
	f.Add(uint8(0), "u2", "$CODE", "shop-1", int32(3), int32(-60))
	f.Add(uint8(0), "u3", "12ab", "shop-1", int32(1), int32(0))
	f.Add(uint8(0), "has space", "$CODE", "shop-1", int32(1), int32(0))
	f.Add(uint8(0), "u4", "$CODE", "shop\x00", int32(1), int32(0))
	f.Add(uint8(0), "u5", "$CODE", "shop-1", int32(-1), int32(0))
	f.Add(uint8(0), "u6", "$CODE", "shop-1", int32(2147483647), int32(0))
	f.Add(uint8(0), "u9", "$CODE", "shop-1", int32(10001), int32(0))
	f.Add(uint8(0), "u10", "$CODE", "shop-1", int32(10000), int32(0))
	f.Add(uint8(0), "u7", "$CODE", "shop-1", int32(1), int32(3600))
	f.Add(uint8(0), "u8", "$CODE", "\xff", int32(1), int32(0))
	f.Add(uint8(1), "r1", "$ID", "$TRANS", int32(0), int32(0))
	f.Add(uint8(1), "r2", "$ID", "", int32(0), int32(-30))
	f.Add(uint8(1), "r3", "$ID", "x", int32(0), int32(0))
	f.Add(uint8(1), strings.Repeat("r", 65), "$ID", "", int32(0), int32(0))
	f.Add(uint8(1), "r4", "22081911597032164a7", "", int32(0), int32(0))
	f.Add(uint8(1), "r5", "$ID", "", int32(0), int32(601))
	f.Add(uint8(2), "c1", "$CODE", "shop-1", int32(0), int32(0))
	f.Add(uint8(2), "c2", "' OR 1=1 --", "shop-1", int32(0), int32(0))
	f.Add(uint8(3), "f1", "$CODE", "$TRANS", int32(0), int32(0))

	ctx := context.Background()
	s, err := sqlite.Open(ctx, f.TempDir()+"/fuzz.db", sqlite.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	l := daodian.NewLedger(s, daodian.Config{Clock: func() time.Time { return now }})
	if err := l.AddShop(ctx, daodian.Shop{MerchantID: "m1", ID: "shop-1"}); err != nil {
		f.Fatal(err)
	}
	app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "fuzz", MerchantID: "m1"})
	if err != nil {
		f.Fatal(err)
	}
	o, err := l.Issue(ctx, daodian.IssueRequest{MerchantID: "m1", Count: 2, Quantity: 5})
	if err != nil {
		f.Fatal(err)
	}
	tk := o.Tickets[0]
	u, err := l.Use(ctx, app, daodian.UseRequest{TicketCode: tk.Code, ShopID: "shop-1", RequestID: "seed-use"})
	if err != nil {
		f.Fatal(err)
	}
	counts := func(t *testing.T) daodian.Counts {
		var c daodian.Counts
		if err := s.View(ctx, func(tx daodian.ReadTx) error { var err error; c, err = tx.Counts(ctx); return err }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, op uint8, rid, a, b string, q, offset int32) {
		repl := strings.NewReplacer("$CODE", tk.Code, "$ID", tk.ID, "$TRANS", u.TransID)
		a, b = repl.Replace(a), repl.Replace(b)
		biz := time.Time{}
		if offset != 0 {
			biz = now.Add(time.Duration(offset) * time.Second)
		}
		future := offset > 600 // beyond the default skew of 10 minutes
		before := counts(t)
		var valid bool
		var err error
		switch op % 4 {
		case 0:
			valid = a != "" && refDigits(a, false) && refText(b, daodian.MaxShopIDLen) && refRequestID(rid) &&
				q >= 0 && q <= daodian.MaxUseQuantity && !future
			_, err = l.Use(ctx, app, daodian.UseRequest{TicketCode: a, ShopID: b, RequestID: rid, Quantity: int(q), GmtBiz: biz})
		case 1:
			valid = refRequestID(rid) && refDigits(a, true) && refDigits(b, false) && !future
			var r daodian.ReverseResult
			r, err = l.Reverse(ctx, app, daodian.ReverseRequest{RequestID: rid, TicketID: a, TransID: b, BizDate: biz})
			if err == nil && !r.Success && (r.ErrorCode == "" || r.ErrorMsg == "" || r.Retry != (r.ErrorCode == daodian.CodeSystemError)) {
				t.Fatalf("malformed failure %+v", r)
			}
		case 2:
			valid = refRequestID(rid) && refText(b, daodian.MaxShopIDLen) && refDigits(a, true)
			var r daodian.ConsultResult
			r, err = l.Consult(ctx, app, daodian.ConsultRequest{RequestID: rid, ShopID: b, TicketCode: a})
			if err == nil && r.Success != (r.Value != nil) {
				t.Fatalf("consult %+v", r)
			}
		case 3:
			valid = refDigits(b, true) && refDigits(a, true) && refRequestID(rid)
			_, err = l.Refund(ctx, app, daodian.RefundRequest{TransID: b, TicketCode: a, RequestID: rid})
		}
		var ip *daodian.InvalidParameter
		var rf *daodian.Refusal
		switch {
		case errors.As(err, &ip):
			if valid {
				t.Fatalf("op %d refused valid input (%q %q %q %d %d): %v", op%4, rid, a, b, q, offset, err)
			}
			if c := counts(t); c != before {
				t.Fatalf("invalid input changed the ledger: %+v -> %+v", before, c)
			}
		case err == nil || errors.As(err, &rf):
			if !valid {
				t.Fatalf("op %d accepted invalid input (%q %q %q %d %d): %v", op%4, rid, a, b, q, offset, err)
			}
		default:
			t.Fatalf("op %d: unexpected error (a bug): %v", op%4, err)
		}
		if n.Add(1)%64 == 0 {
			rep, err := l.Audit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range rep.Violations {
				t.Errorf("audit: %s", v)
			}
		}
	})
}

package alsc

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzQuantity: `quantity` accepts a JSON number or a digit string of at most 9
// characters (so it always fits an int on every platform), null and "" as absent,
// and refuses everything else with a *json.UnmarshalTypeError, never a panic or a
// silent truncation.
func FuzzQuantity(f *testing.F) {
	for _, s := range []string{`1`, `"2"`, `""`, `null`, `-1`, `0`, `1e30`, `99999999999999999999`, `"99999999999999999999"`,
		`1.5`, `"0x10"`, `true`, `[]`, `{}`, `"1 "`, `" 1"`, `"+1"`, `+1`, `"١"`, `"\u0031"`, `999999999`, `1000000000`} {
		f.Add([]byte(`{"quantity":` + s + `}`))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r UseTopRequest
		err := json.Unmarshal(b, &r)
		var generic map[string]json.RawMessage
		if json.Unmarshal(b, &generic) != nil {
			if err == nil {
				t.Fatalf("accepted %q, which is not a JSON object", b)
			}
			return
		}
		raw, ok := generic["quantity"]
		if !ok {
			return
		}
		// What the field means, decided here from its raw JSON.
		want, valid := int64(0), true
		switch s := string(raw); {
		case s == "null" || s == `""`:
		case strings.HasPrefix(s, `"`):
			var str string
			if json.Unmarshal(raw, &str) != nil {
				valid = false
				break
			}
			n, perr := strconv.ParseInt(str, 10, 64)
			valid = perr == nil && len(str) <= 9
			want = n
		default:
			n, perr := strconv.ParseInt(s, 10, 64)
			valid = perr == nil && len(s) <= 9
			want = n
		}
		if err != nil {
			if valid {
				// Another field may be the one at fault.
				var te *json.UnmarshalTypeError
				if isType := asType(err, &te); isType && te.Field == "quantity" {
					t.Fatalf("refused valid quantity %s: %v", raw, err)
				}
			}
			return
		}
		if !valid {
			t.Fatalf("accepted quantity %s as %d", raw, r.Quantity)
		}
		if int64(r.Quantity) != want && string(raw) != "null" {
			t.Fatalf("quantity %s decoded as %d, want %d", raw, r.Quantity, want)
		}
		if int64(r.Quantity) > math.MaxInt32 || int64(r.Quantity) < math.MinInt32 {
			t.Fatalf("quantity %d does not fit 32 bits", r.Quantity)
		}
	})
}

func asType(err error, te **json.UnmarshalTypeError) bool {
	v, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = v
	}
	return ok
}

// FuzzLists: both JSON shapes of a list (a plain array, or an object with one
// member named after the element type) decode to the same items, and nothing
// else panics.
func FuzzLists(f *testing.F) {
	f.Add([]byte(`[{"ticket_id":"1","quantity":2}]`), true)
	f.Add([]byte(`{"ticket_info":[{"ticket_id":"1"}]}`), true)
	f.Add([]byte(`{"merchant_ticket_use_detail":[{"ticket_trans_id":"9","quantity":1}]}`), false)
	f.Add([]byte(`{"other":[]}`), false)
	f.Add([]byte(`null`), true)
	f.Add([]byte(`{`), true)
	f.Fuzz(func(t *testing.T, b []byte, info bool) {
		if info {
			var l TicketInfoList
			err := json.Unmarshal(b, &l)
			var arr []TicketInfo
			if json.Unmarshal(b, &arr) == nil && err == nil && !reflect.DeepEqual([]TicketInfo(l), arr) {
				t.Fatalf("array %s decoded as %+v, want %+v", b, l, arr)
			}
			if err == nil {
				wrapped, _ := json.Marshal(map[string][]TicketInfo{"ticket_info": l})
				var l2 TicketInfoList
				if err := json.Unmarshal(wrapped, &l2); err != nil || !reflect.DeepEqual(l, l2) && len(l) > 0 {
					t.Fatalf("object shape of %+v decoded as %+v (%v)", l, l2, err)
				}
			}
			return
		}
		var l UseDetailList
		_ = json.Unmarshal(b, &l)
	})
}

// FuzzYuan: cents render as yuan with exactly two decimals and read back to the
// same number of cents, for every int64.
func FuzzYuan(f *testing.F) {
	for _, c := range []int64{0, 1, 9, 10, 99, 100, 12345, -1, -100, -12345, math.MaxInt64, math.MinInt64, math.MinInt64 + 1} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, cents int64) {
		s := Yuan(cents)
		neg := strings.HasPrefix(s, "-")
		u := strings.TrimPrefix(s, "-")
		dot := strings.IndexByte(u, '.')
		if dot < 1 || len(u)-dot != 3 || strings.ContainsAny(u[:dot]+u[dot+1:], "-+.") || neg != (cents < 0) {
			t.Fatalf("Yuan(%d) = %q", cents, s)
		}
		whole, err1 := strconv.ParseUint(u[:dot], 10, 64)
		frac, err2 := strconv.ParseUint(u[dot+1:], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("Yuan(%d) = %q", cents, s)
		}
		mag := uint64(cents)
		if cents < 0 {
			mag = -uint64(cents)
		}
		if whole*100+frac != mag {
			t.Fatalf("Yuan(%d) = %q reads back as %d", cents, s, whole*100+frac)
		}
	})
}

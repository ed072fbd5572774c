package alsc

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// FuzzQuantity: `quantity` accepts JSON null (absent, 0) and a JSON number or
// string spelling a whole number from 1 in at most 9 plain decimal digits (so it
// always fits an int on every platform); everything else, 0 and -0 included, is
// ErrQuantity, never a panic, a silent truncation or the default.
func FuzzQuantity(f *testing.F) {
	for _, s := range []string{`1`, `"2"`, `""`, `null`, `"null"`, `-1`, `0`, `"0"`, `-0`, `"-0"`, `"01"`, `1e2`, `"1e2"`, `1.0`,
		`1e30`, `99999999999999999999`, `"99999999999999999999"`, `1.5`, `"0x10"`, `true`, `[]`, `{}`, `"1 "`, `" 1"`, `"+1"`,
		`+1`, `"١"`, `"\u0031"`, `10000`, `10001`, `999999999`, `1000000000`} {
		f.Add([]byte(s))
	}
	digits := regexp.MustCompile(`^[1-9][0-9]{0,8}$`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // a JSON decoder never hands a method anything else
		}
		var q Quantity
		err := json.Unmarshal(raw, &q)
		raw = bytes.Trim(raw, " \t\r\n") // what the decoder hands the method
		// What the value means, decided here from its raw JSON.
		text, valid := string(raw), true
		switch {
		case text == "null":
			text = ""
		case raw[0] == '"':
			if json.Unmarshal(raw, &text) != nil {
				t.Fatalf("a valid JSON string %s does not decode", raw)
			}
			valid = digits.MatchString(text)
		default:
			valid = digits.MatchString(text)
		}
		if !valid {
			if !errors.Is(err, ErrQuantity) {
				t.Fatalf("quantity %s: got %d, %v; want ErrQuantity", raw, q, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("refused valid quantity %s: %v", raw, err)
		}
		want := int64(0)
		if text != "" {
			want, _ = strconv.ParseInt(text, 10, 64)
		}
		if int64(q) != want {
			t.Fatalf("quantity %s decoded as %d, want %d", raw, q, want)
		}
		if int64(q) > math.MaxInt32 {
			t.Fatalf("quantity %d does not fit 32 bits", q)
		}
	})
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

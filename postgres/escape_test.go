package postgres

import (
	"slices"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	cases := []string{"", "abc", "\x00", "\x01", "\x02", "a\x00b\x01c\x00\x00\x01\x01", "\x01\x01", "长\x00🎟️", "\x01\x02"}
	for _, s := range cases {
		e := esc(s)
		if strings.IndexByte(e, 0) >= 0 {
			t.Errorf("esc(%q) = %q holds a NUL", s, e)
		}
		if got := unesc(e); got != s {
			t.Errorf("unesc(esc(%q)) = %q", s, got)
		}
	}
	// Order is kept: sorting the escaped strings sorts the originals.
	sorted := slices.Clone(cases)
	slices.Sort(sorted)
	escaped := make([]string, len(cases))
	for i, s := range cases {
		escaped[i] = esc(s)
	}
	slices.Sort(escaped)
	for i := range escaped {
		if unesc(escaped[i]) != sorted[i] {
			t.Fatalf("order differs at %d: %q vs %q", i, unesc(escaped[i]), sorted[i])
		}
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("a\x00b", "a\x01")
	f.Add("", "\x00")
	f.Fuzz(func(t *testing.T, a, b string) {
		ea, eb := esc(a), esc(b)
		if unesc(ea) != a || strings.IndexByte(ea, 0) >= 0 {
			t.Fatalf("round trip of %q", a)
		}
		if strings.Compare(a, b) != strings.Compare(ea, eb) {
			t.Fatalf("order of %q, %q not kept by %q, %q", a, b, ea, eb)
		}
	})
}

package postgres

import "strings"

// PostgreSQL text cannot hold a NUL byte, while a Go string, and so every string
// field of the ledger, can (request ids are chosen by callers; SPEC §7 feeds the
// gateway hostile input). So every string is stored escaped:
//
//	0x00 → 0x01 0x01
//	0x01 → 0x01 0x02
//	any other byte → itself
//
// The code is prefix-free and monotone (0x01 0x01 < 0x01 0x02 < 0x02), so it keeps
// both equality and byte order: lookups compare escaped keys, and ORDER BY over the
// "C"-collated columns sorts escaped strings exactly as Go sorts the originals. A
// string with neither byte, which is every string in practice, is stored unchanged
// and stays readable with psql. Binary columns (idem.fingerprint, idem.answer) are
// bytea and need none of this.

// esc returns s as stored.
func esc(s string) string {
	if strings.IndexByte(s, 0) < 0 && strings.IndexByte(s, 1) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString("\x01\x01")
		case 1:
			b.WriteString("\x01\x02")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unesc returns the string that esc stored as s.
func unesc(s string) string {
	if strings.IndexByte(s, 1) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 1 && i+1 < len(s) {
			i++
			c = s[i] - 1 // 0x01 0x01 → 0x00, 0x01 0x02 → 0x01
		}
		b.WriteByte(c)
	}
	return b.String()
}

// escList escapes the elements of a list for a NOT NULL array column, where nil
// is stored as the empty array.
func escList(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = esc(v)
	}
	return out
}

// unescList reads an array back; the empty array is nil, as nil was stored.
func unescList(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	for i, v := range s {
		s[i] = unesc(v)
	}
	return s
}

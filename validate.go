package daodian

import "strconv"

// maxDigitsLen bounds numeric identifiers: ours are 19 digits; a longer string cannot
// name anything.
const maxDigitsLen = 32

func checkDigits(field, v string, required bool) error {
	if v == "" {
		if required {
			return invalid(field, "must not be empty")
		}
		return nil
	}
	if len(v) > maxDigitsLen {
		return invalid(field, "is too long")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return invalid(field, "must be decimal digits")
		}
	}
	return nil
}

func checkRequestID(field, v string) error {
	if v == "" {
		return invalid(field, "must not be empty")
	}
	if len(v) > MaxRequestIDLen {
		return invalid(field, "is longer than "+strconv.Itoa(MaxRequestIDLen))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c == 0x7f || c >= 0x80 {
			return invalid(field, "must be printable ASCII without spaces")
		}
	}
	return nil
}

func checkText(field, v string, required bool, max int) error {
	if v == "" && required {
		return invalid(field, "must not be empty")
	}
	if len(v) > max {
		return invalid(field, "is longer than "+strconv.Itoa(max))
	}
	for _, r := range v {
		if r < ' ' || r == 0x7f || r == 0xFFFD {
			return invalid(field, "contains a control character or invalid UTF-8")
		}
	}
	return nil
}

package top

import (
	"errors"
	"math"
	"time"
)

// CST is the platform time zone, GMT+8. A fixed zone rather than Asia/Shanghai so that
// the server does not depend on the host's tz database.
var CST = time.FixedZone("GMT+8", 8*3600)

// TimeLayout is the platform's "yyyy-MM-dd HH:mm:ss".
const TimeLayout = "2006-01-02 15:04:05"

var (
	// ErrTimeFormat reports a string that is not "yyyy-MM-dd HH:mm:ss" or not a real
	// instant (e.g. February 30th).
	ErrTimeFormat = errors.New("top: time is not yyyy-MM-dd HH:mm:ss")
	// ErrTimestampFormat reports a timestamp that is neither TimeLayout nor decimal
	// Unix epoch milliseconds.
	ErrTimestampFormat = errors.New("top: timestamp is neither yyyy-MM-dd HH:mm:ss nor epoch milliseconds")
)

// FormatTime renders t in CST with TimeLayout.
func FormatTime(t time.Time) string {
	var b [len(TimeLayout)]byte
	return string(AppendTime(b[:0], t))
}

// AppendTime appends t in CST with TimeLayout to buf, for encoders that must not allocate.
func AppendTime(buf []byte, t time.Time) []byte {
	return t.In(CST).AppendFormat(buf, TimeLayout)
}

// ParseTime parses exactly "yyyy-MM-dd HH:mm:ss" in CST. time.Parse is not used
// because it is lenient where the platform is not: it accepts one-digit hours and a
// trailing fractional second.
func ParseTime(s string) (time.Time, error) {
	if len(s) != len(TimeLayout) ||
		s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, ErrTimeFormat
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, ErrTimeFormat
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, 0, CST), nil
}

// ParseTimestamp parses the public timestamp parameter: TimeLayout in CST, or decimal
// Unix epoch milliseconds (1 to 19 digits, no sign, no spaces, within int64). The
// result is in CST.
func ParseTimestamp(s string) (time.Time, error) {
	if len(s) == len(TimeLayout) && s[4] == '-' {
		t, err := ParseTime(s)
		if err != nil {
			return time.Time{}, ErrTimestampFormat
		}
		return t, nil
	}
	if len(s) == 0 || len(s) > 19 {
		return time.Time{}, ErrTimestampFormat
	}
	var ms uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return time.Time{}, ErrTimestampFormat
		}
		// 19 digits fit in uint64 without wrapping, so checking once at the end suffices.
		ms = ms*10 + uint64(c-'0')
	}
	if ms > math.MaxInt64 {
		return time.Time{}, ErrTimestampFormat
	}
	return time.UnixMilli(int64(ms)).In(CST), nil
}

// digits parses a short run of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

package top

import (
	"errors"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	good := map[string]time.Time{
		"2022-08-11 11:11:11": time.Date(2022, 8, 11, 3, 11, 11, 0, time.UTC),
		"2024-02-29 23:59:59": time.Date(2024, 2, 29, 15, 59, 59, 0, time.UTC),
		"2000-02-29 00:00:00": time.Date(2000, 2, 28, 16, 0, 0, 0, time.UTC),
		"1970-01-01 08:00:00": time.Unix(0, 0),
	}
	for s, want := range good {
		got, err := ParseTime(s)
		if err != nil || !got.Equal(want) || got.Location() != CST {
			t.Errorf("ParseTime(%q) = %v, %v; want %v in CST", s, got, err, want)
		}
	}
	bad := []string{
		"", "2022-08-11", "2022-08-11 11:11", "2022-08-11 1:11:11", "2022-08-11 11:11:11.5",
		"2022-08-11T11:11:11", "2022/08/11 11:11:11", "2022-8-11 11:11:11 ",
		"2022-13-11 11:11:11", "2022-00-11 11:11:11", "2022-08-00 11:11:11",
		"2023-02-29 11:11:11", "1900-02-29 11:11:11", "2022-04-31 11:11:11",
		"2022-08-11 24:00:00", "2022-08-11 11:60:11", "2022-08-11 11:11:60",
		"+022-08-11 11:11:11", "2022-08-11 11:11:1a", "２０２２-08-11 11:11:11",
		" 2022-08-11 11:11:1",
	}
	for _, s := range bad {
		if got, err := ParseTime(s); !errors.Is(err, ErrTimeFormat) {
			t.Errorf("ParseTime(%q) = %v, %v; want ErrTimeFormat", s, got, err)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	good := map[string]time.Time{
		"2022-08-11 11:11:11": time.Date(2022, 8, 11, 11, 11, 11, 0, CST),
		"1660187471000":       time.Date(2022, 8, 11, 11, 11, 11, 0, CST),
		"1660187471123":       time.Date(2022, 8, 11, 11, 11, 11, 123e6, CST),
		"0":                   time.Unix(0, 0),
		"0001660187471000":    time.Date(2022, 8, 11, 11, 11, 11, 0, CST),
		"9223372036854775807": time.UnixMilli(1<<63 - 1),
	}
	for s, want := range good {
		got, err := ParseTimestamp(s)
		if err != nil || !got.Equal(want) || got.Location() != CST {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v in CST", s, got, err, want)
		}
	}
	bad := []string{
		"", " ", "-1660187471000", "+1660187471000", " 1660187471000", "1660187471000 ",
		"1660187471000.5", "1e12", "0x1f", "9223372036854775808", "18446744073709551615",
		"99999999999999999999", "12345678901234567890", "1_000", "2022-08-11 24:11:11",
		"2022-08-11 11:11", "2022-08-11T11:11:11", "１６６０１８７４７１０００",
	}
	for _, s := range bad {
		if got, err := ParseTimestamp(s); !errors.Is(err, ErrTimestampFormat) {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want ErrTimestampFormat", s, got, err)
		}
	}
}

func TestFormatTime(t *testing.T) {
	u := time.Date(2022, 8, 11, 3, 11, 11, 999e6, time.UTC)
	if got := FormatTime(u); got != "2022-08-11 11:11:11" {
		t.Errorf("FormatTime = %q", got)
	}
	if got := string(AppendTime([]byte("x"), u)); got != "x2022-08-11 11:11:11" {
		t.Errorf("AppendTime = %q", got)
	}
	back, err := ParseTime(FormatTime(u))
	if err != nil || !back.Equal(u.Truncate(time.Second)) {
		t.Errorf("round trip = %v, %v", back, err)
	}
}

package admin

import (
	"slices"
	"testing"
)

// TestCSVCells: a text field a caller chose (a request id) or an administrator
// chose (a shop, a merchant) that starts like a formula is made inert for
// spreadsheets; ids and numbers are written as they are.
func TestCSVCells(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"x\")":   "'=HYPERLINK(\"x\")",
		"+1":                  "'+1",
		"-2+3":                "'-2+3",
		"@SUM(A1)":            "'@SUM(A1)",
		"\tx":                 "'\tx",
		"\rx":                 "'\rx",
		"u-1":                 "u-1",
		"2100000000000000001": "2100000000000000001",
		"":                    "",
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
	r := Record{RecordID: "7", RequestID: "=cmd|' /C calc'!A0", MerchantID: "+m", ShopID: "@s", Units: 1}
	got := r.CSV()
	if !slices.Contains(got, "'=cmd|' /C calc'!A0") || !slices.Contains(got, "'+m") || !slices.Contains(got, "'@s") || got[0] != "7" {
		t.Errorf("record CSV %q", got)
	}
	if l := (StatementLine{ShopID: "-s"}).CSV(); l[0] != "'-s" {
		t.Errorf("statement CSV %q", l)
	}
}

package daodian

import (
	"strings"
	"testing"
)

// TestParsePOSLineLimit: a file with more lines than the limit (MaxPOSLines,
// lowered here) is refused at the first line beyond it, not read to its end.
func TestParsePOSLineLimit(t *testing.T) {
	defer func(n int) { posLinesLimit = n }(posLinesLimit)
	posLinesLimit = 3
	file := "ticket_request_id,status\nu1,used\nu2,used\nu3,used\n"
	if lines, err := ParsePOS(strings.NewReader(file), "pos.csv"); err != nil || len(lines) != 3 {
		t.Fatalf("at the limit: %d lines, %v", len(lines), err)
	}
	_, err := ParsePOS(strings.NewReader(file+"u4,used\nu5,bad\n"), "pos.csv")
	if err == nil || err.Error() != "pos.csv:5: more than 3 lines" {
		t.Fatalf("beyond the limit: %v", err)
	}
}

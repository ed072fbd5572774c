package daodian_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// TestParsePOS: the POS file of SPEC §8 as `daodian reconcile` and POST
// /admin/v1/reconciliations read it. Every bad file is one error FILE:LINE: reason
// (the first fault), never a partial list; every good one its lines.
func TestParsePOS(t *testing.T) {
	line := func(n int, rid, trans, status string, units int) daodian.POSLine {
		return daodian.POSLine{Line: n, RequestID: rid, TransID: trans, Status: status, Units: units}
	}
	long := strings.Repeat("x", daodian.MaxPOSLineBytes)
	cases := []struct {
		name, file string
		want       []daodian.POSLine
		err        string
	}{
		{"minimal", "ticket_request_id,status\nu1,used\nu2,reversed\nu3,refunded\n",
			[]daodian.POSLine{line(2, "u1", "", "used", 0), line(3, "u2", "", "reversed", 0), line(4, "u3", "", "refunded", 0)}, ""},
		{"every column, any order, others ignored", "units,shop,status,trans_id,ticket_request_id\n2,s1,used,2100000000000000001,u1\n",
			[]daodian.POSLine{line(2, "u1", "2100000000000000001", "used", 2)}, ""},
		{"byte-order mark", "\ufeffticket_request_id,status\nu1,used\n", []daodian.POSLine{line(2, "u1", "", "used", 0)}, ""},
		{"CRLF line ends", "ticket_request_id,status\r\nu1,used\r\nu2,reversed\r\n",
			[]daodian.POSLine{line(2, "u1", "", "used", 0), line(3, "u2", "", "reversed", 0)}, ""},
		{"no final line end", "ticket_request_id,status\nu1,used", []daodian.POSLine{line(2, "u1", "", "used", 0)}, ""},
		{"spaces around values and names", " ticket_request_id , status \n u1 , used \n", []daodian.POSLine{line(2, "u1", "", "used", 0)}, ""},
		{"quoted fields", "\"ticket_request_id\",\"status\"\n\"u1\",\"used\"\n", []daodian.POSLine{line(2, "u1", "", "used", 0)}, ""},
		{"blank lines keep line numbers", "ticket_request_id,status\n\nu1,used\n\n\nu2,used\n",
			[]daodian.POSLine{line(3, "u1", "", "used", 0), line(6, "u2", "", "used", 0)}, ""},
		{"a quoted line end in an ignored column counts", "ticket_request_id,status,note\nu1,used,\"two\nlines\"\nu2,used,\n",
			[]daodian.POSLine{line(2, "u1", "", "used", 0), line(4, "u2", "", "used", 0)}, ""},
		{"one key twice with two trans ids", "ticket_request_id,trans_id,status\nu1,2100000000000000001,used\nu1,2100000000000000002,used\n",
			[]daodian.POSLine{line(2, "u1", "2100000000000000001", "used", 0), line(3, "u1", "2100000000000000002", "used", 0)}, ""},
		{"header only", "ticket_request_id,status\n", nil, ""},
		{"header only, no line end", "ticket_request_id,status", nil, ""},

		{"empty file", "", nil, "pos.csv: empty file: a header naming ticket_request_id and status is required"},
		{"byte-order mark only", "\ufeff", nil, "pos.csv: empty file: a header naming ticket_request_id and status is required"},
		{"blank lines only", "\n\r\n\n", nil, "pos.csv: empty file: a header naming ticket_request_id and status is required"},
		{"missing status", "ticket_request_id,units\nu1,1\n", nil, "pos.csv:1: missing column status (the header must name ticket_request_id and status)"},
		{"missing ticket_request_id", "request_id,status\nu1,used\n", nil, "pos.csv:1: missing column ticket_request_id (the header must name ticket_request_id and status)"},
		{"names are case-sensitive", "Ticket_Request_Id,Status\nu1,used\n", nil, "pos.csv:1: missing column ticket_request_id (the header must name ticket_request_id and status)"},
		{"no header: data first", "u1,used\nu2,used\n", nil, "pos.csv:1: missing column ticket_request_id (the header must name ticket_request_id and status)"},
		{"column twice", "ticket_request_id,status,status\nu1,used,used\n", nil, `pos.csv:1: column "status" named twice`},
		{"bad status", "ticket_request_id,status\nu1,used\nu2,USED\n", nil, `pos.csv:3: status "USED" is not used, reversed or refunded`},
		{"empty status", "ticket_request_id,status\nu1,\n", nil, `pos.csv:2: status "" is not used, reversed or refunded`},
		{"status partly_reversed is the ledger's, not the POS's", "ticket_request_id,status\nu1,partly_reversed\n", nil,
			`pos.csv:2: status "partly_reversed" is not used, reversed or refunded`},
		{"long bad status cut", "ticket_request_id,status\nu1," + strings.Repeat("y", 100) + "\n", nil,
			`pos.csv:2: status "` + strings.Repeat("y", 32) + `…" is not used, reversed or refunded`},
		{"empty request id", "ticket_request_id,status\n,used\n", nil, "pos.csv:2: ticket_request_id must not be empty"},
		{"request id with a space", "ticket_request_id,status\n\"u 1\",used\n", nil, "pos.csv:2: ticket_request_id must be printable ASCII without spaces"},
		{"request id too long", "ticket_request_id,status\n" + strings.Repeat("r", 65) + ",used\n", nil, "pos.csv:2: ticket_request_id is longer than 64"},
		{"request id not UTF-8", "ticket_request_id,status\nu\xff,used\n", nil, "pos.csv:2: ticket_request_id must be printable ASCII without spaces"},
		{"trans id not digits", "ticket_request_id,trans_id,status\nu1,21x,used\n", nil, "pos.csv:2: trans_id must be decimal digits"},
		{"units 0", "ticket_request_id,status,units\nu1,used,0\n", nil, `pos.csv:2: units "0" is not a whole number from 1 to 10000`},
		{"units negative", "ticket_request_id,status,units\nu1,used,-1\n", nil, `pos.csv:2: units "-1" is not a whole number from 1 to 10000`},
		{"units with a sign", "ticket_request_id,status,units\nu1,used,+1\n", nil, `pos.csv:2: units "+1" is not a whole number from 1 to 10000`},
		{"units zero-padded", "ticket_request_id,status,units\nu1,used,01\n", nil, `pos.csv:2: units "01" is not a whole number from 1 to 10000`},
		{"units a fraction", "ticket_request_id,status,units\nu1,used,1.5\n", nil, `pos.csv:2: units "1.5" is not a whole number from 1 to 10000`},
		{"units too many", "ticket_request_id,status,units\nu1,used,10001\n", nil, `pos.csv:2: units "10001" is not a whole number from 1 to 10000`},
		{"units huge", "ticket_request_id,status,units\nu1,used,99999999999999999999999\n", nil,
			`pos.csv:2: units "99999999999999999999999" is not a whole number from 1 to 10000`},
		{"units not a number", "ticket_request_id,status,units\nu1,used,two\n", nil, `pos.csv:2: units "two" is not a whole number from 1 to 10000`},
		{"duplicate request id", "ticket_request_id,status\nu1,used\nu2,used\nu1,reversed\n", nil,
			"pos.csv:4: ticket_request_id u1 is listed twice (first at line 2); two uses under one ticket_request_id (by two apps) need trans_id"},
		{"duplicate request id and trans id", "ticket_request_id,trans_id,status\nu1,2100000000000000001,used\nu1,2100000000000000001,used\n", nil,
			"pos.csv:3: ticket_request_id u1 with trans_id 2100000000000000001 is listed twice (first at line 2)"},
		{"too few fields", "ticket_request_id,status\nu1,used\nu2\n", nil, "pos.csv:3: wrong number of fields (the header has 2)"},
		{"too many fields", "ticket_request_id,status\nu1,used,extra\n", nil, "pos.csv:2: wrong number of fields (the header has 2)"},
		{"bare quote", "ticket_request_id,status\nu\"1,used\n", nil, `pos.csv:2: bare " in non-quoted-field`},
		{"unterminated quote", "ticket_request_id,status\nu1,used\n\"u2,used\n", nil, `pos.csv:3: extraneous or missing " in quoted-field`},
		{"a line too long", "ticket_request_id,status\nu1,used\nu2,used," + long + "\n", nil, "pos.csv:3: a line is longer than 4096 bytes"},
		{"a line too long at CRLF", "ticket_request_id,status\r\nu1,used\r\n" + long + "x\r\n", nil, "pos.csv:3: a line is longer than 4096 bytes"},
		{"no line end at all", long + long, nil, "pos.csv:1: a line is longer than 4096 bytes"},
		{"the first fault is reported, before a long line", "ticket_request_id,status\nu1,bad\n" + long + "x\n", nil,
			`pos.csv:2: status "bad" is not used, reversed or refunded`},
		{"a header too long", "ticket_request_id,status," + long + "\nu1,used,x\n", nil, "pos.csv:1: a line is longer than 4096 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := daodian.ParsePOS(strings.NewReader(c.file), "pos.csv")
			if c.err != "" {
				var fe *daodian.POSFileError
				if err == nil || err.Error() != c.err || !errors.As(err, &fe) || fe.File != "pos.csv" {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				if got != nil {
					t.Fatalf("lines %+v returned with the error", got)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("got %+v %v, want %+v", got, err, c.want)
			}
		})
	}
}

// TestParsePOSLineLimitFitsExactly: a line of exactly MaxPOSLineBytes (line end
// excluded, CRLF or LF) is accepted.
func TestParsePOSLineLimitFitsExactly(t *testing.T) {
	for _, eol := range []string{"\n", "\r\n"} {
		pad := strings.Repeat("p", daodian.MaxPOSLineBytes-len("u1,used,"))
		file := "ticket_request_id,status,pad" + eol + "u1,used," + pad + eol
		got, err := daodian.ParsePOS(strings.NewReader(file), "pos.csv")
		if err != nil || len(got) != 1 {
			t.Fatalf("eol %q: %+v %v", eol, got, err)
		}
	}
}

// posFile generates a POS file of n lines lazily, so that a test of a large file
// does not hold it twice.
type posFile struct {
	n, i int
	buf  bytes.Buffer
	pad  string
}

func (p *posFile) Read(b []byte) (int, error) {
	for p.buf.Len() < len(b) && p.i <= p.n {
		if p.i == 0 {
			p.buf.WriteString("\ufeffticket_request_id,trans_id,status,units,note\r\n")
		} else {
			fmt.Fprintf(&p.buf, "req-%d,%d,used,%d,%s\r\n", p.i, 2100000000000000000+p.i, 1+p.i%3, p.pad)
		}
		p.i++
	}
	if p.buf.Len() == 0 {
		return 0, io.EOF
	}
	return p.buf.Read(b)
}

// TestParsePOSMillionLines: a file of 1 000 000 lines (each with a 200-byte
// column the reconciliation does not need) is read whole and right; the lines
// kept do not hold on to the columns they ignore.
func TestParsePOSMillionLines(t *testing.T) {
	if testing.Short() {
		t.Skip("1 000 000 lines")
	}
	const n = 1_000_000
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	lines, err := daodian.ParsePOS(&posFile{n: n, pad: strings.Repeat("n", 200)}, "big.csv")
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		want := daodian.POSLine{Line: i + 2, RequestID: "req-" + strconv.Itoa(i+1), TransID: strconv.Itoa(2100000000000000000 + i + 1),
			Status: daodian.StatusUsed, Units: 1 + (i+1)%3}
		if lines[i] != want {
			t.Fatalf("line %d: %+v, want %+v", i, lines[i], want)
		}
	}
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1 000 000 lines in %v; %d MB held by the result", took, held>>20)
	// A line kept is its fields (about 40 bytes of text and a 64-byte struct),
	// not its 250-byte line: far under 250 MB.
	if held > 160<<20 {
		t.Fatalf("the parsed lines hold %d MB: they keep the text of their whole lines", held>>20)
	}
	runtime.KeepAlive(lines)
}

// FuzzParsePOS: whatever the bytes, ParsePOS returns lines that obey the rules
// of a POS line, or one *POSFileError; it never panics.
func FuzzParsePOS(f *testing.F) {
	f.Add("ticket_request_id,status\nu1,used\n")
	f.Add("\ufeffunits,trans_id,status,ticket_request_id\r\n2,2100000000000000001,reversed,u1\r\n")
	f.Add("ticket_request_id,status\n\"u\n1\",used\n")
	f.Add("ticket_request_id,status,status\n")
	f.Add("ticket_request_id,status\nu1,used\nu1,used\n")
	f.Fuzz(func(t *testing.T, file string) {
		lines, err := daodian.ParsePOS(strings.NewReader(file), "f.csv")
		if err != nil {
			var fe *daodian.POSFileError
			if !errors.As(err, &fe) || lines != nil {
				t.Fatalf("%v (%T) with %d lines", err, err, len(lines))
			}
			return
		}
		seen := map[[2]string]bool{}
		for _, l := range lines {
			if !refRequestID(l.RequestID) || !refDigits(l.TransID, false) || l.Units < 0 || l.Units > daodian.MaxUseQuantity || l.Line < 2 ||
				(l.Status != daodian.StatusUsed && l.Status != daodian.StatusReversed && l.Status != daodian.StatusRefunded) {
				t.Fatalf("a line that breaks the rules: %+v", l)
			}
			k := [2]string{l.RequestID, l.TransID}
			if seen[k] {
				t.Fatalf("key %v twice", k)
			}
			seen[k] = true
		}
	})
}

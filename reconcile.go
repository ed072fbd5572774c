package daodian

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Reconciliation (SPEC §8): the POS's own list of a day's uses against the
// ledger's. Reconciling only reads the ledger.

// POS statuses of a use, as the POS books it; also the ledger's statuses of a use,
// with LedgerPartlyReversed.
const (
	StatusUsed     = "used"
	StatusReversed = "reversed"
	StatusRefunded = "refunded"
	// StatusPartlyReversed is a group-buy use some of whose tickets' parts are
	// reversed and others not: the POS cannot book that, so it is always a
	// difference.
	StatusPartlyReversed = "partly_reversed"
)

// Kinds of difference.
const (
	// DiffMissingInLedger: the POS lists a use the ledger has not (the use was
	// refused, never arrived, or is booked on another day).
	DiffMissingInLedger = "missing_in_ledger"
	// DiffMissingInPOS: the ledger has a use the POS does not list.
	DiffMissingInPOS = "missing_in_pos"
	// DiffStatusMismatch: both have the use, in different states.
	DiffStatusMismatch = "status_mismatch"
	// DiffUnitsMismatch: both have the use in the same state, but the POS's
	// units (when it gives them) are not the ledger's.
	DiffUnitsMismatch = "units_mismatch"
)

// Limits of a POS file.
const (
	// MaxPOSLines bounds the lines of a POS file, header excluded.
	MaxPOSLines = 2_000_000
	// MaxPOSLineBytes bounds one line of a POS file.
	MaxPOSLineBytes = 4096
)

// POSLine is one use as the POS books it.
type POSLine struct {
	// Line is the line number in the file (the header is line 1).
	Line      int
	RequestID string // ticket_request_id
	TransID   string // optional
	Status    string // used, reversed or refunded
	Units     int    // 0 when the file has no units
}

// POSFileError is a fault of a POS file: FILE:LINE: reason.
type POSFileError struct {
	File   string
	Line   int
	Reason string
}

func (e *POSFileError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Reason
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Reason
}

// ParsePOS reads a POS file: CSV (UTF-8, a byte-order mark allowed, LF or CRLF
// line ends), a header naming at least ticket_request_id and status, and
// optionally trans_id and units, in any order (other columns are ignored). name
// is the file's name for errors. The first fault found is a *POSFileError; a key
// (ticket_request_id, trans_id) given twice is one. The lines returned hold only
// their own fields, not the text of the columns they ignore.
func ParsePOS(r io.Reader, name string) ([]POSLine, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(&lineLimiter{r: br, max: MaxPOSLineBytes, line: 1})
	cr.ReuseRecord = true
	fail := func(line int, format string, a ...any) error {
		return &POSFileError{File: name, Line: line, Reason: fmt.Sprintf(format, a...)}
	}
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fail(0, "empty file: a header naming ticket_request_id and status is required")
	}
	if err != nil {
		return nil, csvError(name, err, 0)
	}
	columns := len(header)
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if _, dup := col[h]; dup && h != "" {
			return nil, fail(1, "column %q named twice", h)
		}
		col[h] = i
	}
	for _, need := range []string{"ticket_request_id", "status"} {
		if _, ok := col[need]; !ok {
			return nil, fail(1, "missing column %s (the header must name ticket_request_id and status)", need)
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	type key struct{ requestID, transID string }
	var lines []POSLine
	seen := map[key]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(name, err, columns)
		}
		n, _ := cr.FieldPos(0)
		if len(lines) == posLinesLimit {
			return nil, fail(n, "more than %d lines", posLinesLimit)
		}
		p := POSLine{Line: n, RequestID: get(rec, "ticket_request_id"), TransID: get(rec, "trans_id")}
		if err := checkRequestID("ticket_request_id", p.RequestID); err != nil {
			return nil, fail(n, "%v", err)
		}
		if err := checkDigits("trans_id", p.TransID, false); err != nil {
			return nil, fail(n, "%v", err)
		}
		// The fields are slices of their line's text: the kept ones are copied
		// (and the status is the constant), so that a million lines do not hold
		// a million lines of text.
		p.RequestID, p.TransID = strings.Clone(p.RequestID), strings.Clone(p.TransID)
		switch s := get(rec, "status"); s {
		case StatusUsed:
			p.Status = StatusUsed
		case StatusReversed:
			p.Status = StatusReversed
		case StatusRefunded:
			p.Status = StatusRefunded
		default:
			return nil, fail(n, "status %q is not used, reversed or refunded", truncate(s, 32))
		}
		if u := get(rec, "units"); u != "" {
			v, err := strconv.Atoi(u)
			if err != nil || v < 1 || v > MaxUseQuantity || u[0] == '0' || u[0] == '+' {
				return nil, fail(n, "units %q is not a whole number from 1 to %d", truncate(u, 32), MaxUseQuantity)
			}
			p.Units = v
		}
		k := key{p.RequestID, p.TransID}
		if first, dup := seen[k]; dup {
			if p.TransID == "" {
				return nil, fail(n, "ticket_request_id %s is listed twice (first at line %d); two uses under one ticket_request_id (by two apps) need trans_id", p.RequestID, first)
			}
			return nil, fail(n, "ticket_request_id %s with trans_id %s is listed twice (first at line %d)", p.RequestID, p.TransID, first)
		}
		seen[k] = n
		lines = append(lines, p)
	}
	return lines, nil
}

// posLinesLimit is MaxPOSLines; a test lowers it.
var posLinesLimit = MaxPOSLines

// csvError turns an error of the CSV reader into a POSFileError; columns is the
// header's number of columns (0 while reading the header).
func csvError(name string, err error, columns int) error {
	var le *lineTooLong
	if errors.As(err, &le) {
		return &POSFileError{File: name, Line: le.line, Reason: le.Error()}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		reason := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			reason += fmt.Sprintf(" (the header has %d)", columns)
		}
		return &POSFileError{File: name, Line: pe.Line, Reason: reason}
	}
	return &POSFileError{File: name, Reason: err.Error()}
}

type lineTooLong struct{ max, line int }

func (e *lineTooLong) Error() string {
	return "a line is longer than " + strconv.Itoa(e.max) + " bytes"
}

// lineLimiter fails a read once a line grows past max bytes (its line end
// excluded), so that a file without line ends cannot make the CSV reader buffer
// it whole. The bytes before the fault are read first, so that a fault on an
// earlier line is still the one reported.
type lineLimiter struct {
	r    io.Reader
	max  int
	cur  int // bytes since the last line end
	line int // the number of the line being read
	err  error
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for i, c := range p[:n] {
		if c == '\n' {
			l.cur = 0
			l.line++
			continue
		}
		l.cur++
		// One byte more is the \r of a CRLF line end.
		if l.cur > l.max && (l.cur > l.max+1 || c != '\r') {
			l.err = &lineTooLong{max: l.max, line: l.line}
			if i == 0 {
				return 0, l.err
			}
			return i, nil
		}
	}
	return n, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Difference is one use on which the POS and the ledger disagree.
type Difference struct {
	Kind      string
	RequestID string
	// TransID is the ledger's ticket_trans_id of the use (its first ticket's
	// part), or the POS's when the ledger has none.
	TransID      string
	POSStatus    string // empty for missing_in_pos
	LedgerStatus string // empty for missing_in_ledger
	POSUnits     int
	LedgerUnits  int
	// POSLine is the line of the POS file, 0 for missing_in_pos.
	POSLine int
}

// Reconciliation is the outcome of reconciling a day: how many uses agree, and
// every difference, POS lines first in file order, then the ledger's uses the POS
// does not list, in commit order.
type Reconciliation struct {
	MerchantID  string
	Date        string
	Matched     int
	Differences []Difference
}

// ledgerUse is one use request of the day as the ledger has it: all its tickets'
// parts.
type ledgerUse struct {
	requestID string
	appKey    string
	transID   string // the first part's: the request's ticket_trans_id
	parts     int
	units     int
	reversed  int // parts
	refunded  int // parts
	matched   bool
	// next is another app's use under the same ticket_request_id.
	next *ledgerUse
}

func (u *ledgerUse) status() string {
	switch {
	case u.reversed == u.parts:
		return StatusReversed
	case u.reversed > 0:
		return StatusPartlyReversed
	case u.refunded > 0:
		return StatusRefunded
	}
	return StatusUsed
}

// Reconcile compares the POS's lines of a business day (date YYYY-MM-DD) with the
// merchant's uses committed that day, and what became of them since. A POS line
// matches the merchant's use with its ticket_request_id (and, when it gives one,
// the trans_id of one of the use's tickets): when two apps of the merchant used
// the same ticket_request_id that day, the POS lines must give trans_id to tell
// them apart. It writes nothing. The merchant must exist (ErrNotFound).
func (l *Ledger) Reconcile(ctx context.Context, merchantID, date string, pos []POSLine) (*Reconciliation, error) {
	if err := checkText("merchant", merchantID, true, MaxNameLen); err != nil {
		return nil, err
	}
	day, err := ParseDay(date)
	if err != nil {
		return nil, err
	}
	// A day can hold a million uses: they are allocated in blocks, and found by
	// request id (then app) and by the trans id of each part.
	var uses [][]ledgerUse
	var byRequest, byTrans map[string]*ledgerUse
	err = l.store.View(ctx, func(tx ReadTx) error {
		uses, byRequest, byTrans = nil, map[string]*ledgerUse{}, map[string]*ledgerUse{}
		if _, err := tx.Merchant(ctx, merchantID); err != nil {
			return err
		}
		return tx.EachDayUse(ctx, merchantID, day, func(du *DayUse) error {
			r := &du.Record
			first := byRequest[r.RequestID]
			u := first
			for u != nil && u.appKey != r.AppKey {
				u = u.next
			}
			if u == nil {
				if len(uses) == 0 || len(uses[len(uses)-1]) == cap(uses[len(uses)-1]) {
					uses = append(uses, make([]ledgerUse, 0, 4096))
				}
				block := &uses[len(uses)-1]
				*block = append(*block, ledgerUse{requestID: r.RequestID, appKey: r.AppKey, transID: r.TransID, next: first})
				u = &(*block)[len(*block)-1]
				byRequest[r.RequestID] = u
			}
			u.parts++
			u.units += r.Units
			if du.Reversed {
				u.reversed++
			} else if du.Refunded {
				u.refunded++
			}
			byTrans[r.TransID] = u
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	rec := &Reconciliation{MerchantID: merchantID, Date: DayString(day)}
	for _, p := range pos {
		var u *ledgerUse
		if p.TransID != "" {
			if c := byTrans[p.TransID]; c != nil && c.requestID == p.RequestID && !c.matched {
				u = c
			}
		} else {
			// The first unmatched use in commit order: the chain is newest first.
			for c := byRequest[p.RequestID]; c != nil; c = c.next {
				if !c.matched {
					u = c
				}
			}
		}
		if u == nil {
			rec.Differences = append(rec.Differences, Difference{
				Kind: DiffMissingInLedger, RequestID: p.RequestID, TransID: p.TransID,
				POSStatus: p.Status, POSUnits: p.Units, POSLine: p.Line,
			})
			continue
		}
		u.matched = true
		d := Difference{
			RequestID: p.RequestID, TransID: u.transID, POSStatus: p.Status, LedgerStatus: u.status(),
			POSUnits: p.Units, LedgerUnits: u.units, POSLine: p.Line,
		}
		switch {
		case d.POSStatus != d.LedgerStatus:
			d.Kind = DiffStatusMismatch
		case p.Units != 0 && p.Units != u.units:
			d.Kind = DiffUnitsMismatch
		default:
			rec.Matched++
			continue
		}
		rec.Differences = append(rec.Differences, d)
	}
	for _, block := range uses {
		for i := range block {
			if u := &block[i]; !u.matched {
				rec.Differences = append(rec.Differences, Difference{
					Kind: DiffMissingInPOS, RequestID: u.requestID, TransID: u.transID,
					LedgerStatus: u.status(), LedgerUnits: u.units,
				})
			}
		}
	}
	return rec, nil
}

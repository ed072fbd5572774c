package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/top"
	"github.com/schollz/progressbar/v3"
)

// `daodian ticket import FILE.csv` issues one order per row of a CSV file.
//
// The file is read twice, streaming, so that memory does not grow with it: a
// first pass parses and validates every row with the ledger's own rules
// (Ledger.ValidateIssue) and reports every bad row by its line number; only if
// none is bad does the second pass write, in batches of orders, each batch one
// durable transaction (Ledger.IssueMany). Validation is deterministic (the
// defaults that depend on the time are fixed once, at the start), so a row that
// passed the first pass cannot be refused by the second: a write can then fail
// only for a reason outside the file (disk full, I/O error, a lost database
// connection). Should that happen, the batches before the failing one stay
// imported, and the command says exactly which lines are in and how to import the
// rest (--start-line). docs/operations.md describes the format.

// importColumns are the columns a file may have, in the order the documentation
// lists them. Only merchant_id is required; an absent column or an empty cell
// takes the default.
var importColumns = []string{
	"merchant_id", "count", "quantity", "item_name", "item_id", "out_item_id",
	"amount_cents", "real_amount_cents", "original_price_cents",
	"valid_from", "valid_to", "buyer_id", "user_phone", "status",
}

const (
	colMerchant = iota
	colCount
	colQuantity
	colItemName
	colItemID
	colOutItemID
	colAmount
	colRealAmount
	colOriginalPrice
	colValidFrom
	colValidTo
	colBuyerID
	colUserPhone
	colStatus
	numImportColumns
)

// Import tuning.
const (
	// importBatchAlone is the orders per transaction when the import has the
	// embedded database to itself: large, because a commit writes every page the
	// transaction touched (the random ticket-code index touches many), and a
	// larger batch writes each of them once for more rows. Measured on 1 000 000
	// rows (BENCHMARKS.md): 2 000 per batch 93 s, 10 000 70 s, 25 000 56 s,
	// 50 000 51 s; memory grows with the batch (186, 246, 297, 361 MB), so the
	// gain stops paying beyond this.
	importBatchAlone = 25_000
	// importBatchShared is the orders per transaction next to a server on the
	// same embedded file, whose writer takes turns with the import's
	// transaction by transaction, so a batch must stay short (tens of
	// milliseconds) for its requests not to wait long behind the import.
	importBatchShared = 1000
	// importBatchPostgres is the orders per transaction on PostgreSQL, where a
	// batch is written with COPY in a few round trips and its new rows block
	// no other transaction: what a batch costs beyond its rows is its commit
	// and a lookup of each of its merchants, which larger batches spread over
	// more rows. Measured on 200 000 rows (BENCHMARKS.md): 1 000 per batch
	// 8.7–11.8 s, 5 000 5.5–6.8 s, 10 000 5.0–5.9 s. A batch of this size
	// commits in about a tenth of a second, so a failed one loses little.
	importBatchPostgres = 5000
	// batchTicketsFactor bounds the tickets of a batch as well (to this many
	// times its orders), since one row may issue up to
	// daodian.MaxTicketsPerOrder tickets.
	batchTicketsFactor = 4
	// progressMinBytes: smaller files import too fast for a progress bar to help.
	progressMinBytes = 1 << 20
	// maxPhoneLen bounds user_phone, which the ledger stores masked.
	maxPhoneLen = 32
)

// importHeader maps each column to its index in a record, or -1 when absent.
type importHeader [numImportColumns]int

// readImportHeader reads and checks the header row: every name known, none
// repeated, merchant_id present.
func readImportHeader(r *csv.Reader) (importHeader, error) {
	var h importHeader
	for i := range h {
		h[i] = -1
	}
	rec, err := r.Read()
	if err == io.EOF {
		return h, errors.New("the file is empty; the first line must be the header row (merchant_id,count,…)")
	}
	if err != nil {
		return h, fmt.Errorf("line 1: %w", err)
	}
	for i, name := range rec {
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff") // a byte-order mark, as spreadsheets write
		}
		name = strings.ToLower(strings.TrimSpace(name))
		c := -1
		for j, known := range importColumns {
			if name == known {
				c = j
			}
		}
		if c < 0 {
			return h, fmt.Errorf("line 1: unknown column %q; the columns are %s", name, strings.Join(importColumns, ", "))
		}
		if h[c] >= 0 {
			return h, fmt.Errorf("line 1: column %q appears twice", name)
		}
		h[c] = i
	}
	if h[colMerchant] < 0 {
		return h, errors.New("line 1: the header has no merchant_id column (is the first line the header row?)")
	}
	return h, nil
}

// importRow turns one record into an issue request. start fixes the defaults
// that depend on the time, so that both passes see the same request.
func importRow(rec []string, h *importHeader, start time.Time) (daodian.IssueRequest, error) {
	cell := func(c int) string {
		if h[c] < 0 {
			return ""
		}
		return strings.TrimSpace(rec[h[c]])
	}
	var err error
	num := func(c int, dst *int64) {
		v := cell(c)
		if v == "" || err != nil {
			return
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			err = fmt.Errorf("%s: %q is not a whole number", importColumns[c], v)
			return
		}
		*dst = n
	}
	var count, quantity int64
	req := daodian.IssueRequest{
		MerchantID: cell(colMerchant), ItemName: cell(colItemName), ItemID: cell(colItemID),
		OutItemID: cell(colOutItemID), BuyerID: cell(colBuyerID), UserPhone: cell(colUserPhone),
		Status: daodian.TicketStatus(strings.ToUpper(cell(colStatus))),
	}
	num(colCount, &count)
	num(colQuantity, &quantity)
	num(colAmount, &req.TotalAmountCents)
	num(colRealAmount, &req.RealAmountCents)
	num(colOriginalPrice, &req.OriginalPriceCents)
	if err != nil {
		return req, err
	}
	// Out-of-range counts stay out of range after the conversion to int (the
	// ledger then names them); they must not wrap into range.
	req.Count, req.Quantity = clampInt(count), clampInt(quantity)
	if count == 0 && cell(colCount) != "" {
		req.Count = -1 // an explicit 0 is an error, not the default
	}
	if quantity == 0 && cell(colQuantity) != "" {
		req.Quantity = -1
	}
	if req.ValidFrom, err = importTime(cell(colValidFrom), false); err != nil {
		return req, fmt.Errorf("valid_from: %w", err)
	}
	if req.ValidTo, err = importTime(cell(colValidTo), true); err != nil {
		return req, fmt.Errorf("valid_to: %w", err)
	}
	if req.ValidFrom.IsZero() {
		req.ValidFrom = start
	}
	if len(req.UserPhone) > maxPhoneLen {
		return req, fmt.Errorf("user_phone: longer than %d", maxPhoneLen)
	}
	for _, r := range req.UserPhone {
		if r < ' ' || r == 0x7f || r == 0xFFFD {
			return req, errors.New("user_phone: contains a control character or invalid UTF-8")
		}
	}
	return req, nil
}

func clampInt(n int64) int {
	const limit = 1 << 30
	return int(max(min(n, limit), -limit))
}

// importTime parses "yyyy-MM-dd HH:mm:ss" or "yyyy-MM-dd", GMT+8. A bare date
// as valid_to means the whole of that day: the tickets expire at the next
// midnight.
func importTime(v string, end bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if len(v) == len("2006-01-02") {
		t, err := top.ParseTime(v + " 00:00:00")
		if err != nil {
			return t, fmt.Errorf("%q is not a date yyyy-MM-dd or a time yyyy-MM-dd HH:mm:ss (GMT+8)", v)
		}
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := top.ParseTime(v)
	if err != nil {
		return t, fmt.Errorf("%q is not a date yyyy-MM-dd or a time yyyy-MM-dd HH:mm:ss (GMT+8)", v)
	}
	return t, nil
}

// importFile reads the rows of an import file, one pass.
type importFile struct {
	f    *os.File
	n    countingReader
	r    *csv.Reader
	h    importHeader
	size int64
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func openImportFile(path string) (*importFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file: the import reads it twice", path)
	}
	im := &importFile{f: f, size: fi.Size()}
	im.n.r = bufio.NewReaderSize(f, 1<<20)
	im.r = csv.NewReader(&im.n)
	im.r.ReuseRecord = true
	if im.h, err = readImportHeader(im.r); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

// next returns the next record and the line it starts on; io.EOF at the end.
func (im *importFile) next() ([]string, int, error) {
	rec, err := im.r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return rec, pe.StartLine, err
		}
		return nil, 0, err
	}
	line, _ := im.r.FieldPos(0)
	return rec, line, nil
}

// importSummary is what an import did (the --json output).
type importSummary struct {
	File      string  `json:"file"`
	Orders    int     `json:"orders"`
	Tickets   int     `json:"tickets"`
	FirstLine int     `json:"first_line,omitempty"`
	LastLine  int     `json:"last_line,omitempty"`
	Seconds   float64 `json:"seconds"`
	Written   bool    `json:"written"`
	Out       string  `json:"out,omitempty"`
}

func runTicketImport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ticket import")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	asJSON := fs.Bool("json", false, "print the summary as a JSON object")
	out := fs.String("out", "", "write the issued tickets (ids and codes) to this new CSV file")
	check := fs.Bool("check", false, "validate the file only; write nothing")
	startLine := fs.Int("start-line", 0, "import only the rows from this line on (to finish an import that stopped)")
	batch := fs.Int("batch", 0, "orders per durable transaction (default 25000 on an embedded file of its own, 1000 next to a running server, 5000 on PostgreSQL)")
	cpuProfile := fs.String("cpu-profile", "", "write a pprof CPU profile of the import to this file")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if len(pos) != 1 {
		return &exitError{2, "usage: daodian ticket import FILE.csv [--db …] [--out TICKETS.csv] [--check] [--json]"}
	}
	if *batch < 0 || *batch > 100_000 {
		return &exitError{2, "--batch must be between 1 and 100000"}
	}
	if !*check && isPostgresURL(ref.db) && ref.keyFile == "" {
		return errPostgresNeedsKey // before the check pass, which may take minutes
	}
	path := pos[0]
	began := time.Now()
	// The time every default is computed from, in both passes.
	start := began.In(top.CST).Truncate(time.Second)
	validator := daodian.NewLedger(nil, daodian.Config{Clock: func() time.Time { return start }})

	// Pass 1: validate every row, write nothing.
	sum := importSummary{File: path}
	bad, err := validateImport(e, path, *startLine, start, validator, &sum)
	if err != nil {
		return err
	}
	if bad > 0 {
		rows := "rows"
		if bad == 1 {
			rows = "row"
		}
		return &exitError{1, fmt.Sprintf("%d bad %s in %s (listed above); nothing was imported", bad, rows, path)}
	}
	if *check || sum.Orders == 0 {
		sum.Seconds = time.Since(began).Seconds()
		return printImportSummary(e, *asJSON, &sum)
	}

	// The output file is created before anything is written to the ledger, so
	// that a path that cannot be written stops the import while it is still
	// all-or-nothing.
	var ow *ticketWriter
	if *out != "" {
		if ow, err = newTicketWriter(*out); err != nil {
			return err
		}
		sum.Out = *out
		defer ow.close()
	}

	// Pass 2: write.
	store, shared, err := openImportStore(ctx, *ref)
	if err != nil {
		return err
	}
	defer store.Close()
	if *batch == 0 {
		switch {
		case isPostgresURL(ref.db):
			*batch = importBatchPostgres
		case shared:
			*batch = importBatchShared
		default:
			*batch = importBatchAlone
		}
	}
	l := daodian.NewLedger(store, daodian.Config{Clock: func() time.Time { return start }})
	if err := writeImport(ctx, e, l, path, *startLine, *batch, start, &sum, ow); err != nil {
		return err
	}
	if ow != nil {
		if err := ow.close(); err != nil {
			return fmt.Errorf("every row was imported, but writing %s failed: %w", *out, err)
		}
	}
	sum.Written = true
	sum.Seconds = time.Since(began).Seconds()
	return printImportSummary(e, *asJSON, &sum)
}

// validateImport is the first pass: it reports every bad row on stderr as
// FILE:LINE: reason, and counts the orders and tickets of the good ones.
func validateImport(e *env, path string, startLine int, start time.Time, l *daodian.Ledger, sum *importSummary) (bad int, err error) {
	im, err := openImportFile(path)
	if err != nil {
		return 0, err
	}
	defer im.f.Close()
	var bar *progressbar.ProgressBar
	if isTerminal(e.stderr) && im.size >= progressMinBytes {
		bar = progressbar.NewOptions64(im.size, progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("checking "+path), progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		defer bar.Close()
	}
	report := func(line int, msg string) {
		if bar != nil {
			_ = bar.Clear()
		}
		fmt.Fprintf(e.stderr, "%s:%d: %s\n", path, line, msg)
		bad++
	}
	for i := 0; ; i++ {
		rec, line, err := im.next()
		if err == io.EOF {
			break
		}
		if bar != nil && i%4096 == 0 {
			_ = bar.Set64(im.n.n)
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return bad, fmt.Errorf("read %s: %w", path, err)
			}
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				report(line, fmt.Sprintf("%d fields, the header has %d", len(rec), im.r.FieldsPerRecord))
				continue
			}
			// After a quoting error the reader's position within the file is
			// no longer trustworthy: what follows would be misread.
			report(pe.Line, "malformed CSV: "+pe.Err.Error()+" (the rows after it were not checked)")
			return bad, nil
		}
		if line < startLine {
			continue
		}
		req, err := importRow(rec, &im.h, start)
		if err == nil {
			err = l.ValidateIssue(req)
		}
		if err != nil {
			report(line, err.Error())
			continue
		}
		if sum.FirstLine == 0 {
			sum.FirstLine = line
		}
		sum.LastLine = line
		sum.Orders++
		sum.Tickets += max(req.Count, 1)
	}
	if bar != nil {
		_ = bar.Finish()
	}
	return bad, nil
}

// importBatch is a batch of rows to write, with the lines they came from.
type importBatch struct {
	reqs  []daodian.IssueRequest
	lines []int
	err   error
}

// writeImport is the second pass. A reader goroutine parses the next batch while
// the current one commits.
func writeImport(ctx context.Context, e *env, l *daodian.Ledger, path string, startLine, batchSize int, start time.Time, sum *importSummary, ow *ticketWriter) error {
	im, err := openImportFile(path)
	if err != nil {
		return err
	}
	defer im.f.Close()
	want := *sum
	sum.Orders, sum.Tickets = 0, 0
	var bar *progressbar.ProgressBar
	if isTerminal(e.stderr) && im.size >= progressMinBytes {
		bar = progressbar.NewOptions64(int64(want.Orders), progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("importing"), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		defer bar.Close()
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan importBatch, 1)
	go func() {
		defer close(batches)
		b := importBatch{}
		tickets := 0
		send := func() bool {
			select {
			case batches <- b:
				b, tickets = importBatch{}, 0
				return true
			case <-rctx.Done():
				return false
			}
		}
		for {
			rec, line, err := im.next()
			if err == io.EOF {
				break
			}
			if err == nil && line >= startLine {
				var req daodian.IssueRequest
				if req, err = importRow(rec, &im.h, start); err == nil {
					b.reqs = append(b.reqs, req)
					b.lines = append(b.lines, line)
					tickets += max(req.Count, 1)
				}
			}
			if err != nil {
				// The file changed since it was checked.
				b.err = fmt.Errorf("%s:%d: %v (the file changed after it was checked?)", path, line, err)
				send()
				return
			}
			if len(b.reqs) >= batchSize || tickets >= batchTicketsFactor*batchSize {
				if !send() {
					return
				}
			}
		}
		if len(b.reqs) > 0 {
			send()
		}
	}()

	lastDone := 0 // the last line of the last committed batch
	fail := func(b importBatch, err error) error {
		done := "no row was imported"
		if sum.Orders > 0 {
			done = fmt.Sprintf("lines %d–%d are imported (%d orders, %d tickets, durable)", want.FirstLine, lastDone, sum.Orders, sum.Tickets)
		}
		from := want.FirstLine
		if len(b.lines) > 0 {
			from = b.lines[0]
		} else if lastDone > 0 {
			from = lastDone + 1
		}
		hint := ""
		if errors.Is(err, daodian.ErrTransient) {
			hint = " If the error says the commit outcome is unknown, check whether the orders of line " + strconv.Itoa(from) + " on exist before importing them again."
		}
		return fmt.Errorf("%s; the rows from line %d on were not imported: %v. Fix the cause, then run the same command with --start-line %d to import the rest.%s", done, from, err, from, hint)
	}
	for b := range batches {
		if b.err != nil {
			return fail(importBatch{}, b.err)
		}
		issued, err := l.IssueMany(ctx, b.reqs)
		if err != nil {
			return fail(b, err)
		}
		lastDone = b.lines[len(b.lines)-1]
		for i, o := range issued {
			sum.Orders++
			sum.Tickets += len(o.Tickets)
			if ow != nil {
				if err := ow.write(b.lines[i], o); err != nil {
					return fmt.Errorf("lines %d–%d are imported, but writing the issued tickets failed: %w", want.FirstLine, lastDone, err)
				}
			}
		}
		if ow != nil {
			if err := ow.flush(); err != nil {
				return fmt.Errorf("lines %d–%d are imported, but writing the issued tickets failed: %w", want.FirstLine, lastDone, err)
			}
		}
		if bar != nil {
			_ = bar.Set(sum.Orders)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if sum.Orders != want.Orders {
		return fmt.Errorf("imported %d orders, but the check found %d: the file changed while it was imported", sum.Orders, want.Orders)
	}
	return nil
}

// openImportStore opens the store for writing and tells whether others may be
// writing it too. An embedded file nobody serves is opened exclusively, which
// commits faster (pipelined syncs); one that a server holds is opened shared,
// next to it, as every admin command does. PostgreSQL is always shared.
func openImportStore(ctx context.Context, ref storeRef) (store daodian.Store, shared bool, err error) {
	if isPostgresURL(ref.db) {
		store, err = openStore(ctx, ref, false)
		return store, true, err
	}
	store, err = openStore(ctx, ref, true)
	if errors.Is(err, sqlite.ErrLocked) {
		store, err = openStore(ctx, ref, false)
		return store, true, err
	}
	return store, false, err
}

func isPostgresURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

func printImportSummary(e *env, asJSON bool, sum *importSummary) error {
	if asJSON {
		return printJSON(e.stdout, sum)
	}
	switch {
	case !sum.Written && sum.Orders == 0:
		fmt.Fprintf(e.stdout, "%s has no rows to import\n", sum.File)
	case !sum.Written:
		fmt.Fprintf(e.stdout, "%s is good: %d orders, %d tickets (nothing written: --check)\n", sum.File, sum.Orders, sum.Tickets)
	default:
		fmt.Fprintf(e.stdout, "imported %d orders, %d tickets from %s in %.1fs\n", sum.Orders, sum.Tickets, sum.File, sum.Seconds)
		if sum.Out != "" {
			fmt.Fprintf(e.stdout, "issued tickets written to %s\n", sum.Out)
		}
	}
	return nil
}

// ticketWriter writes the issued tickets as CSV, one line per ticket. The file
// holds the ticket codes, which redeem the vouchers: it is created readable by
// its owner only.
type ticketWriter struct {
	f   *os.File
	w   *csv.Writer
	rec []string
}

var ticketColumns = []string{"line", "merchant_id", "alsc_order_no", "alsc_sub_order_no", "ticket_id", "ticket_code", "quantity", "valid_from", "valid_to"}

func newTicketWriter(path string) (*ticketWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--out: %w (it must be a new file)", err)
	}
	w := &ticketWriter{f: f, w: csv.NewWriter(f), rec: make([]string, len(ticketColumns))}
	if err := w.w.Write(ticketColumns); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

func (w *ticketWriter) write(line int, o *daodian.Issued) error {
	for _, t := range o.Tickets {
		w.rec = append(w.rec[:0], strconv.Itoa(line), o.Order.MerchantID, o.Order.OrderNo, o.Order.SubOrderNo,
			t.ID, t.Code, strconv.Itoa(t.Quantity), top.FormatTime(t.ValidFrom), top.FormatTime(t.ValidTo))
		if err := w.w.Write(w.rec); err != nil {
			return err
		}
	}
	return nil
}

// flush pushes what is written to the file after each committed batch, so that
// the file lists every committed ticket even if the import stops.
func (w *ticketWriter) flush() error {
	w.w.Flush()
	if err := w.w.Error(); err != nil {
		return err
	}
	return nil
}

func (w *ticketWriter) close() error {
	if w.f == nil {
		return nil
	}
	err := w.flush()
	if serr := w.f.Sync(); err == nil {
		err = serr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}

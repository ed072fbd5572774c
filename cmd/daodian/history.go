package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
)

// The history commands of SPEC §8: ticket show, records, statement, reconcile.
// They only read the ledger, and print the shapes of package admin, which the
// admin API answers too.

// withExistingLedger is withLedger for commands that only read: an embedded
// database that does not exist is an error (a mistyped --db), never created
// empty.
func withExistingLedger(ctx context.Context, ref storeRef, fn func(*daodian.Ledger) error) error {
	if !isPostgresURL(ref.db) {
		if _, err := os.Stat(ref.db); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no database at %s (--db, DAODIAN_DB)", ref.db)
		}
	}
	return withLedger(ctx, ref, fn)
}

// flagOfField names the flag that set a domain field, for error messages.
var flagOfField = map[string]string{
	"merchant": "--merchant", "shop_id": "--shop", "date": "--date", "kind": "--kind", "to": "--to",
	"limit": "--limit", "ticket_id": "--id", "ticket_code": "--code",
}

// historyError turns a domain error of a history command into what the user
// reads: bad input is a usage error (exit 2), something missing a one-line
// error (exit 1).
func historyError(err error, merchant, shop string) error {
	var ip *daodian.InvalidParameter
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ip):
		name := flagOfField[ip.Field]
		if name == "" {
			name = ip.Field
		}
		return &exitError{2, name + " " + ip.Reason}
	case errors.Is(err, daodian.ErrBadCursor):
		return &exitError{2, "--cursor: " + err.Error() + "; run the query again without --cursor to start over"}
	case errors.Is(err, daodian.ErrNoSuchShop):
		return fmt.Errorf("merchant %q has no shop %q (daodian shop add registers one)", merchant, shop)
	case errors.Is(err, daodian.ErrNotFound):
		return fmt.Errorf("no merchant %q in this ledger", merchant)
	}
	return err
}

// checkMerchantFormat checks the flags records and statement share: --merchant
// is required, --json and --csv exclude each other.
func checkMerchantFormat(merchant string, asJSON, asCSV bool) error {
	if merchant == "" {
		return &exitError{2, "--merchant is required"}
	}
	if asJSON && asCSV {
		return &exitError{2, "--json and --csv exclude each other: give one"}
	}
	return nil
}

// writeCSV writes a header line, then rows.
func writeCSV(out io.Writer, header []string, rows [][]string) error {
	w := csv.NewWriter(out)
	_ = w.Write(header)
	_ = w.WriteAll(rows) // flushes; the first error is w.Error's
	return w.Error()
}

// checkDay validates a --date before the store is opened.
func checkDay(date string) error {
	if date == "" {
		return &exitError{2, "--date is required: the business day, written YYYY-MM-DD (GMT+8)"}
	}
	if _, err := daodian.ParseDay(date); err != nil {
		return &exitError{2, fmt.Sprintf("--date %q is not a day: write it YYYY-MM-DD, e.g. 2026-11-02 (GMT+8)", date)}
	}
	return nil
}

// recordText is one record on one line for people: its id, time and kind, then
// the fields it has as name=value.
func recordText(r *admin.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s  %-8s", r.RecordID, r.At, r.Kind)
	field := func(name, v string) {
		if v != "" {
			b.WriteString("  " + name + "=" + v)
		}
	}
	field("shop", r.ShopID)
	field("ticket", r.TicketID)
	field("trans", r.TransID)
	field("request", r.RequestID)
	field("app", r.AppKey)
	if r.Units != 0 {
		field("units", strconv.Itoa(r.Units))
	}
	field("gmt_biz", r.GmtBiz)
	field("biz_date", r.BizDate)
	if r.BuyerPayCents != 0 || r.ReceiptCents != 0 {
		field("paid", alsc.Yuan(r.BuyerPayCents))
		field("received", alsc.Yuan(r.ReceiptCents))
	}
	return b.String()
}

func runTicketShow(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ticket show")
	code := fs.String("code", "", "the ticket's code (12 digits); the code is shown only when asked by it")
	id := fs.String("id", "", "the ticket's id (19 digits)")
	asJSON := fs.Bool("json", false, `print {"ticket": {…}, "timeline": [record, …]}`)
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if (*code == "") == (*id == "") {
		return &exitError{2, "give one of --code or --id"}
	}
	return withExistingLedger(ctx, *ref, func(l *daodian.Ledger) error {
		h, err := l.TicketHistory(ctx, *id, *code, "")
		if errors.Is(err, daodian.ErrNotFound) {
			if *id != "" {
				return fmt.Errorf("no ticket has the id %s", *id)
			}
			return errors.New("no ticket has that code")
		}
		if err != nil {
			return historyError(err, "", "")
		}
		v := admin.TicketHistoryOf(h, *code != "")
		if *asJSON {
			return printJSON(e.stdout, v)
		}
		t := &v.Ticket
		fmt.Fprintf(e.stdout, "ticket %s", t.TicketID)
		if t.TicketCode != "" {
			fmt.Fprintf(e.stdout, "  code %s", t.TicketCode)
		}
		fmt.Fprintf(e.stdout, "\n  merchant %s  order %s  sub-order %s\n", t.MerchantID, t.AlscOrderNo, t.AlscSubOrderNo)
		fmt.Fprintf(e.stdout, "  item %s %s", t.ItemID, t.ItemName)
		if t.OutItemID != "" {
			fmt.Fprintf(e.stdout, " (out_item_id %s)", t.OutItemID)
		}
		fmt.Fprintf(e.stdout, "\n  quantity %d  available %d  status %s\n", t.Quantity, t.Available, t.Status)
		fmt.Fprintf(e.stdout, "  valid %s to %s (GMT+8)\n", t.ValidFrom, t.ValidTo)
		fmt.Fprintf(e.stdout, "  price %s, paid %s, received %s (yuan)\n",
			alsc.Yuan(t.OriginalPriceCents), alsc.Yuan(t.TotalAmountCents), alsc.Yuan(t.RealAmountCents))
		fmt.Fprintf(e.stdout, "timeline (%d records):\n", len(v.Timeline))
		for i := range v.Timeline {
			fmt.Fprintln(e.stdout, "  "+recordText(&v.Timeline[i]))
		}
		return nil
	})
}

// timeFlag parses --from or --to: yyyy-MM-dd HH:mm:ss or yyyy-MM-dd, GMT+8. A
// bare date is the start of that day for --from and its end (the next
// midnight, excluded) for --to, as valid_to of ticket import.
func timeFlag(name, v string, end bool) (time.Time, error) {
	t, err := importTime(v, end)
	if err != nil {
		return t, &exitError{2, name + ": " + err.Error()}
	}
	return t, nil
}

func runRecords(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "records")
	merchant := fs.String("merchant", "", "merchant id (required)")
	shop := fs.String("shop", "", "only the records of this shop")
	from := fs.String("from", "", `only records at or after this time: "yyyy-MM-dd HH:mm:ss" or yyyy-MM-dd (GMT+8)`)
	to := fs.String("to", "", `only records before this time: "yyyy-MM-dd HH:mm:ss", or yyyy-MM-dd for the whole of that day (GMT+8)`)
	kinds := fs.String("kind", "", "only records of these kinds, comma-separated: issue, use, reversal, fence, refund")
	limit := fs.Int("limit", daodian.DefaultRecordsPage, fmt.Sprintf("records per page, 1 to %d", daodian.MaxRecordsPage))
	cursor := fs.String("cursor", "", "the next page of the same query: the cursor the previous page printed")
	asJSON := fs.Bool("json", false, `print {"records": […], "next_cursor": "…"}`)
	asCSV := fs.Bool("csv", false, "print CSV: a header line, then one line per record (the next cursor goes to standard error)")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if err := checkMerchantFormat(*merchant, *asJSON, *asCSV); err != nil {
		return err
	}
	if *limit < 1 || *limit > daodian.MaxRecordsPage {
		return &exitError{2, fmt.Sprintf("--limit must be between 1 and %d", daodian.MaxRecordsPage)}
	}
	q := daodian.RecordQuery{MerchantID: *merchant, ShopID: *shop, Limit: *limit}
	var err error
	if q.From, err = timeFlag("--from", *from, false); err != nil {
		return err
	}
	if q.To, err = timeFlag("--to", *to, true); err != nil {
		return err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return &exitError{2, "--to must be after --from"}
	}
	for _, k := range strings.Split(*kinds, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if !daodian.RecordKind(k).Valid() {
			return &exitError{2, fmt.Sprintf("--kind %q is not one of issue, use, reversal, fence, refund", k)}
		}
		q.Kinds = append(q.Kinds, daodian.RecordKind(k))
	}
	return withExistingLedger(ctx, *ref, func(l *daodian.Ledger) error {
		p, err := l.Records(ctx, q, *cursor)
		if err != nil {
			return historyError(err, *merchant, *shop)
		}
		page := admin.RecordPageOf(p)
		switch {
		case *asJSON:
			return printJSON(e.stdout, page)
		case *asCSV:
			rows := make([][]string, len(page.Records))
			for i, r := range page.Records {
				rows[i] = r.CSV()
			}
			if err := writeCSV(e.stdout, admin.RecordCSVHeader, rows); err != nil {
				return err
			}
		default:
			for i := range page.Records {
				fmt.Fprintln(e.stdout, recordText(&page.Records[i]))
			}
			if len(page.Records) == 0 {
				fmt.Fprintln(e.stderr, "no records")
			}
		}
		if page.NextCursor != "" {
			fmt.Fprintln(e.stderr, "next page: --cursor "+page.NextCursor)
		}
		return nil
	})
}

func runStatement(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "statement")
	merchant := fs.String("merchant", "", "merchant id (required)")
	date := fs.String("date", "", "the business day, YYYY-MM-DD (GMT+8) (required)")
	shop := fs.String("shop", "", "only this shop")
	asJSON := fs.Bool("json", false, `print {"merchant_id", "date", "shops": [{"shop_id", …}], "total": {…}}`)
	asCSV := fs.Bool("csv", false, `print CSV: a header line, one line per shop, then the total (shop_id "total")`)
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if err := checkMerchantFormat(*merchant, *asJSON, *asCSV); err != nil {
		return err
	}
	if err := checkDay(*date); err != nil {
		return err
	}
	return withExistingLedger(ctx, *ref, func(l *daodian.Ledger) error {
		st, err := l.Statement(ctx, *merchant, *date, *shop)
		if err != nil {
			return historyError(err, *merchant, *shop)
		}
		v := admin.StatementOf(st)
		switch {
		case *asJSON:
			return printJSON(e.stdout, v)
		case *asCSV:
			rows := make([][]string, 0, len(v.Shops)+1)
			for _, line := range v.Shops {
				rows = append(rows, line.CSV())
			}
			total := v.Total
			total.ShopID = "total"
			return writeCSV(e.stdout, admin.StatementCSVHeader, append(rows, total.CSV()))
		}
		printStatement(e.stdout, &v)
		return nil
	})
}

// printStatement prints a statement as a table, amounts in yuan: the shop
// column aligned left, the figures right.
func printStatement(w io.Writer, v *admin.Statement) {
	fmt.Fprintf(w, "statement of merchant %s for %s (GMT+8), amounts received in yuan\n", v.MerchantID, v.Date)
	rows := [][]string{{"shop", "uses", "units", "received", "reversals", "units", "reversed", "refunds", "units", "refunded", "net units", "net received"}}
	row := func(name string, l *admin.StatementLine) {
		n := func(v int64) string { return strconv.FormatInt(v, 10) }
		rows = append(rows, []string{name, n(l.Uses), n(l.UsedUnits), alsc.Yuan(l.UsedReceiptCents), n(l.Reversals), n(l.ReversedUnits),
			alsc.Yuan(l.ReversedReceiptCents), n(l.Refunds), n(l.RefundedUnits), alsc.Yuan(l.RefundedReceiptCents), n(l.NetUnits), alsc.Yuan(l.NetReceiptCents)})
	}
	for i := range v.Shops {
		row(v.Shops[i].ShopID, &v.Shops[i])
	}
	row("total", &v.Total)
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

func runReconcile(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "reconcile")
	merchant := fs.String("merchant", "", "merchant id (required)")
	date := fs.String("date", "", "the business day, YYYY-MM-DD (GMT+8) (required)")
	asJSON := fs.Bool("json", false, `print {"matched": N, "differences": [{"kind", "ticket_request_id", "trans_id", "pos_status", "ledger_status"}, …]}`)
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: daodian reconcile --merchant M --date YYYY-MM-DD [--json] POS.csv (- reads standard input)")
		fs.PrintDefaults()
	}
	files, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if *merchant == "" {
		return &exitError{2, "--merchant is required"}
	}
	if len(files) != 1 {
		return &exitError{2, "give one POS file: daodian reconcile --merchant M --date YYYY-MM-DD POS.csv"}
	}
	if err := checkDay(*date); err != nil {
		return err
	}
	name := files[0]
	var in io.Reader = e.stdin
	if name == "-" {
		name = "stdin"
	} else {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: cannot read the file: %v\n", name, unwrapPath(err))
			return &exitError{2, ""}
		}
		defer f.Close()
		in = f
	}
	pos, err := daodian.ParsePOS(in, name)
	if err != nil {
		// FILE:LINE: reason, alone on its line, as compilers write it.
		fmt.Fprintln(e.stderr, err)
		return &exitError{2, ""}
	}
	return withExistingLedger(ctx, *ref, func(l *daodian.Ledger) error {
		rec, err := l.Reconcile(ctx, *merchant, *date, pos)
		if err != nil {
			return historyError(err, *merchant, "")
		}
		v := admin.ReconciliationOf(rec)
		if *asJSON {
			if err := printJSON(e.stdout, v); err != nil {
				return err
			}
		} else {
			printReconciliation(e.stdout, &v, name)
		}
		if n := len(v.Differences); n > 0 {
			return &exitError{1, fmt.Sprintf("%d differences between %s and the ledger", n, name)}
		}
		return nil
	})
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// printReconciliation prints one line per difference, after a summary.
func printReconciliation(w io.Writer, v *admin.Reconciliation, file string) {
	fmt.Fprintf(w, "reconciliation of merchant %s for %s (GMT+8) against %s: %d matched, %d differences\n",
		v.MerchantID, v.Date, file, v.Matched, len(v.Differences))
	for _, d := range v.Differences {
		var b strings.Builder
		fmt.Fprintf(&b, "%-17s  ticket_request_id=%s", d.Kind, d.RequestID)
		if d.TransID != "" {
			b.WriteString("  trans_id=" + d.TransID)
		}
		if d.POSStatus != "" {
			b.WriteString("  pos=" + d.POSStatus)
			if d.POSUnits != 0 {
				fmt.Fprintf(&b, " (%d units)", d.POSUnits)
			}
		}
		if d.LedgerStatus != "" {
			b.WriteString("  ledger=" + d.LedgerStatus)
			if d.Kind == daodian.DiffUnitsMismatch {
				fmt.Fprintf(&b, " (%d units)", d.LedgerUnits)
			}
		}
		if d.POSLine != 0 {
			fmt.Fprintf(&b, "  at %s:%d", file, d.POSLine)
		}
		fmt.Fprintln(w, b.String())
	}
}

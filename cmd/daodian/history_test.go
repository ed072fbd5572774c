package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/internal/pgtest"
	"github.com/daodian/daodian/storetest"
)

// historyDay is a ledger with a worked history (SPEC §8) and the environment that
// points the commands at it.
//
// Day 1 (2026-11-01, GMT+8), at 18:00: a card of 3 units is used for 2 (u1,
// shop s1), a single ticket at shop-1b (u2), and an empty reversal leaves a fence
// on a third ticket. Day 2, from 00:01: u1 is reversed (r1), u2 refunded (f1),
// the card used for 1 more (u3).
type historyDay struct {
	w                    *storetest.World
	env                  map[string]string
	card, single, lone   daodian.Ticket
	u1, u2, u3           daodian.UseResult
	day1, day2           string
	day1Start, day2Start time.Time
}

// newHistoryDay builds the day on the store open returns (opened as the commands
// open it, shared) and env points the commands at.
func newHistoryDay(t *testing.T, ref storeRef, env map[string]string) *historyDay {
	t.Helper()
	s, err := openStore(context.Background(), ref, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := storetest.NewWorld(t, s)
	h := &historyDay{w: w, env: env}
	ctx := w.Ctx
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Ledger.AddShop(ctx, daodian.Shop{MerchantID: storetest.M1, ID: "shop-1b"}))
	h.day1Start = time.Date(2026, 11, 1, 0, 0, 0, 0, daodian.GMT8)
	h.day2Start = h.day1Start.AddDate(0, 0, 1)
	h.day1, h.day2 = "2026-11-01", "2026-11-02"
	if got := daodian.DayString(daodian.Day(w.Clock.Now())); got != h.day1 {
		t.Fatalf("the world's clock is on %s, not %s", got, h.day1)
	}
	h.card = w.Issue(1, 3).Tickets[0]
	h.single = w.Issue(1, 1).Tickets[0]
	h.lone = w.Issue(1, 1).Tickets[0]
	h.u1 = w.MustUse(w.A, h.card.Code, 2, "u1")
	h.u2, err = w.Ledger.Use(ctx, w.A, daodian.UseRequest{TicketCode: h.single.Code, ShopID: "shop-1b", RequestID: "u2"})
	must(err)
	w.Clock.Advance(time.Minute)
	w.Reverse(w.A, "r-empty", h.lone.ID, "")
	w.Clock.Advance(6 * time.Hour) // 00:01 of day 2, within u1's reversal window
	if r := w.Reverse(w.A, "r1", h.card.ID, h.u1.TransID); !r.Success {
		t.Fatalf("reversal of u1: %+v", r)
	}
	_, err = w.Ledger.Refund(ctx, w.A, daodian.RefundRequest{TransID: h.u2.TransID, TicketCode: h.single.Code, RequestID: "f1"})
	must(err)
	h.u3 = w.MustUse(w.A, h.card.Code, 1, "u3")
	return h
}

func embeddedHistoryDay(t *testing.T) *historyDay {
	db := filepath.Join(t.TempDir(), "history.db")
	return newHistoryDay(t, storeRef{db: db}, map[string]string{"DAODIAN_DB": db})
}

func (h *historyDay) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, h.env, args...)
}

// decode unmarshals a command's JSON output strictly.
func decode(t *testing.T, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
}

var nextCursorRE = regexp.MustCompile(`(?m)^next page: --cursor (\S+)$`)

// TestHistoryCommands runs ticket show, records, statement and reconcile on the
// embedded store; TestHistoryCommandsPostgres runs the same on PostgreSQL.
func TestHistoryCommands(t *testing.T) { testHistoryCommands(t, embeddedHistoryDay(t)) }

// TestHistoryCommandsPostgres: the commands on PostgreSQL, with the key file
// from the environment.
func TestHistoryCommandsPostgres(t *testing.T) {
	db := pgtest.FreshDatabase(t)
	key := filepath.Join(t.TempDir(), "secret.key")
	testHistoryCommands(t, newHistoryDay(t, storeRef{db: db, keyFile: key}, map[string]string{"DAODIAN_DB": db, "DAODIAN_SECRET_KEY_FILE": key}))
}

func testHistoryCommands(t *testing.T, h *historyDay) {
	w, l := h.w, h.w.Ledger
	t.Run("TicketShow", func(t *testing.T) {
		want, err := l.TicketHistory(w.Ctx, h.card.ID, "", "")
		if err != nil {
			t.Fatal(err)
		}
		code, out, errs := h.cli(t, "ticket", "show", "--id", h.card.ID, "--json")
		var got admin.TicketHistory
		decode(t, out, &got)
		if code != 0 || !sameJSON(got, admin.TicketHistoryOf(want, false)) || strings.Contains(out, h.card.Code) || !strings.Contains(out, `"timeline": [`) {
			t.Fatalf("ticket show --id --json: exit %d %s\n%s", code, errs, out)
		}
		if kinds := recordKinds(got.Timeline); kinds != "issue,use,reversal,use" {
			t.Fatalf("timeline %s", kinds)
		}
		code, out, errs = h.cli(t, "ticket", "show", "--code", h.card.Code, "--json")
		got = admin.TicketHistory{}
		decode(t, out, &got)
		if code != 0 || !sameJSON(got, admin.TicketHistoryOf(want, true)) || got.Ticket.TicketCode != h.card.Code {
			t.Fatalf("ticket show --code --json: exit %d %s\n%s", code, errs, out)
		}
		code, out, errs = h.cli(t, "ticket", "show", "--id", h.card.ID)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || strings.Contains(out, h.card.Code) || lines[0] != "ticket "+h.card.ID ||
			!strings.Contains(out, "quantity 3  available 2  status VALID") || !strings.Contains(out, "timeline (4 records):") ||
			!strings.Contains(lines[len(lines)-1], "use       shop=shop-1  ticket="+h.card.ID+"  trans="+h.u3.TransID+"  request=u3") {
			t.Fatalf("ticket show --id: exit %d %s\n%s", code, errs, out)
		}
		code, out, _ = h.cli(t, "ticket", "show", "--code", h.card.Code)
		if code != 0 || !strings.HasPrefix(out, "ticket "+h.card.ID+"  code "+h.card.Code+"\n") {
			t.Fatalf("ticket show --code: exit %d\n%s", code, out)
		}
	})

	t.Run("Records", func(t *testing.T) {
		all, err := l.Records(w.Ctx, daodian.RecordQuery{MerchantID: storetest.M1, Limit: daodian.MaxRecordsPage}, "")
		if err != nil {
			t.Fatal(err)
		}
		code, out, errs := h.cli(t, "records", "--merchant", storetest.M1, "--json")
		var page admin.RecordPage
		decode(t, out, &page)
		if code != 0 || !sameJSON(page, admin.RecordPageOf(all)) || !strings.Contains(out, `"next_cursor": ""`) || errs != "" {
			t.Fatalf("records --json: exit %d %s\n%s", code, errs, out)
		}
		if kinds := recordKinds(page.Records); kinds != "issue,issue,issue,use,use,fence,reversal,refund,use" {
			t.Fatalf("records: %s", kinds)
		}
		// Paging two at a time, human text, the cursor on standard error.
		var ids []string
		args := []string{"records", "--merchant", storetest.M1, "--limit", "2"}
		for cursor, pages := "", 0; ; pages++ {
			a := args
			if cursor != "" {
				a = append(slices.Clone(args), "--cursor", cursor)
			}
			code, out, errs := h.cli(t, a...)
			if code != 0 || pages > 10 {
				t.Fatalf("records page %d: exit %d %s", pages, code, errs)
			}
			for _, ln := range strings.Split(strings.TrimSpace(out), "\n") {
				ids = append(ids, strings.Fields(ln)[0])
			}
			m := nextCursorRE.FindStringSubmatch(errs)
			if m == nil {
				break
			}
			cursor = m[1]
		}
		var want []string
		for _, r := range all.Records {
			want = append(want, r.ID)
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("paged %v, want %v", ids, want)
		}
		// CSV of day 2 (bare dates: --to is the whole of that day), kinds
		// filtered, one shop.
		q := daodian.RecordQuery{MerchantID: storetest.M1, ShopID: storetest.S1, From: h.day2Start, To: h.day2Start.AddDate(0, 0, 1),
			Kinds: []daodian.RecordKind{daodian.RecordUse, daodian.RecordReversal}}
		day2, err := l.Records(w.Ctx, q, "")
		if err != nil {
			t.Fatal(err)
		}
		code, out, errs = h.cli(t, "records", "--merchant", storetest.M1, "--shop", storetest.S1, "--from", h.day2, "--to", h.day2, "--kind", "reversal,use", "--csv")
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if code != 0 || err != nil || len(rows) != 3 || !slices.Equal(rows[0], admin.RecordCSVHeader) || errs != "" {
			t.Fatalf("records --csv: exit %d %v %s\n%s", code, err, errs, out)
		}
		for i, r := range admin.RecordPageOf(day2).Records {
			if !slices.Equal(rows[i+1], r.CSV()) {
				t.Errorf("csv line %d: %q, want %q", i+2, rows[i+1], r.CSV())
			}
		}
		if rows[1][2] != "reversal" || rows[2][2] != "use" {
			t.Fatalf("day 2 of shop s1: %q", rows)
		}
		// A time, and --to before the day: nothing.
		code, out, errs = h.cli(t, "records", "--merchant", storetest.M1, "--to", "2026-11-01 18:00:00", "--json")
		page = admin.RecordPage{}
		decode(t, out, &page)
		if code != 0 || len(page.Records) != 0 || page.Records == nil {
			t.Fatalf("records before the first: exit %d %s\n%s", code, errs, out)
		}
		// The CSV stays clean when there is a next page: the cursor goes to
		// standard error.
		code, out, errs = h.cli(t, "records", "--merchant", storetest.M1, "--limit", "1", "--csv")
		if code != 0 || strings.Count(out, "\n") != 2 || nextCursorRE.FindStringSubmatch(errs) == nil {
			t.Fatalf("records --csv --limit 1: exit %d\n%s\n%s", code, out, errs)
		}
	})

	t.Run("Statement", func(t *testing.T) {
		for _, c := range []struct{ date, shop string }{{h.day1, ""}, {h.day2, ""}, {h.day2, "shop-1b"}, {"2020-01-01", ""}} {
			st, err := l.Statement(w.Ctx, storetest.M1, c.date, c.shop)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"statement", "--merchant", storetest.M1, "--date", c.date}
			if c.shop != "" {
				args = append(args, "--shop", c.shop)
			}
			code, out, errs := h.cli(t, append(args, "--json")...)
			var got admin.Statement
			decode(t, out, &got)
			if code != 0 || !sameJSON(got, admin.StatementOf(st)) || !strings.Contains(out, `"shops": [`) {
				t.Fatalf("%v --json: exit %d %s\n%s", args, code, errs, out)
			}
			code, out, errs = h.cli(t, append(args, "--csv")...)
			rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if code != 0 || err != nil || len(rows) != len(st.Shops)+2 || !slices.Equal(rows[0], admin.StatementCSVHeader) {
				t.Fatalf("%v --csv: exit %d %v %s\n%s", args, code, err, errs, out)
			}
			total := admin.StatementOf(st).Total
			total.ShopID = "total"
			if !slices.Equal(rows[len(rows)-1], total.CSV()) {
				t.Fatalf("%v --csv total: %q", args, rows[len(rows)-1])
			}
		}
		// Day 2 in text: u1's reversal (2 units, 2 × 29.33) counts on day 2,
		// though u1 was made on day 1.
		code, out, errs := h.cli(t, "statement", "--merchant", storetest.M1, "--date", h.day2)
		want := []string{
			"statement of merchant " + storetest.M1 + " for 2026-11-02 (GMT+8), amounts received in yuan",
			"shop     uses  units  received  reversals  units  reversed  refunds  units  refunded  net units  net received",
			"shop-1      1      1     29.33          1      2     58.66        0      0      0.00         -1        -29.33",
			"shop-1b     0      0      0.00          0      0      0.00        1      1     88.00          0        -88.00",
			"total       1      1     29.33          1      2     58.66        1      1     88.00         -1       -117.33",
		}
		if code != 0 || strings.TrimRight(out, "\n") != strings.Join(want, "\n") {
			t.Fatalf("statement: exit %d %s\n%s\nwant\n%s", code, errs, out, strings.Join(want, "\n"))
		}
	})

	t.Run("Reconcile", func(t *testing.T) {
		dir := t.TempDir()
		match := filepath.Join(dir, "match.csv")
		differ := filepath.Join(dir, "differ.csv")
		if err := os.WriteFile(match, []byte("ticket_request_id,status,units\nu1,reversed,2\nu2,refunded,1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(differ, []byte("ticket_request_id,status\nu1,used\nu9,used\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := w.Snap()
		code, out, errs := h.cli(t, "reconcile", "--merchant", storetest.M1, "--date", h.day1, match)
		if code != 0 || out != "reconciliation of merchant "+storetest.M1+" for 2026-11-01 (GMT+8) against "+match+": 2 matched, 0 differences\n" || errs != "" {
			t.Fatalf("a matching file: exit %d %s\n%s", code, errs, out)
		}
		code, out, errs = h.cli(t, "reconcile", "--merchant", storetest.M1, "--date", h.day1, differ, "--json")
		var got admin.Reconciliation
		decode(t, out, &got)
		pos, err := daodian.ParsePOS(strings.NewReader("ticket_request_id,status\nu1,used\nu9,used\n"), differ)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := l.Reconcile(w.Ctx, storetest.M1, h.day1, pos)
		if err != nil {
			t.Fatal(err)
		}
		if code != 1 || !sameJSON(got, admin.ReconciliationOf(rec)) || got.Matched != 0 || len(got.Differences) != 3 ||
			errs != "daodian reconcile: 3 differences between "+differ+" and the ledger\n" {
			t.Fatalf("a file that differs: exit %d %s\n%s", code, errs, out)
		}
		wantKinds := []string{daodian.DiffStatusMismatch, daodian.DiffMissingInLedger, daodian.DiffMissingInPOS}
		for i, d := range got.Differences {
			if d.Kind != wantKinds[i] {
				t.Fatalf("differences %+v, want kinds %v", got.Differences, wantKinds)
			}
		}
		code, out, _ = h.cli(t, "reconcile", "--merchant", storetest.M1, "--date", h.day1, differ)
		want := "reconciliation of merchant " + storetest.M1 + " for 2026-11-01 (GMT+8) against " + differ + ": 0 matched, 3 differences\n" +
			"status_mismatch    ticket_request_id=u1  trans_id=" + h.u1.TransID + "  pos=used  ledger=reversed  at " + differ + ":2\n" +
			"missing_in_ledger  ticket_request_id=u9  pos=used  at " + differ + ":3\n" +
			"missing_in_pos     ticket_request_id=u2  trans_id=" + h.u2.TransID + "  ledger=refunded\n"
		if code != 1 || out != want {
			t.Fatalf("a file that differs, text: exit %d\n%s\nwant\n%s", code, out, want)
		}
		if d := before.Diff(w.Snap(), true); d != "" {
			t.Fatalf("reconcile wrote to the ledger: %s", d)
		}
	})
}

// sameJSON compares two values by their JSON.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func recordKinds(rs []admin.Record) string {
	ks := make([]string, len(rs))
	for i, r := range rs {
		ks[i] = r.Kind
	}
	return strings.Join(ks, ",")
}

// TestHistoryCommandErrors: every bad input of the history commands is one line
// on standard error saying what to do, with exit 2 for bad usage and 1 for
// something missing, and the ledger is unchanged.
func TestHistoryCommandErrors(t *testing.T) {
	h := embeddedHistoryDay(t)
	page, err := h.w.Ledger.Records(h.w.Ctx, daodian.RecordQuery{MerchantID: storetest.M1, Limit: 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(page.NextCursor)
	tampered[4] ^= 1
	pos := writeFile(t, "pos.csv", "ticket_request_id,status\nu1,reversed\n")
	m := storetest.M1
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"records", "--merchant", "nobody"}, 1, `no merchant "nobody" in this ledger`},
		{[]string{"statement", "--merchant", "nobody", "--date", "2026-11-01"}, 1, `no merchant "nobody" in this ledger`},
		{[]string{"reconcile", "--merchant", "nobody", "--date", "2026-11-01", pos}, 1, `no merchant "nobody" in this ledger`},
		{[]string{"records", "--merchant", m, "--shop", "s9"}, 1, `merchant "` + m + `" has no shop "s9" (daodian shop add registers one)`},
		{[]string{"statement", "--merchant", m, "--date", "2026-11-01", "--shop", storetest.S2}, 1, `has no shop "` + storetest.S2 + `"`},
		{[]string{"records"}, 2, "--merchant is required"},
		{[]string{"statement", "--merchant", m}, 2, "--date is required: the business day, written YYYY-MM-DD (GMT+8)"},
		{[]string{"statement", "--merchant", m, "--date", "2026-13-01"}, 2, `--date "2026-13-01" is not a day: write it YYYY-MM-DD, e.g. 2026-11-02 (GMT+8)`},
		{[]string{"statement", "--merchant", m, "--date", "2026-02-30"}, 2, "is not a day"},
		{[]string{"statement", "--merchant", m, "--date", "01/11/2026"}, 2, "is not a day"},
		{[]string{"statement", "--merchant", m, "--date", "2026-11-01 00:00:00"}, 2, "is not a day"},
		{[]string{"reconcile", "--merchant", m, "--date", "2026-11-1", pos}, 2, "is not a day"},
		{[]string{"statement", "--merchant", m, "--date", "2026-11-01", "--json", "--csv"}, 2, "--json and --csv exclude each other"},
		{[]string{"records", "--merchant", m, "--json", "--csv"}, 2, "--json and --csv exclude each other"},
		{[]string{"records", "--merchant", m, "--from", "yesterday"}, 2, `--from: "yesterday" is not a date yyyy-MM-dd or a time yyyy-MM-dd HH:mm:ss (GMT+8)`},
		{[]string{"records", "--merchant", m, "--to", "2026-11-01T10:00:00"}, 2, "--to: "},
		{[]string{"records", "--merchant", m, "--from", "2026-11-02", "--to", "2026-11-01"}, 2, "--to must be after --from"},
		{[]string{"records", "--merchant", m, "--from", "2026-11-02 10:00:00", "--to", "2026-11-02 10:00:00"}, 2, "--to must be after --from"},
		{[]string{"records", "--merchant", m, "--kind", "use,spend"}, 2, `--kind "spend" is not one of issue, use, reversal, fence, refund`},
		{[]string{"records", "--merchant", m, "--limit", "0"}, 2, "--limit must be between 1 and 10000"},
		{[]string{"records", "--merchant", m, "--limit", "10001"}, 2, "--limit must be between 1 and 10000"},
		{[]string{"records", "--merchant", m, "--cursor", string(tampered)}, 2, "--cursor: the cursor does not belong to this query"},
		{[]string{"records", "--merchant", m, "--kind", "use", "--cursor", page.NextCursor}, 2, "run the query again without --cursor to start over"},
		{[]string{"records", "--merchant", m, "--cursor", "not a cursor"}, 2, "--cursor: "},
		{[]string{"records", "--merchant", m, "--shop", strings.Repeat("s", 65)}, 2, "--shop is longer than 64"},
		{[]string{"ticket", "show"}, 2, "give one of --code or --id"},
		{[]string{"ticket", "show", "--id", h.card.ID, "--code", h.card.Code}, 2, "give one of --code or --id"},
		{[]string{"ticket", "show", "--id", "2100000000000999999"}, 1, "no ticket has the id 2100000000000999999"},
		{[]string{"ticket", "show", "--code", "999999999999"}, 1, "no ticket has that code"},
		{[]string{"ticket", "show", "--id", "21x"}, 2, "--id must be decimal digits"},
		{[]string{"reconcile", "--merchant", m, "--date", "2026-11-01"}, 2, "give one POS file"},
		{[]string{"reconcile", "--merchant", m, "--date", "2026-11-01", pos, pos}, 2, "give one POS file"},
		{[]string{"reconcile", "--date", "2026-11-01", pos}, 2, "--merchant is required"},
		{[]string{"reconcile", "--merchant", m, "--date", "2026-11-01", pos + ".missing"}, 2, pos + ".missing: cannot read the file: no such file or directory"},
		{[]string{"statement", "--merchant", m, "--date", "2026-11-01", "--db", filepath.Join(t.TempDir(), "typo.db")}, 1, "no database at "},
	}
	before := h.w.Snap()
	for _, c := range cases {
		code, out, errs := h.cli(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.stderr) || strings.Count(errs, "\n") != 1 || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", c.args, code, out, errs, c.code, c.stderr)
		}
	}
	if d := before.Diff(h.w.Snap(), true); d != "" {
		t.Fatalf("the ledger changed: %s", d)
	}
	if _, err := os.Stat(cases[len(cases)-1].args[6]); !os.IsNotExist(err) {
		t.Fatalf("a database was created at a mistyped --db: %v", err)
	}
}

// TestReconcileCommand: the POS files of SPEC §8 through `daodian reconcile`:
// exit 0 when the file and the ledger agree, 1 with the differences, 2 and
// FILE:LINE: reason alone on standard error for a bad file; never a write to the
// ledger.
func TestReconcileCommand(t *testing.T) {
	h := embeddedHistoryDay(t)
	long := strings.Repeat("x", daodian.MaxPOSLineBytes+1)
	u1, u2 := h.u1.TransID, h.u2.TransID
	cases := []struct {
		name, file string
		code       int
		stdout     string // a line of the output, when exit is 0 or 1
		stderr     string // the whole standard error
	}{
		{"matching", "ticket_request_id,status\nu1,reversed\nu2,refunded\n", 0, ": 2 matched, 0 differences", ""},
		{"matching, trans ids and units", "trans_id,units,ticket_request_id,status\n" + u1 + ",2,u1,reversed\n" + u2 + ",1,u2,refunded\n", 0, ": 2 matched, 0 differences", ""},
		{"matching, BOM and CRLF", "\ufeffticket_request_id,status\r\nu1,reversed\r\nu2,refunded\r\n", 0, ": 2 matched, 0 differences", ""},
		{"a use the POS lacks", "ticket_request_id,status\nu1,reversed\n", 1, "missing_in_pos     ticket_request_id=u2  trans_id=" + u2 + "  ledger=refunded",
			"daodian reconcile: 1 differences between pos.csv and the ledger\n"},
		{"units differ", "ticket_request_id,status,units\nu1,reversed,2\nu2,refunded,3\n", 1, "units_mismatch     ticket_request_id=u2  trans_id=" + u2 + "  pos=refunded (3 units)  ledger=refunded (1 units)  at pos.csv:3",
			"daodian reconcile: 1 differences between pos.csv and the ledger\n"},
		{"another day's use", "ticket_request_id,status\nu1,reversed\nu2,refunded\nu3,used\n", 1, "missing_in_ledger  ticket_request_id=u3  pos=used  at pos.csv:4",
			"daodian reconcile: 1 differences between pos.csv and the ledger\n"},
		{"a trans id of another use", "ticket_request_id,trans_id,status\nu1," + u2 + ",reversed\nu2,,refunded\n", 1, "missing_in_pos     ticket_request_id=u1",
			"daodian reconcile: 2 differences between pos.csv and the ledger\n"},
		{"header only", "ticket_request_id,status\n", 1, ": 0 matched, 2 differences", "daodian reconcile: 2 differences between pos.csv and the ledger\n"},
		{"empty file", "", 2, "", "pos.csv: empty file: a header naming ticket_request_id and status is required\n"},
		{"missing column", "ticket_request_id,units\nu1,2\n", 2, "", "pos.csv:1: missing column status (the header must name ticket_request_id and status)\n"},
		{"bad status", "ticket_request_id,status\nu1,reversed\nu2,done\n", 2, "", "pos.csv:3: status \"done\" is not used, reversed or refunded\n"},
		{"duplicate request id", "ticket_request_id,status\nu1,reversed\nu1,used\n", 2, "",
			"pos.csv:3: ticket_request_id u1 is listed twice (first at line 2); two uses under one ticket_request_id (by two apps) need trans_id\n"},
		{"bad units", "ticket_request_id,status,units\nu1,reversed,0\n", 2, "", "pos.csv:2: units \"0\" is not a whole number from 1 to 10000\n"},
		{"a line too long", "ticket_request_id,status\nu1,reversed\n" + long + "\n", 2, "", "pos.csv:3: a line is longer than 4096 bytes\n"},
		{"a field too many", "ticket_request_id,status\nu1,reversed,x\n", 2, "", "pos.csv:2: wrong number of fields (the header has 2)\n"},
		{"binary", "\x00\x01\x02\xff\xfe", 2, "", "pos.csv:1: missing column ticket_request_id (the header must name ticket_request_id and status)\n"},
	}
	before := h.w.Snap()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			wd, _ := os.Getwd()
			if err := os.Chdir(dir); err != nil {
				t.Fatal(err)
			}
			defer os.Chdir(wd)
			if err := os.WriteFile("pos.csv", []byte(c.file), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errs := h.cli(t, "reconcile", "--merchant", storetest.M1, "--date", h.day1, "pos.csv")
			if code != c.code || errs != c.stderr || (c.stdout == "" && out != "") || !strings.Contains(out, c.stdout) {
				t.Fatalf("exit %d\nstdout %s\nstderr %q\nwant exit %d, stdout with %q, stderr %q", code, out, errs, c.code, c.stdout, c.stderr)
			}
			// The same from standard input, named stdin.
			var stdout, stderr strings.Builder
			e := &env{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(c.file), getenv: func(k string) string { return h.env[k] }}
			code = run(context.Background(), e, []string{"reconcile", "--merchant", storetest.M1, "--date", h.day1, "-"})
			if code != c.code || stderr.String() != strings.ReplaceAll(c.stderr, "pos.csv", "stdin") {
				t.Fatalf("from stdin: exit %d, stderr %q", code, stderr.String())
			}
		})
	}
	if d := before.Diff(h.w.Snap(), true); d != "" {
		t.Fatalf("reconcile wrote to the ledger: %s", d)
	}
}

// TestReconcileCommandLargeFile: a POS file of 200 000 lines gets its answer —
// every line a difference against this small ledger — in one piece.
func TestReconcileCommandLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("200 000 lines")
	}
	h := embeddedHistoryDay(t)
	const n = 200_000
	var b strings.Builder
	b.WriteString("ticket_request_id,status\nu1,reversed\nu2,refunded\n")
	for i := range n - 2 {
		fmt.Fprintf(&b, "pos-%d,used\n", i)
	}
	path := writeFile(t, "big.csv", b.String())
	code, out, errs := h.cli(t, "reconcile", "--merchant", storetest.M1, "--date", h.day1, "--json", path)
	var got admin.Reconciliation
	decode(t, out, &got)
	if code != 1 || got.Matched != 2 || len(got.Differences) != n-2 || got.Differences[n-3].RequestID != fmt.Sprintf("pos-%d", n-3) ||
		got.Differences[n-3].POSLine != n+1 {
		t.Fatalf("exit %d %s: matched %d, %d differences", code, errs, got.Matched, len(got.Differences))
	}
}

package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/top"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ledgerAt opens the embedded store at db for a test and returns a ledger on it.
func ledgerAt(t *testing.T, db string) *daodian.Ledger {
	t.Helper()
	s, err := openStore(context.Background(), storeRef{db: db}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return daodian.NewLedger(s, daodian.Config{})
}

func countsOf(t *testing.T, l *daodian.Ledger) daodian.Counts {
	t.Helper()
	var c daodian.Counts
	err := l.Store().View(context.Background(), func(tx daodian.ReadTx) error {
		var err error
		c, err = tx.Counts(context.Background())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func auditClean(t *testing.T, l *daodian.Ledger) *daodian.AuditReport {
	t.Helper()
	rep, err := l.Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Violations) > 0 {
		t.Fatalf("audit: %v", rep.Violations)
	}
	return rep
}

// TestImportBadRowWritesNothing: one bad row (line 3 of 5) is named by its line
// and nothing is written: the database is not even created.
func TestImportBadRowWritesNothing(t *testing.T) {
	csvPath := writeFile(t, "tickets.csv", "merchant_id,count,amount_cents\n"+
		"m1,1,100\n"+
		"m1,0,100\n"+ // line 3: count 0
		"m1,2,100\n"+
		"m2,1,250\n")
	db := filepath.Join(t.TempDir(), "d.db")
	code, out, errs := cli(t, nil, "ticket", "import", csvPath, "--db", db)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, csvPath+":3: count must be between 1 and") {
		t.Fatalf("stderr does not name line 3 and its fault:\n%s", errs)
	}
	if n := len(regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(csvPath)+`:\d+:`).FindAllString(errs, -1)); n != 1 {
		t.Fatalf("%d rows reported, want only line 3:\n%s", n, errs)
	}
	if !strings.Contains(errs, "1 bad row in") || !strings.Contains(errs, "nothing was imported") {
		t.Fatalf("no summary of the refusal:\n%s", errs)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the database was created (%v): the import must write nothing", err)
	}

	// The same file into an existing ledger leaves it as it was.
	l := ledgerAt(t, db)
	if _, err := l.Issue(context.Background(), daodian.IssueRequest{MerchantID: "m0"}); err != nil {
		t.Fatal(err)
	}
	before := countsOf(t, l)
	if code, _, errs := cli(t, nil, "ticket", "import", csvPath, "--db", db); code != 1 || !strings.Contains(errs, ":3:") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if after := countsOf(t, l); after != before {
		t.Fatalf("counts changed from %+v to %+v", before, after)
	}
}

// TestImportReportsEveryBadRow: every bad row is listed, each with its line
// (a quoted field spanning two lines shifts the lines that follow), and the
// kinds of fault are told apart.
func TestImportReportsEveryBadRow(t *testing.T) {
	csvPath := writeFile(t, "bad.csv", "merchant_id,count,quantity,amount_cents,real_amount_cents,valid_from,valid_to,status,user_phone,item_name\n"+
		"m1,1,1,100,,,,,,ok\n"+ // 2: good
		"m1,abc,1,100,,,,,,x\n"+ // 3
		"m1,1,1,100,200,,,,,x\n"+ // 4: real > amount
		",1,1,100,,,,,,x\n"+ // 5: no merchant
		"m1,1,1,100,,2030-01-01,2029-01-01,,,x\n"+ // 6: to before from
		"m1,1,1,100,,,,USED,,x\n"+ // 7: bad status
		"m1,1,1,100,,,2030-02-30,,,x\n"+ // 8: no such date
		"m1,1,1,100,,,,,,\"two\nlines\"\n"+ // 9–10: good, but the item name has a newline: refused
		"m1,1,1,100,,,\n"+ // 11: too few fields
		"m1,1,99999,100,,,,,,x\n") // 12: quantity too large
	code, _, errs := cli(t, nil, "ticket", "import", csvPath, "--db", filepath.Join(t.TempDir(), "d.db"))
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{
		":3: count: \"abc\" is not a whole number",
		":4: real_amount_cents must not exceed amount_cents",
		":5: merchant must not be empty",
		":6: valid_to must be after valid_from",
		":7: status must be VALID",
		":8: valid_to: \"2030-02-30\" is not a date",
		":9: item_name contains a control character",
		":11: 7 fields, the header has 10",
		":12: quantity must be between 1 and",
		"9 bad rows in",
	} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q", w)
		}
	}
	if strings.Contains(errs, ":2:") || strings.Contains(errs, ":10:") {
		t.Errorf("a good line is reported:\n%s", errs)
	}
	if t.Failed() {
		t.Log(errs)
	}
}

// TestImportFileErrors: faults of the file as a whole stop before any row.
func TestImportFileErrors(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	for _, c := range []struct{ content, want string }{
		{"", "the file is empty"},
		{"count,amount_cents\n1,100\n", "no merchant_id column"},
		{"merchant_id,colour\nm1,red\n", `unknown column "colour"`},
		{"merchant_id,count,count\nm1,1,1\n", `column "count" appears twice`},
		{"merchant_id,item_name\nm1,\"unterminated\nm1,x\n", "malformed CSV"},
	} {
		p := writeFile(t, "f.csv", c.content)
		code, _, errs := cli(t, nil, "ticket", "import", p, "--db", db)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want an error containing %q", c.content, code, errs, c.want)
		}
	}
	if code, _, errs := cli(t, nil, "ticket", "import", "--db", db); code != 2 || !strings.Contains(errs, "usage") {
		t.Errorf("no file: exit %d %q", code, errs)
	}
	if code, _, errs := cli(t, nil, "ticket", "import", filepath.Join(t.TempDir(), "none.csv"), "--db", db); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d %q", code, errs)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused import created the database")
	}
}

// TestImportGoodFile: every row becomes one order with the columns' values (and
// the defaults where a cell is empty), the issued tickets are listed in --out,
// and the ledger audits clean.
func TestImportGoodFile(t *testing.T) {
	dir := t.TempDir()
	// A byte-order mark, CRLF line ends, columns in an unusual order and case,
	// a quoted field with a comma.
	content := "\ufeffQuantity,merchant_id,count,item_name,amount_cents,real_amount_cents,original_price_cents,valid_from,valid_to,buyer_id,user_phone,out_item_id,status,item_id\r\n" +
		"1,m1,2,双人套餐,9900,8800,12800,2024-01-01 10:00:00,2030-12-31,b1,13800004139,sku-1,,\r\n" +
		"5,m1,1,\"5次卡, 洗剪吹\",25000,,,,,,,,VALID,item-9\r\n" +
		"1,m2,,,,,,,,,,,refunded,\r\n"
	csvPath := filepath.Join(dir, "good.csv")
	if err := os.WriteFile(csvPath, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "d.db")
	outPath := filepath.Join(dir, "issued.csv")
	began := time.Now()
	code, out, errs := cli(t, nil, "ticket", "import", csvPath, "--db", db, "--out", outPath, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var sum importSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json: %v: %s", err, out)
	}
	if sum.Orders != 3 || sum.Tickets != 4 || !sum.Written || sum.FirstLine != 2 || sum.LastLine != 4 || sum.Out != outPath {
		t.Fatalf("summary %+v", sum)
	}
	if strings.Contains(errs, "\r") {
		t.Fatalf("a progress bar was drawn on a stderr that is not a terminal: %q", errs)
	}

	f, err := os.Open(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
		t.Errorf("--out file mode %v, want 0600: it holds the ticket codes", fi.Mode().Perm())
	}
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || strings.Join(recs[0], ",") != strings.Join(ticketColumns, ",") {
		t.Fatalf("--out has %d records, header %v; want a header and 4 tickets", len(recs), recs[0])
	}

	l := ledgerAt(t, db)
	rep := auditClean(t, l)
	if rep.Tickets != 4 {
		t.Fatalf("audit saw %d tickets, want 4", rep.Tickets)
	}
	if c := countsOf(t, l); c.Orders != 3 || c.Tickets != 4 || c.Merchants != 2 {
		t.Fatalf("counts %+v", c)
	}
	ctx := context.Background()
	byLine := map[string][]*daodian.Ticket{}
	err = l.Store().View(ctx, func(tx daodian.ReadTx) error {
		for _, r := range recs[1:] {
			tk, err := tx.TicketByCode(ctx, r[5])
			if err != nil {
				return fmt.Errorf("ticket code %s of --out: %w", r[5], err)
			}
			if tk.ID != r[4] || tk.SubOrderNo != r[3] || tk.MerchantID != r[1] {
				return fmt.Errorf("--out row %v does not match the ticket %+v", r, tk)
			}
			byLine[r[0]] = append(byLine[r[0]], tk)
		}
		o, err := tx.Order(ctx, byLine["2"][0].SubOrderNo)
		if err != nil {
			return err
		}
		if o.BuyerID != "b1" || o.UserPhone != "*******4139" || o.OutItemID != "sku-1" {
			return fmt.Errorf("order of line 2: %+v", o)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cst := top.CST
	if g := byLine["2"]; len(g) != 2 || g[0].SubOrderNo != g[1].SubOrderNo || g[0].Quantity != 1 ||
		g[0].TotalAmountCents != 9900 || g[0].RealAmountCents != 8800 || g[0].OriginalPriceCents != 12800 ||
		!g[0].ValidFrom.Equal(time.Date(2024, 1, 1, 10, 0, 0, 0, cst)) ||
		!g[0].ValidTo.Equal(time.Date(2031, 1, 1, 0, 0, 0, 0, cst)) || g[0].ItemName != "双人套餐" {
		t.Errorf("line 2 (a group of two, until the end of 2030-12-31): %+v", g)
	}
	if g := byLine["3"]; len(g) != 1 || g[0].Quantity != 5 || g[0].Available != 5 || g[0].ItemName != "5次卡, 洗剪吹" ||
		g[0].ItemID != "item-9" || g[0].RealAmountCents != 25000 || g[0].Status != daodian.TicketValid ||
		g[0].ValidFrom.Before(began.Add(-time.Second)) || g[0].ValidTo.Sub(g[0].ValidFrom) != 30*24*time.Hour {
		t.Errorf("line 3 (a 5-times card, default validity from now for 30 days): %+v", g)
	}
	if g := byLine["4"]; len(g) != 1 || g[0].Status != daodian.TicketRefunded || g[0].ItemName != "到店券" {
		t.Errorf("line 4 (defaults, refunded): %+v", g)
	}

	// --out never overwrites a file.
	if code, _, errs := cli(t, nil, "ticket", "import", csvPath, "--db", db, "--out", outPath); code == 0 || !strings.Contains(errs, "must be a new file") {
		t.Fatalf("--out onto an existing file: exit %d %s", code, errs)
	}
	if c := countsOf(t, l); c.Orders != 3 {
		t.Fatalf("a refused --out still imported: %+v", c)
	}
}

// TestImportCheckAndStartLine: --check validates and writes nothing;
// --start-line imports the rows from a line on.
func TestImportCheckAndStartLine(t *testing.T) {
	csvPath := writeFile(t, "t.csv", "merchant_id\nm1\nm2\nm3\nm4\n")
	db := filepath.Join(t.TempDir(), "d.db")
	code, out, errs := cli(t, nil, "ticket", "import", csvPath, "--db", db, "--check")
	if code != 0 || !strings.Contains(out, "4 orders, 4 tickets (nothing written") {
		t.Fatalf("--check: exit %d %q %s", code, out, errs)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("--check created the database")
	}
	code, out, errs = cli(t, nil, "ticket", "import", csvPath, "--db", db, "--start-line", "4")
	if code != 0 || !strings.Contains(out, "imported 2 orders") {
		t.Fatalf("--start-line: exit %d %q %s", code, out, errs)
	}
	l := ledgerAt(t, db)
	if c := countsOf(t, l); c.Orders != 2 || c.Merchants != 2 {
		t.Fatalf("counts %+v, want the orders of m3 and m4", c)
	}
}

// failingStore fails every Update after the first n.
type failingStore struct {
	daodian.Store
	n atomic.Int32
}

func (s *failingStore) Update(ctx context.Context, fn func(daodian.Tx) error) error {
	if s.n.Add(-1) < 0 {
		return errors.New("disk I/O error")
	}
	return s.Store.Update(ctx, fn)
}

// TestImportStopsHonestly: when a write fails after earlier batches committed,
// the command says which lines are in and how to import the rest, and doing so
// completes the import with every row once.
func TestImportStopsHonestly(t *testing.T) {
	var b strings.Builder
	b.WriteString("merchant_id,count\n")
	for i := range 10 {
		fmt.Fprintf(&b, "m%d,%d\n", i, 1+i%3)
	}
	csvPath := writeFile(t, "t.csv", b.String())
	db := filepath.Join(t.TempDir(), "d.db")
	s, err := openStore(context.Background(), storeRef{db: db}, true)
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingStore{Store: s}
	fs.n.Store(2) // two batches of 3 commit, the third fails
	start := time.Now().Truncate(time.Second)
	l := daodian.NewLedger(fs, daodian.Config{Clock: func() time.Time { return start }})
	var out, errb testio.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	sum := importSummary{File: csvPath}
	if bad, err := validateImport(e, csvPath, 0, start, l, &sum); err != nil || bad != 0 {
		t.Fatal(bad, err)
	}
	err = writeImport(context.Background(), e, l, csvPath, 0, 3, start, &sum, nil)
	if err == nil {
		t.Fatal("the import did not report the failed write")
	}
	for _, w := range []string{"lines 2–7 are imported (6 orders", "the rows from line 8 on were not imported: disk I/O error", "--start-line 8"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	code, _, errs := cli(t, nil, "ticket", "import", csvPath, "--db", db, "--start-line", "8")
	if code != 0 {
		t.Fatalf("resume: %d %s", code, errs)
	}
	l2 := ledgerAt(t, db)
	auditClean(t, l2)
	if c := countsOf(t, l2); c.Orders != 10 || c.Merchants != 10 || c.Tickets != 1+2+3+1+2+3+1+2+3+1 {
		t.Fatalf("after the resume: %+v, want each of the 10 rows once", c)
	}
}

// TestImportNextToServer: an import into the embedded file of a running server
// opens it shared, and the server serves the imported tickets at once.
func TestImportNextToServer(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "d.db")
	p := startServeInProcess(t, "--db", db)
	code, out, errs := cli(t, nil, "app", "create", "--name", "pos", "--merchant", "m1", "--json", "--db", db)
	if code != 0 {
		t.Fatal(errs)
	}
	var app struct {
		Key    string `json:"app_key"`
		Secret string `json:"app_secret"`
	}
	if err := json.Unmarshal([]byte(out), &app); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, nil, "shop", "add", "--merchant", "m1", "--shop-id", "s1", "--db", db); code != 0 {
		t.Fatal(errs)
	}
	csvPath := writeFile(t, "t.csv", "merchant_id,quantity\nm1,3\nm1,1\n")
	outPath := filepath.Join(dir, "issued.csv")
	if code, _, errs := cli(t, nil, "ticket", "import", csvPath, "--db", db, "--out", outPath); code != 0 {
		t.Fatalf("import next to a server: %d %s", code, errs)
	}
	b, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("--out: %v %q", err, b)
	}
	envv := map[string]string{"DAODIAN_URL": p.url, "DAODIAN_APP_KEY": app.Key, "DAODIAN_APP_SECRET": app.Secret}
	code, out, errs = cli(t, envv, "call", "alibaba.alsc.merchant.ext.ticketcode.use",
		`use_request={"ticket_code":"`+recs[1][5]+`","shop_id":"s1","quantity":2,"ticket_request_id":"u1"}`)
	if code != 0 || !strings.Contains(out, "ticket_trans_id") {
		t.Fatalf("use of an imported ticket: %d %s %s", code, out, errs)
	}
}

// TestImportPostgres: the import works the same on PostgreSQL, and a server on
// PostgreSQL records no commit batches (one transaction per operation).
func TestImportPostgres(t *testing.T) {
	d := testenv.NewDB(t, testenv.Postgres)
	db := d.URL
	// The key file from the environment, as DAODIAN_SECRET_KEY_FILE, for the
	// commands; on the command line for serve.
	keyEnv := map[string]string{"DAODIAN_SECRET_KEY_FILE": d.KeyFile}
	csvPath := writeFile(t, "t.csv", "merchant_id,count,quantity\nm1,2,1\nm1,1,5\nm2,1,1\n")
	code, out, errs := cli(t, keyEnv, "ticket", "import", csvPath, "--db", db, "--batch", "2")
	if code != 0 || !strings.Contains(out, "imported 3 orders, 4 tickets") {
		t.Fatalf("import: %d %s %s", code, out, errs)
	}
	code, out, errs = cli(t, keyEnv, "audit", "--db", db, "--json")
	if code != 0 || !strings.Contains(out, `"tickets": 4`) {
		t.Fatalf("audit: %d %s %s", code, out, errs)
	}
	code, out, errs = cli(t, keyEnv, "app", "create", "--name", "pos", "--merchant", "m1", "--json", "--db", db)
	if code != 0 {
		t.Fatal(errs)
	}
	var app struct {
		Key    string `json:"app_key"`
		Secret string `json:"app_secret"`
	}
	if err := json.Unmarshal([]byte(out), &app); err != nil {
		t.Fatal(err)
	}
	p := startServeInProcess(t, d.Args()...)
	// A reversal that finds nothing still writes: its answer is recorded.
	envv := map[string]string{"DAODIAN_URL": p.url, "DAODIAN_APP_KEY": app.Key, "DAODIAN_APP_SECRET": app.Secret}
	if code, _, errs := cli(t, envv, "reverse", "--ticket-id", "2100000000000999999"); code != 1 || !strings.Contains(errs, "TICKET_NOT_FOUND") {
		t.Fatalf("reverse: exit %d %s", code, errs)
	}
	if v, ok := metricValue(t, p.base, "daodian_store_commit_batch_size_count"); !ok || v != 0 {
		t.Fatalf("commit batches on PostgreSQL: %v %v, want 0", v, ok)
	}
}

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/internal/testenv"
)

// dayShell runs daodian commands as processes, as an operator types them, with
// DAODIAN_DB and the app's credentials in the environment, and logs each command
// and its output (go test -v shows the transcript docs/operations.md copies).
type dayShell struct {
	t   *testing.T
	bin string
	env []string
	dir string
}

func (s *dayShell) run(args ...string) (code int, stdout, stderr string) {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(testenv.Environ(), s.env...)
	cmd.Dir = s.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		s.t.Fatalf("daodian %v: %v", args, err)
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if strings.ContainsAny(a, ` "{}`) {
			quoted[i] = "'" + a + "'"
		}
	}
	s.t.Logf("$ daodian %s\n%s%s(exit %d)", strings.Join(quoted, " "), out.String(), errb.String(), code)
	return code, out.String(), errb.String()
}

// must runs a command that must exit 0 and returns its standard output.
func (s *dayShell) must(args ...string) string {
	s.t.Helper()
	code, out, errs := s.run(args...)
	if code != 0 {
		s.t.Fatalf("daodian %v: exit %d: %s", args, code, errs)
	}
	return out
}

func (s *dayShell) json(v any, args ...string) {
	s.t.Helper()
	if err := json.Unmarshal([]byte(s.must(args...)), v); err != nil {
		s.t.Fatalf("daodian %v: %v", args, err)
	}
}

// TestWorkedDay (SPEC §8) runs a merchant's day through real processes — a use,
// a use whose answer is lost (fault injection) and its reversal by the POS, a
// use refunded after sale — then the statement of the day and its
// reconciliation against a POS file that matches and one that differs.
func TestWorkedDay(t *testing.T) {
	dir := t.TempDir()
	s := &dayShell{t: t, bin: testenv.Binary(t), dir: dir, env: []string{"DAODIAN_DB=" + filepath.Join(dir, "daodian.db")}}
	// The run must stay within one business day: a minute before midnight
	// (GMT+8), wait for the next day.
	now := time.Now().In(daodian.GMT8)
	if left := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, daodian.GMT8).Sub(now); left < time.Minute {
		time.Sleep(left + time.Second)
	}
	day := time.Now().In(daodian.GMT8).Format(time.DateOnly)

	s.must("shop", "add", "--merchant", "m1", "--shop-id", "s1", "--name", "一号店")
	var app struct {
		Key    string `json:"app_key"`
		Secret string `json:"app_secret"`
	}
	s.json(&app, "app", "create", "--name", "pos", "--merchant", "m1", "--json")
	type issued struct {
		Tickets []struct {
			ID   string `json:"ticket_id"`
			Code string `json:"ticket_code"`
		} `json:"tickets"`
	}
	var o issued
	s.json(&o, "ticket", "issue", "--merchant", "m1", "--count", "3", "--amount-cents", "9900", "--item-name", "双人套餐", "--json")
	t1, t2, t3 := o.Tickets[0], o.Tickets[1], o.Tickets[2]
	// The second use's answer will be lost: committed, then the connection
	// closed without a word.
	s.must("fault", "add", "--app-key", app.Key, "--kind", "lose_response", "--method", "use", "--ticket-code", t2.Code)
	p := testenv.StartServe(t, testenv.FileDB(filepath.Join(dir, "daodian.db")).Args()...)
	s.env = append(s.env, "DAODIAN_URL="+p.URL, "DAODIAN_APP_KEY="+app.Key, "DAODIAN_APP_SECRET="+app.Secret)

	use := func(code, rid string) (int, string, string) {
		return s.run("call", "alibaba.alsc.merchant.ext.ticketcode.use",
			`use_request={"ticket_code":"`+code+`","shop_id":"s1","ticket_request_id":"`+rid+`"}`)
	}
	var u1, u3 struct {
		TransID string `json:"ticket_trans_id"`
	}
	code, out, errs := use(t1.Code, "pos-1001")
	if code != 0 || json.Unmarshal([]byte(out), &struct {
		R any `json:"alibaba_alsc_merchant_ext_ticketcode_use_response"`
	}{&u1}) != nil || u1.TransID == "" {
		t.Fatalf("use 1: exit %d %s %s", code, out, errs)
	}
	code, out, errs = use(t2.Code, "pos-1002")
	if code == 0 || out != "" || strings.Contains(errs, app.Secret) {
		t.Fatalf("use 2, its answer lost: exit %d %q %q", code, out, errs)
	}
	// The POS cannot tell whether use 2 happened: it reverses it (the latest
	// use of the ticket by this app), retrying under one request id.
	if out := s.must("reverse", "--ticket-id", t2.ID, "--request-id", "pos-1002-r"); !strings.Contains(out, `"success": true`) {
		t.Fatalf("reversal: %s", out)
	}
	code, out, errs = use(t3.Code, "pos-1003")
	if code != 0 || json.Unmarshal([]byte(out), &struct {
		R any `json:"alibaba_alsc_merchant_ext_ticketcode_use_response"`
	}{&u3}) != nil {
		t.Fatalf("use 3: exit %d %s %s", code, out, errs)
	}
	s.must("call", "alibaba.alsc.merchant.ext.ticket.refund", "trans_id="+u3.TransID, "ticket_code="+t3.Code, "ticket_request_id=pos-1003-f")

	var h admin.TicketHistory
	s.json(&h, "ticket", "show", "--id", t2.ID, "--json")
	if len(h.Timeline) != 3 || h.Timeline[1].Kind != "use" || h.Timeline[1].RequestID != "pos-1002" || h.Timeline[2].Kind != "reversal" ||
		h.Ticket.Available != 1 || h.Ticket.TicketCode != "" {
		t.Fatalf("ticket 2: %+v", h)
	}
	s.must("ticket", "show", "--id", t2.ID)
	s.must("records", "--merchant", "m1", "--kind", "use,reversal,refund")

	var st admin.Statement
	s.json(&st, "statement", "--merchant", "m1", "--date", day, "--json")
	want := admin.StatementLine{Uses: 3, UsedUnits: 3, UsedReceiptCents: 29700, Reversals: 1, ReversedUnits: 1, ReversedReceiptCents: 9900,
		Refunds: 1, RefundedUnits: 1, RefundedReceiptCents: 9900, NetUnits: 2, NetReceiptCents: 9900}
	shop := want
	shop.ShopID = "s1"
	if st.MerchantID != "m1" || st.Date != day || st.Total != want || len(st.Shops) != 1 || st.Shops[0] != shop {
		t.Fatalf("statement: %+v", st)
	}
	s.must("statement", "--merchant", "m1", "--date", day)

	// The POS's books agree: use 1 used, use 2 reversed, use 3 refunded.
	writePOS := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePOS("pos-good.csv", "ticket_request_id,status,units\npos-1001,used,1\npos-1002,reversed,1\npos-1003,refunded,1\n")
	if out := s.must("reconcile", "--merchant", "m1", "--date", day, "pos-good.csv"); !strings.Contains(out, ": 3 matched, 0 differences") {
		t.Fatalf("reconcile, agreeing: %s", out)
	}
	// A POS that lost track of use 2, missed the refund of use 3 and lists a
	// use the ledger never received.
	writePOS("pos-bad.csv", "ticket_request_id,status\npos-1001,used\npos-1003,used\npos-1004,used\n")
	code, out, errs = s.run("reconcile", "--merchant", "m1", "--date", day, "pos-bad.csv", "--json")
	var rec admin.Reconciliation
	if err := json.Unmarshal([]byte(out), &rec); err != nil || code != 1 || errs != "daodian reconcile: 3 differences between pos-bad.csv and the ledger\n" {
		t.Fatalf("reconcile, differing: exit %d %v %s\n%s", code, err, errs, out)
	}
	wantDiffs := []admin.Difference{
		{Kind: daodian.DiffStatusMismatch, RequestID: "pos-1003", TransID: u3.TransID, POSStatus: "used", LedgerStatus: "refunded", LedgerUnits: 1, POSLine: 3},
		{Kind: daodian.DiffMissingInLedger, RequestID: "pos-1004", POSStatus: "used", POSLine: 4},
		{Kind: daodian.DiffMissingInPOS, RequestID: "pos-1002", TransID: h.Timeline[1].TransID, LedgerStatus: "reversed", LedgerUnits: 1},
	}
	if rec.Matched != 1 || len(rec.Differences) != len(wantDiffs) {
		t.Fatalf("reconcile, differing: %+v", rec)
	}
	for i := range wantDiffs {
		if rec.Differences[i] != wantDiffs[i] {
			t.Errorf("difference %d: %+v, want %+v", i, rec.Differences[i], wantDiffs[i])
		}
	}
	if code, _, _ := s.run("reconcile", "--merchant", "m1", "--date", day, "pos-bad.csv"); code != 1 {
		t.Fatalf("reconcile, differing, text: exit %d", code)
	}
	writePOS("pos-broken.csv", "ticket_request_id,status\npos-1001,used\npos-1002,cancelled\n")
	if code, out, errs := s.run("reconcile", "--merchant", "m1", "--date", day, "pos-broken.csv"); code != 2 || out != "" ||
		errs != "pos-broken.csv:3: status \"cancelled\" is not used, reversed or refunded\n" {
		t.Fatalf("reconcile, a bad file: exit %d %q %q", code, out, errs)
	}
	s.must("audit")
	p.Stop(t)
}

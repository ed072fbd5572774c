package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/internal/testio"
)

// cli runs one command in-process and returns its exit code, stdout and stderr.
func cli(t *testing.T, envv map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb testio.Buffer
	e := &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: func(k string) string { return envv[k] }}
	code := run(context.Background(), e, args)
	return code, out.String(), errb.String()
}

// TestMain runs the tests with testenv, for the one test that builds and runs
// the daodian executable (TestDemoLinesPasteIntoAShell).
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestServeOnEmptyDirectoryAndSignedCalls(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chdir(wd) })

	// The admin commands work on the default ./daodian.db while serve runs on it.
	p := startServeInProcess(t)
	code, out, errs := cli(t, nil, "app", "create", "--name", "pos", "--merchant", "m1", "--json")
	if code != 0 {
		t.Fatalf("app create: %d %s", code, errs)
	}
	var app struct{ AppKey, AppSecret string }
	if err := json.Unmarshal([]byte(strings.NewReplacer("app_key", "AppKey", "app_secret", "AppSecret").Replace(out)), &app); err != nil || app.AppKey == "" || len(app.AppSecret) < 32 {
		t.Fatalf("app create --json: %q %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "daodian.db")); err != nil {
		t.Fatalf("no database file in the working directory: %v", err)
	}
	if code, _, errs := cli(t, nil, "shop", "add", "--merchant", "m1", "--shop-id", "s1"); code != 0 {
		t.Fatalf("shop add: %s", errs)
	}
	code, out, errs = cli(t, nil, "ticket", "issue", "--merchant", "m1", "--count", "2", "--json")
	if code != 0 {
		t.Fatalf("ticket issue: %s", errs)
	}
	var issued struct {
		AlscOrderNo    string `json:"alsc_order_no"`
		AlscSubOrderNo string `json:"alsc_sub_order_no"`
		Tickets        []struct {
			TicketID   string `json:"ticket_id"`
			TicketCode string `json:"ticket_code"`
		} `json:"tickets"`
	}
	if err := json.Unmarshal([]byte(out), &issued); err != nil || len(issued.Tickets) != 2 || len(issued.Tickets[0].TicketID) != 19 || len(issued.Tickets[0].TicketCode) != 12 || issued.AlscSubOrderNo == "" {
		t.Fatalf("ticket issue --json: %q %v", out, err)
	}

	// Credentials from the environment, as DAODIAN_* variables.
	envv := map[string]string{"DAODIAN_URL": p.url, "DAODIAN_APP_KEY": app.AppKey, "DAODIAN_APP_SECRET": app.AppSecret}
	for _, sm := range []string{"md5", "hmac", "hmac-sha256"} {
		for _, f := range []string{"json", "xml"} {
			code, out, errs = cli(t, envv, "call", "taobao.time.get", "--sign-method", sm, "--format", f)
			if code != 0 || !strings.Contains(out, "time_get_response") {
				t.Fatalf("call %s %s: %d %q %s", sm, f, code, out, errs)
			}
		}
	}
	code, out, _ = cli(t, envv, "call", "alibaba.alsc.merchant.ext.ticketcode.use",
		`use_request={"ticket_code":"`+issued.Tickets[0].TicketCode+`","shop_id":"s1","ticket_request_id":"u1"}`)
	if code != 0 || !strings.Contains(out, "ticket_trans_id") {
		t.Fatalf("call use: %d %q", code, out)
	}
	// An error_response is printed and exits 1.
	code, out, _ = cli(t, envv, "call", "alibaba.alsc.daodian.ticket.consult")
	if code != 1 || !strings.Contains(out, "isv.missing-parameter:consult_request") {
		t.Fatalf("call with a missing parameter: %d %q", code, out)
	}
	// Latest-use reversal through the retrying helper, then audit.
	code, out, errs = cli(t, envv, "reverse", "--ticket-id", issued.Tickets[0].TicketID, "--request-id", "r1")
	if code != 0 || !strings.Contains(out, `"success": true`) {
		t.Fatalf("reverse: %d %q %s", code, out, errs)
	}
	code, out, errs = cli(t, envv, "reverse", "--ticket-id", "2100000000000999999")
	if code != 1 || !strings.Contains(errs, "TICKET_NOT_FOUND") {
		t.Fatalf("reverse of an unknown ticket: %d %q %s", code, out, errs)
	}
	code, out, errs = cli(t, nil, "audit")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("audit: %d %q %s", code, out, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"nope"},
		{"app"},
		{"app", "create"},
		{"call"},
		{"reverse", "--app-key", "k", "--app-secret", "s"},
		{"serve", "--no-such-flag"},
		{"serve", "--addr", "127.0.0.1:0", "--memory-tickets", "0"},
		{"serve", "--addr", "127.0.0.1:0", "--memory-tickets", "-2"},
		{"serve", "--addr", "127.0.0.1:0", "--memory-tickets", "10000001"},
	} {
		code, _, errs := cli(t, nil, args...)
		if code == 0 || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want a non-zero exit and a message", args, code, errs)
		}
	}
}

func TestDemoSeedsAnEmptyDatabaseOnly(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	p := startServeInProcess(t, "--db", db, "--demo")
	out := p.stderr.String()
	self := selfCommand() // this test binary's path: it is not the daodian on PATH
	for _, want := range []string{"app_key", "app_secret", self + " call alibaba.alsc.daodian.ticket.consult", self + " call alibaba.alsc.merchant.ext.ticketcode.use", self + " call alibaba.alsc.daodian.ticket.reserve"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestAuditNamesAViolation(t *testing.T) {
	db := filepath.Join(t.TempDir(), "audit.db")
	code, out, errs := cli(t, nil, "ticket", "issue", "--merchant", "m1", "--quantity", "3", "--json", "--db", db)
	if code != 0 {
		t.Fatalf("ticket issue: %s", errs)
	}
	var issued struct {
		Tickets []struct {
			TicketID string `json:"ticket_id"`
		} `json:"tickets"`
	}
	if err := json.Unmarshal([]byte(out), &issued); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, nil, "audit", "--db", db); code != 0 {
		t.Fatalf("audit of a clean ledger: %d %s", code, errs)
	}
	// Corrupt the ledger behind the rules' back: two units vanish without a use.
	ctx := context.Background()
	s, err := openStore(ctx, storeRef{db: db}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx daodian.Tx) error { return tx.SetAvailable(ctx, issued.Tickets[0].TicketID, 1) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, out, errs = cli(t, nil, "audit", "--db", db)
	if code != 1 || !strings.Contains(out, "VIOLATION ticket "+issued.Tickets[0].TicketID) || !strings.Contains(errs, "1 invariant violations") {
		t.Fatalf("audit of a corrupted ledger: exit %d\n%s\n%s", code, out, errs)
	}
}

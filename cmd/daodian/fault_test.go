package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testenv"
)

// faultWorld is the seed (testenv.Seed: an app, a shop and here one ticket of
// 3 units) in a fresh embedded database.
type faultWorld struct {
	db, key, secret, ticketID, code string
}

func newFaultWorld(t *testing.T) *faultWorld {
	t.Helper()
	db := testenv.NewDB(t, testenv.Embedded)
	seeded := testenv.SeedDB(t, db, daodian.IssueRequest{Quantity: 3})
	tk := seeded.Tickets[0]
	return &faultWorld{db: db.URL, key: seeded.App.Key, secret: seeded.App.Secret, ticketID: tk.ID, code: tk.Code}
}

func (w *faultWorld) fault(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, nil, append(append([]string{"fault"}, args...), "--db", w.db)...)
}

func TestFaultCommands(t *testing.T) {
	w := newFaultWorld(t)
	code, out, errs := w.fault(t, "add", "--app-key", w.key, "--kind", "error", "--method", "reserve", "--ticket-code", w.code, "--count", "3", "--json")
	if code != 0 {
		t.Fatalf("fault add: %d %s", code, errs)
	}
	var rule faultJSON
	if err := json.Unmarshal([]byte(out), &rule); err != nil || len(rule.ID) != 19 || rule.TicketID != w.ticketID ||
		rule.Method != "alibaba.alsc.daodian.ticket.reserve" || rule.Count != 3 || rule.Probability != 1 {
		t.Fatalf("fault add --json: %q %v", out, err)
	}
	code, out, errs = w.fault(t, "add", "--app-key", w.key, "--kind", "hold", "--max-hold", "5s")
	if code != 0 || !strings.Contains(out, "hold (at most 5s) on alibaba.alsc.merchant.ext.ticketcode.use") || !strings.Contains(out, "1 more time") {
		t.Fatalf("fault add hold: %d %q %s", code, out, errs)
	}
	code, out, errs = w.fault(t, "add", "--app-key", w.key, "--kind", "delay", "--delay", "2s", "--probability", "0.25")
	if code != 0 || !strings.Contains(out, "no limit, probability 0.25") {
		t.Fatalf("fault add delay: %d %q %s", code, out, errs)
	}
	for _, c := range []struct {
		args []string
		exit int
		want string
	}{
		{[]string{"--kind", "error"}, 2, "--app-key and --kind are required"},
		{[]string{"--app-key", w.key, "--kind", "explode"}, 2, "--kind"},
		{[]string{"--app-key", w.key, "--kind", "delay"}, 2, "--delay"},
		{[]string{"--app-key", w.key, "--kind", "delay", "--delay", "2m"}, 2, "at most 1m0s"},
		{[]string{"--app-key", w.key, "--kind", "hold", "--method", "reserve"}, 2, "hold rule applies to"},
		{[]string{"--app-key", w.key, "--kind", "error", "--code", "50"}, 2, "--code 50 is not one of"},
		{[]string{"--app-key", w.key, "--kind", "error", "--method", "nope"}, 2, "--method"},
		{[]string{"--app-key", w.key, "--kind", "error", "--probability", "2"}, 2, "--probability"},
		{[]string{"--app-key", "nobody", "--kind", "error"}, 1, `--app-key "nobody" names no app`},
		{[]string{"--app-key", w.key, "--kind", "error", "--ticket-id", "2100000000000999999"}, 1, "names no ticket"},
	} {
		code, _, errs := w.fault(t, append([]string{"add"}, c.args...)...)
		if code != c.exit || !strings.Contains(errs, c.want) {
			t.Errorf("fault add %v: exit %d %q; want %d and %q", c.args, code, errs, c.exit, c.want)
		}
	}

	code, out, _ = w.fault(t, "list")
	if code != 0 || strings.Count(out, w.key) != 3 || !strings.Contains(out, rule.ID) || !strings.Contains(out, "2s") {
		t.Fatalf("fault list: %d %q", code, out)
	}
	code, out, _ = w.fault(t, "list", "--json", "--app-key", "other")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("fault list of another app: %q", out)
	}
	code, out, _ = w.fault(t, "clear", "--id", rule.ID)
	if code != 0 || !strings.Contains(out, "1 fault rules cleared") {
		t.Fatalf("fault clear --id: %q", out)
	}
	code, out, _ = w.fault(t, "clear", "--app-key", w.key)
	if code != 0 || !strings.Contains(out, "2 fault rules cleared") {
		t.Fatalf("fault clear --app-key: %q", out)
	}
	code, out, _ = w.fault(t, "list")
	if code != 0 || !strings.Contains(out, "no fault rules") {
		t.Fatalf("fault list after clear: %q", out)
	}
}

// TestReverseConvergesUnderFaults: `daodian reverse` against a running server
// reaches one definitive answer when the reversal's answer is lost and when it
// meets transient errors, with rules added while the server runs.
func TestReverseConvergesUnderFaults(t *testing.T) {
	w := newFaultWorld(t)
	p := startServeInProcess(t, "--db", w.db)
	envv := map[string]string{"DAODIAN_URL": p.url, "DAODIAN_APP_KEY": w.key, "DAODIAN_APP_SECRET": w.secret, "DAODIAN_DB": w.db}
	use := func(rid string) {
		t.Helper()
		code, out, _ := cli(t, envv, "call", "alibaba.alsc.merchant.ext.ticketcode.use",
			`use_request={"ticket_code":"`+w.code+`","shop_id":"s1","ticket_request_id":"`+rid+`"}`)
		if code != 0 {
			t.Fatalf("use: %q", out)
		}
	}
	arm := func(args ...string) {
		t.Helper()
		if code, _, errs := cli(t, envv, append([]string{"fault", "add"}, args...)...); code != 0 {
			t.Fatalf("fault add: %s", errs)
		}
		time.Sleep(gateway.DefaultFaultReload + 200*time.Millisecond) // no restart: the server reads it
	}

	use("u1")
	arm("--kind", "lose_response", "--method", "reserve", "--count", "1")
	code, out, errs := cli(t, envv, "reverse", "--ticket-id", w.ticketID, "--request-id", "r1")
	if code != 0 || !strings.Contains(out, `"success": true`) || !strings.Contains(errs, "attempt 1: no answer from gateway") ||
		!strings.Contains(errs, "retrying with request_id r1") || strings.Contains(errs, "attempt 2") {
		t.Fatalf("reverse under lose_response: %d %q %s", code, out, errs)
	}

	use("u2")
	arm("--kind", "error", "--method", "reserve", "--ticket-id", w.ticketID, "--count", "2")
	code, out, errs = cli(t, envv, "reverse", "--ticket-id", w.ticketID, "--request-id", "r2")
	if code != 0 || !strings.Contains(out, `"success": true`) || !strings.Contains(errs, "attempt 2: answer says retry=true") {
		t.Fatalf("reverse under error: %d %q %s", code, out, errs)
	}

	// One effect each: every unit is back.
	code, out, _ = cli(t, envv, "call", "alibaba.alsc.daodian.ticket.consult",
		`consult_request={"request_id":"c1","shop_id":"s1","ticket_code":"`+w.code+`"}`)
	if code != 0 || !strings.Contains(out, `"available_quantity": 3`) {
		t.Fatalf("consult after two reversals: %q", out)
	}
	if code, out, errs := cli(t, envv, "audit"); code != 0 {
		t.Fatalf("audit: %q %s", out, errs)
	}
	if code, out, _ := cli(t, envv, "fault", "list"); code != 0 || !strings.Contains(out, "no fault rules") {
		t.Fatalf("spent rules are left: %q", out)
	}
}

func TestServeAnnouncesFaults(t *testing.T) {
	for _, noFaults := range []bool{false, true} {
		w := newFaultWorld(t)
		if code, _, errs := w.fault(t, "add", "--app-key", w.key, "--kind", "error"); code != 0 {
			t.Fatal(errs)
		}
		args := []string{"--db", w.db}
		want := "fault injection is ON: 1 fault rules armed"
		if noFaults {
			args = append(args, "--no-faults")
			want = "fault injection is disabled (--no-faults): the 1 fault rules in the store are ignored"
		}
		p := startServeInProcess(t, args...)
		if !strings.Contains(p.stderr.String(), want) {
			t.Fatalf("serve %v says:\n%s\nwant %q", args, p.stderr, want)
		}
		envv := map[string]string{"DAODIAN_URL": p.url, "DAODIAN_APP_KEY": w.key, "DAODIAN_APP_SECRET": w.secret}
		code, out, _ := cli(t, envv, "call", "taobao.time.get")
		if noFaults != (code == 0) {
			t.Fatalf("serve %v: call exited %d: %s", args, code, out)
		}
		if !noFaults && !strings.Contains(out, "isp.service-busy") {
			t.Fatalf("injected error: %s", out)
		}
	}
}

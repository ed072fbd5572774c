package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/top"
)

// shellWords splits a command line as a POSIX shell would, for the subset the
// demo prints: words separated by spaces, and single-quoted strings taken
// literally. Outside quotes, only characters that no shell treats specially
// are accepted, so that a line that passes here also pastes into a shell.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted:
			if c == '\'' {
				quoted = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\'':
			quoted, in = true, true
		case c == ' ':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("._-/:=@,+%", c) >= 0:
			cur.WriteByte(c)
			in = true
		default:
			t.Fatalf("character %q outside quotes would need escaping in a shell: %s", c, line)
		}
	}
	if quoted {
		t.Fatalf("unterminated quote: %s", line)
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// TestDemoCallLinesWork: every `… call …` and `… reverse …` line that serve
// --demo prints runs, as printed, and succeeds, in order. Each starts with the
// command that runs this program (here the test binary: TestDemoLinesPasteIntoAShell
// runs real binaries).
func TestDemoCallLinesWork(t *testing.T) {
	db := filepath.Join(t.TempDir(), "demo.db")
	p := startServeInProcess(t, "--db", db, "--demo")
	self := selfCommand()
	var lines []string
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, self+" call ") || strings.HasPrefix(l, self+" reverse ") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 5 {
		t.Fatalf("the demo printed %d call lines, want 5:\n%s", len(lines), p.stderr.String())
	}
	wants := map[string]string{
		"taobao.time.get":  `"time"`,
		alsc.MethodConsult: `"success": true`,
		alsc.MethodUse:     `"ticket_trans_id"`,
		alsc.MethodReserve: `"success": true`,
		"--ticket-id":      `"success": true`,
	}
	for _, l := range lines {
		words := shellWords(t, l)
		if words[0] != self {
			t.Fatalf("not a command of this program (%s): %s", self, l)
		}
		code, out, errs := cli(t, nil, words[1:]...)
		if code != 0 {
			t.Fatalf("%s\nexit %d\nstdout %s\nstderr %s", l, code, out, errs)
		}
		for k, w := range wants {
			if strings.Contains(l, " "+k+" ") && !strings.Contains(out, w) {
				t.Errorf("%s\nanswered %s; want it to contain %s", l, out, w)
			}
		}
		if strings.Contains(out, `"success": false`) || strings.Contains(out, "error_response") {
			t.Errorf("%s\nanswered a failure: %s", l, out)
		}
	}
	// What the lines did is a consistent ledger.
	code, out, errs := cli(t, nil, "audit", "--db", db)
	if code != 0 {
		t.Fatalf("audit after the demo calls: %d %s %s", code, out, errs)
	}
}

// serveProc is `daodian serve` run in-process, with its streams kept.
type serveProc struct {
	url    string // the gateway's /router/rest
	base   string // http://host:port
	stdout *testio.Buffer
	stderr *testio.Buffer
	cancel context.CancelFunc
	done   chan int
}

// startServeInProcess runs `daodian serve --addr 127.0.0.1:0 args…` in-process
// until cancel is called or the test ends, when it must exit 0. Tests that
// need a real process (signals, its own environment) use testenv.StartServe.
func startServeInProcess(t *testing.T, args ...string) *serveProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &serveProc{stdout: &testio.Buffer{}, stderr: &testio.Buffer{}, cancel: cancel, done: make(chan int, 1)}
	e := &env{stdout: p.stdout, stderr: p.stderr, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
	go func() { p.done <- run(ctx, e, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-p.done:
			p.done <- code
			if code != 0 {
				t.Errorf("serve exited %d: %s", code, p.stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop after its context was cancelled")
		}
	})
	re := regexp.MustCompile(`serving on (http://(\S+))/router/rest`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			p.url = m[1] + "/router/rest"
			p.base = m[1]
			return p
		}
		select {
		case code := <-p.done:
			t.Fatalf("serve exited %d: %s", code, p.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not start: %s", p.stderr.String())
	return nil
}

// seed seeds the embedded file db (testenv.Seed) with one ticket of 3 units.
func seed(t *testing.T, db string) (*daodian.App, daodian.Ticket) {
	t.Helper()
	seeded := testenv.SeedDB(t, testenv.FileDB(db), daodian.IssueRequest{Quantity: 3})
	return seeded.App, seeded.Tickets[0]
}

// metricValue reads one sample of /metrics: name{labels} value, where labels is
// the exact label text ("" for none).
func metricValue(t *testing.T, base, series string) (float64, bool) {
	t.Helper()
	return testio.MetricValue(t, base, series)
}

// slowRequest sends a signed use whose body arrives in two parts: the headers
// and half the body now, the rest when finish is called, which returns the answer.
func slowRequest(t *testing.T, gatewayURL string, app *daodian.App, code string) (finish func() (int, string)) {
	t.Helper()
	body := testenv.SignedForm(t, gatewayURL, app, alsc.MethodUse, map[string]string{
		alsc.ParamUseRequest: `{"ticket_code":"` + code + `","shop_id":"s1","ticket_request_id":"slow-1"}`,
	})
	u, err := url.Parse(gatewayURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	half := len(body) / 2
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", u.Path, u.Host, len(body))
	if _, err := io.WriteString(conn, head+body[:half]); err != nil {
		t.Fatal(err)
	}
	return func() (int, string) {
		if _, err := io.WriteString(conn, body[half:]); err != nil {
			t.Fatalf("sending the rest of the body: %v", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer of the in-flight request: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// waitInFlight polls /metrics until n requests are in flight.
func waitInFlight(t *testing.T, base string, n float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if v, ok := metricValue(t, base, "daodian_requests_in_flight"); ok && v == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("daodian_requests_in_flight did not reach %v", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitRefused polls until the address accepts no more connections.
func waitRefused(t *testing.T, base string) {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections after it was told to stop")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestShutdownFinishesInFlight: when serve is told to stop (its context, which
// SIGTERM and SIGINT cancel) with a request in flight, it stops accepting
// connections, answers that request properly, closes the store and exits 0; the
// answered use is durable.
func TestShutdownFinishesInFlight(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	app, tk := seed(t, db)
	p := startServeInProcess(t, "--db", db)
	finish := slowRequest(t, p.url, app, tk.Code)
	waitInFlight(t, p.base, 1) // the request is inside the handler, reading its body

	p.cancel()
	waitRefused(t, p.base)
	select {
	case code := <-p.done:
		t.Fatalf("serve exited %d before the in-flight request was answered", code)
	default:
	}
	status, body := finish()
	if status != 200 || !strings.Contains(body, "ticket_trans_id") || !strings.Contains(body, `"biz_code":"SUCCESS"`) {
		t.Fatalf("the in-flight request was answered %d %s", status, body)
	}
	select {
	case code := <-p.done:
		p.done <- code
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, p.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit after its last request")
	}
	if !strings.Contains(p.stdout.String(), "store closed") {
		t.Errorf("no log line of the clean stop:\n%s", p.stdout.String())
	}
	// The store was closed: the file can be opened exclusively again, and the
	// use answered during the shutdown is in it.
	s, err := openStore(context.Background(), storeRef{db: db}, true)
	if err != nil {
		t.Fatalf("the store is still held after serve returned: %v", err)
	}
	defer s.Close()
	err = s.View(context.Background(), func(tx daodian.ReadTx) error {
		got, err := tx.Ticket(context.Background(), tk.ID)
		if err != nil {
			return err
		}
		if got.Available != 2 {
			return fmt.Errorf("ticket available %d after the use answered during shutdown, want 2", got.Available)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServeLogs: one JSON line per request (stdout is not a terminal) whose
// request_id is the answer's, with app key, method, outcome and duration; no
// line holds the app secret or any sign parameter, whatever the request.
func TestServeLogs(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	app, tk := seed(t, db)
	p := startServeInProcess(t, "--db", db)
	type sent struct{ rid, method, outcome string }
	var all []sent
	var signs []string
	for _, sm := range []string{"md5", "hmac", "hmac-sha256"} {
		for _, f := range []top.Format{top.JSON, top.XML} {
			c := client.New(p.url, app.Key, app.Secret, client.WithSignMethod(sm), client.WithFormat(f, false))
			pr, err := c.Params(alsc.MethodConsult, map[string]string{
				"consult_request": `{"request_id":"c1","shop_id":"s1","ticket_code":"` + tk.Code + `"}`,
			})
			if err != nil {
				t.Fatal(err)
			}
			signs = append(signs, pr["sign"])
			for _, wrong := range []bool{false, true} {
				q := url.Values{}
				for k, v := range pr {
					q.Set(k, v)
				}
				outcome := "success"
				if wrong { // a wrong sign must not be logged either
					q.Set("sign", "0123456789ABCDEF0123456789ABCDEF")
					outcome = "code_25"
				}
				resp, err := http.PostForm(p.url, q)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				rid := regexp.MustCompile(`"request_id":"([^"]+)"|<request_id>([^<]+)</request_id>`).FindStringSubmatch(string(b))
				if rid == nil {
					t.Fatalf("no request_id in %s", b)
				}
				all = append(all, sent{rid: rid[1] + rid[2], method: alsc.MethodConsult, outcome: outcome})
			}
		}
	}
	signs = append(signs, "0123456789ABCDEF0123456789ABCDEF")
	// A request's line is written just after its answer: wait for each.
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range all {
		for !strings.Contains(p.stdout.String(), `"request_id":"`+s.rid+`"`) {
			if time.Now().After(deadline) {
				t.Fatalf("no log line for request %s:\n%s", s.rid, p.stdout.String())
			}
			time.Sleep(time.Millisecond)
		}
	}
	logs := p.stdout.String()
	byRID := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		for k := range m {
			if strings.Contains(strings.ToLower(k), "sign") || strings.Contains(strings.ToLower(k), "secret") {
				t.Errorf("log attribute %q: %s", k, line)
			}
		}
		if m["msg"] == "request" {
			rid, _ := m["request_id"].(string)
			if byRID[rid] != nil {
				t.Fatalf("two request lines for request_id %s", rid)
			}
			byRID[rid] = m
		}
	}
	for _, s := range all {
		m := byRID[s.rid]
		if m == nil {
			t.Fatalf("no request line with the answer's request_id %s:\n%s", s.rid, logs)
		}
		if m["method"] != s.method || m["outcome"] != s.outcome || m["app_key"] != app.Key || m["level"] != "INFO" {
			t.Errorf("request %s logged as %v, want method %s outcome %s app %s", s.rid, m, s.method, s.outcome, app.Key)
		}
		if d, ok := m["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("request %s: duration_ms %v", s.rid, m["duration_ms"])
		}
	}
	for _, secret := range append(signs, app.Secret) {
		if strings.Contains(logs, secret) || strings.Contains(p.stderr.String(), secret) {
			t.Fatalf("%q appears in the logs:\n%s", secret, logs)
		}
	}
}

// TestServeMetrics: serve exposes /metrics with the request counts and the
// embedded store's commit batches.
func TestServeMetrics(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	app, tk := seed(t, db)
	p := startServeInProcess(t, "--db", db)
	c := client.New(p.url, app.Key, app.Secret)
	if _, err := c.Use(context.Background(), alsc.UseTopRequest{TicketCode: tk.Code, ShopID: "s1", TicketRequestID: "u1"}); err != nil {
		t.Fatal(err)
	}
	waitInFlight(t, p.base, 0) // the use is counted just after its answer
	if v, ok := metricValue(t, p.base, `daodian_requests_total{method="`+alsc.MethodUse+`",outcome="success"}`); !ok || v != 1 {
		t.Fatalf("use success count %v %v, want 1", v, ok)
	}
	// The use's commit was reported by the store before the use returned.
	if v, ok := metricValue(t, p.base, "daodian_store_commit_batch_size_count"); !ok || v < 1 {
		t.Fatalf("commit batch count %v %v, want at least 1", v, ok)
	}
	if _, ok := metricValue(t, p.base, "process_resident_memory_bytes"); !ok {
		t.Fatal("no process metrics")
	}
}

func TestDescribeDBHidesPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"daodian.db": "daodian.db (embedded)",
		"postgres://u:hunter2@db:5432/x?sslmode=disable":   "postgres://u:xxxxx@db:5432/x?sslmode=disable",
		"postgres://u@db/x?password=hunter2&sslmode=false": "postgres://u@db/x?password=xxxxx&sslmode=false",
		"postgresql://db/x?sslpassword=hunter2":            "postgresql://db/x?sslpassword=xxxxx",
		"postgres://u:hunter2@db:bad port/x":               "(a database URL that does not parse)",
	} {
		if got := describeDB(in); got != want || strings.Contains(got, "hunter2") {
			t.Errorf("describeDB(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBackupRestores: a backup taken while serve runs and writes is a
// consistent copy: restored into place of a lost database, it opens, audits
// clean and holds every change answered before the backup.
func TestBackupRestores(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "d.db")
	app, tk := seed(t, db)
	p := startServeInProcess(t, "--db", db)
	c := client.New(p.url, app.Key, app.Secret)
	ctx := context.Background()
	use, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: "s1", Quantity: 2, TicketRequestID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	// Writes go on during the backup.
	stop := make(chan struct{})
	writer := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				writer <- nil
				return
			default:
			}
			res, err := c.Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: fmt.Sprintf("r%d", i), TicketID: "2100000000000999999"})
			if err != nil || res.Result.ErrorCode != "TICKET_NOT_FOUND" {
				writer <- fmt.Errorf("reversal during the backup: %v %+v", err, res)
				return
			}
		}
	}()
	backup := filepath.Join(dir, "backup.db")
	code, out, errs := cli(t, nil, "backup", "--db", db, "--to", backup)
	close(stop)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(out, "backed up") {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	if code, _, errs := cli(t, nil, "backup", "--db", db, "--to", backup); code == 0 || !strings.Contains(errs, "exists") {
		t.Fatalf("a backup over an existing file: %d %s", code, errs)
	}
	if code, _, errs := cli(t, nil, "backup", "--db", "postgres://db/x", "--to", filepath.Join(dir, "x")); code != 2 || !strings.Contains(errs, "pg_dump") {
		t.Fatalf("backup of PostgreSQL: %d %s", code, errs)
	}
	if code, _, _ := cli(t, nil, "backup", "--db", filepath.Join(dir, "none.db"), "--to", filepath.Join(dir, "y")); code == 0 {
		t.Fatal("backup of a missing database succeeded")
	}

	// Restore: the backup becomes the database of a fresh location (as after
	// the loss of the original), without the original's -wal and -shm. The
	// key is not in the backup: without the key file, the restored database
	// is refused, with a message that says so.
	restored := filepath.Join(t.TempDir(), "daodian.db")
	if err := copyFile(backup, restored); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, nil, "audit", "--db", restored); code != 1 || !strings.Contains(errs, "no such secret key file") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("a restore without its key file: %d %s", code, errs)
	}
	if err := copyFile(db+".key", restored+".key"); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli(t, nil, "audit", "--db", restored, "--json")
	if code != 0 || !strings.Contains(out, `"uses": 1`) || !strings.Contains(out, `"ok": true`) {
		t.Fatalf("audit of the restored backup: %d %s %s", code, out, errs)
	}
	l := ledgerAt(t, restored)
	err = l.Store().View(ctx, func(tx daodian.ReadTx) error {
		got, err := tx.Ticket(ctx, tk.ID)
		if err != nil {
			return err
		}
		if got.Available != 1 {
			return fmt.Errorf("restored ticket has %d units, want 1", got.Available)
		}
		u, err := tx.Use(ctx, use.TicketTransID)
		if err != nil {
			return fmt.Errorf("the use answered before the backup: %w", err)
		}
		if u.Units != 2 {
			return fmt.Errorf("restored use %+v", u)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The restored file serves.
	p2 := startServeInProcess(t, "--db", restored)
	c2 := client.New(p2.url, app.Key, app.Secret)
	res, err := c2.Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: "after-restore", TicketID: tk.ID})
	if err != nil || !res.Result.Success {
		t.Fatalf("reversal on the restored database: %v %+v", err, res)
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// TestServeMemoryTickets: serve with the smallest memory (--memory-tickets 1:
// tickets dropped and read again as they alternate) and with none (-1) decides
// right, a ticket issued by another process while it runs included. (That the
// memory's bound holds is sqlite's TestMemBound.)
func TestServeMemoryTickets(t *testing.T) {
	for _, n := range []string{"1", "-1"} {
		t.Run(n, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "m.db")
			app, tk := seed(t, db)
			p := startServeInProcess(t, "--db", db, "--memory-tickets", n)
			code, out, errs := cli(t, nil, "ticket", "issue", "--merchant", testenv.Merchant, "--quantity", "2", "--json", "--db", db)
			if code != 0 {
				t.Fatalf("ticket issue beside serve: %d %s", code, errs)
			}
			var issued struct {
				Tickets []struct {
					Code string `json:"ticket_code"`
				} `json:"tickets"`
			}
			if err := json.Unmarshal([]byte(out), &issued); err != nil || len(issued.Tickets) != 1 {
				t.Fatalf("ticket issue printed %q: %v", out, err)
			}
			c := client.New(p.url, app.Key, app.Secret)
			use := func(code, rid string) error {
				_, err := c.Use(t.Context(), alsc.UseTopRequest{TicketCode: code, ShopID: testenv.Shop, TicketRequestID: rid})
				return err
			}
			// The seeded ticket has 3 units, the new one 2: five uses go
			// through, alternating, and the sixth of the new one is refused.
			for i, code := range []string{tk.Code, issued.Tickets[0].Code, tk.Code, issued.Tickets[0].Code, tk.Code} {
				if err := use(code, fmt.Sprint("u", i)); err != nil {
					t.Fatalf("use %d: %v", i, err)
				}
			}
			if err := use(issued.Tickets[0].Code, "u5"); err == nil || !strings.Contains(err.Error(), "quantity") {
				t.Fatalf("a third use of a 2-unit ticket: %v, want a refusal for its quantity", err)
			}
		})
	}
}

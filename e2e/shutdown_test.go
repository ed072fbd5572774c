package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/sqlite"
)

// inFlight reads daodian_requests_in_flight from the server's /metrics.
func inFlight(t *testing.T, base string) float64 {
	t.Helper()
	return gauge(t, base, "daodian_requests_in_flight")
}

// gauge reads the unlabelled metric name from the server's /metrics.
func gauge(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// seedServeDB creates the embedded database db for a `daodian serve` to open:
// merchant m1 with shop s1, an app of m1, and the tickets of one order of m1
// (req.MerchantID is set).
func seedServeDB(t *testing.T, db string, req daodian.IssueRequest) (*daodian.App, []daodian.Ticket) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, db, sqlite.Options{SecretKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	l := daodian.NewLedger(s, daodian.Config{})
	if err := l.AddShop(ctx, daodian.Shop{MerchantID: "m1", ID: "s1"}); err != nil {
		t.Fatal(err)
	}
	app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "pos", MerchantID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	req.MerchantID = "m1"
	o, err := l.Issue(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return app, o.Tickets
}

// TestSIGTERMFinishesInFlight runs a real `daodian serve`, holds a use request
// in flight (its body half sent), and sends SIGTERM: the process stops accepting
// connections, answers the request properly, and exits 0; the use is durable
// and the ledger audits clean.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	app, tickets := seedServeDB(t, db, daodian.IssueRequest{Quantity: 3})
	tk := tickets[0]

	p := startServe(t, "--db", db)
	base := strings.TrimSuffix(p.url, "/router/rest")
	u, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}

	// A signed use whose body is only half sent: the server is inside the
	// handler, waiting for the rest.
	params, err := client.New(p.url, app.Key, app.Secret).Params(alsc.MethodUse, map[string]string{
		"use_request": `{"ticket_code":"` + tk.Code + `","shop_id":"s1","ticket_request_id":"in-flight"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	body := form.Encode()
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	half := len(body) / 2
	fmt.Fprintf(conn, "POST /router/rest HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", u.Host, len(body), body[:half])
	deadline := time.Now().Add(20 * time.Second)
	for inFlight(t, base) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the request never got in flight")
		}
		time.Sleep(2 * time.Millisecond)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// It stops accepting: new connections are refused while the request is
	// still unanswered.
	deadline = time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections 20s after SIGTERM")
		}
		time.Sleep(2 * time.Millisecond)
	}
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("the server exited (%v) before answering the in-flight request", err)
	default:
	}

	// The rest of the body arrives: a proper answer.
	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the in-flight request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"ticket_trans_id"`) || !strings.Contains(string(b), `"biz_code":"SUCCESS"`) {
		t.Fatalf("the in-flight use was answered %d %s", resp.StatusCode, b)
	}

	select {
	case err := <-p.done:
		p.done <- err // for startServe's cleanup
		if err != nil {
			t.Fatalf("daodian serve exited uncleanly after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daodian serve did not exit after answering its last request")
	}

	// The answered use is durable, and the ledger is whole.
	out, err := exec.Command(daodianBinary(t), "audit", "--db", db, "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"uses": 1`) {
		t.Fatalf("audit after the stop does not count the use answered during it:\n%s", out)
	}
}

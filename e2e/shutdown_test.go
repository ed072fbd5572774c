package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/internal/testio"
)

// inFlight reads daodian_requests_in_flight from the server's /metrics.
func inFlight(t *testing.T, base string) float64 {
	t.Helper()
	return gauge(t, base, "daodian_requests_in_flight")
}

// gauge reads the unlabelled metric name from the server's /metrics; a missing
// series fails the test.
func gauge(t *testing.T, base, name string) float64 {
	t.Helper()
	v, ok := testio.MetricValue(t, base, name)
	if !ok {
		t.Fatalf("no %s in /metrics", name)
	}
	return v
}

// TestSIGTERMFinishesInFlight runs a real `daodian serve`, holds a use request
// in flight (its body half sent), and sends SIGTERM: the process stops accepting
// connections, answers the request properly, and exits 0; the use is durable
// and the ledger audits clean.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	db := testenv.NewDB(t, testenv.Embedded)
	seeded := testenv.SeedDB(t, db, daodian.IssueRequest{Quantity: 3})
	app, tk := seeded.App, seeded.Tickets[0]

	p := testenv.StartServe(t, db.Args()...)
	base := p.Base
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}

	// A signed use whose body is only half sent: the server is inside the
	// handler, waiting for the rest.
	body := testenv.SignedForm(t, p.URL, app, alsc.MethodUse, map[string]string{
		alsc.ParamUseRequest: `{"ticket_code":"` + tk.Code + `","shop_id":"` + testenv.Shop + `","ticket_request_id":"in-flight"}`,
	})
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

	if err := p.Signal(syscall.SIGTERM); err != nil {
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
	if exited, err := p.Wait(0); exited {
		t.Fatalf("the server exited (%v) before answering the in-flight request", err)
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

	switch exited, err := p.Wait(30 * time.Second); {
	case !exited:
		t.Fatal("daodian serve did not exit after answering its last request")
	case err != nil:
		t.Fatalf("daodian serve exited uncleanly after SIGTERM: %v", err)
	}

	// The answered use is durable, and the ledger is whole.
	out, err := db.Command(t, "audit", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"uses": 1`) {
		t.Fatalf("audit after the stop does not count the use answered during it:\n%s", out)
	}
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testenv"
)

// TestSlowSendersDoNotShutOutReversals (SPEC §3.6) runs a real `daodian serve
// --max-concurrent 4` and opens three times as many connections that send
// their headers and ten bytes of a declared body, and never the rest. While
// they wait, uses and their reversals are answered normally and promptly,
// never isp.server-busy, and none of the slow connections holds a slot.
func TestSlowSendersDoNotShutOutReversals(t *testing.T) {
	const maxConcurrent, calls = 4, 5
	db := testenv.NewDB(t, testenv.Embedded)
	seeded := testenv.SeedDB(t, db, daodian.IssueRequest{Count: calls, Quantity: 1})
	app, tickets := seeded.App, seeded.Tickets
	ctx := context.Background()

	p := testenv.StartServe(t, append(db.Args(), "--max-concurrent", strconv.Itoa(maxConcurrent), "--read-body-timeout", "1m")...)
	base := p.Base
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	var slow []net.Conn
	for range 3 * maxConcurrent {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		slow = append(slow, conn)
		fmt.Fprintf(conn, "POST /router/rest HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n%s",
			u.Host, strings.Repeat("a", 10))
	}
	deadline := time.Now().Add(20 * time.Second)
	for inFlight(t, base) != 3*maxConcurrent {
		if time.Now().After(deadline) {
			t.Fatalf("the slow senders never got into the handler: %v in flight", inFlight(t, base))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v := gauge(t, base, gateway.MetricAdmitted); v != 0 {
		t.Fatalf("%s = %v with only slow senders connected", gateway.MetricAdmitted, v)
	}

	c := client.New(p.URL, app.Key, app.Secret)
	for i, tk := range tickets {
		start := time.Now()
		used, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: testenv.Shop, TicketRequestID: "u" + strconv.Itoa(i)})
		if err != nil {
			t.Fatalf("use %d beside slow senders: %v", i, err)
		}
		rev, err := c.Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: "r" + strconv.Itoa(i), TicketID: tk.ID, TicketUseTransID: used.TicketTransID})
		if err != nil {
			var ce *client.Error
			if errors.As(err, &ce) && ce.SubCode == gateway.SubCodeServerBusy {
				t.Fatalf("reversal %d shed by slow senders: %v", i, err)
			}
			t.Fatalf("reversal %d: %v", i, err)
		}
		if !rev.Result.Success {
			t.Fatalf("reversal %d: %+v", i, rev.Result)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("use and reversal %d took %v beside slow senders", i, d)
		}
	}
	if v := inFlight(t, base); v != 3*maxConcurrent {
		t.Fatalf("%v requests in flight after the calls; the slow senders should still be there", v)
	}
	// A graceful stop waits for requests in the handler: let the slow ones end.
	for _, conn := range slow {
		conn.Close()
	}
	p.Stop(t)
}

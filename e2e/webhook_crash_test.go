package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/testenv"
)

// crashHook extends the crash test of SPEC §7 to events (§9): a webhook added
// before the first server starts must receive every event committed, however
// often the server is killed with SIGKILL right after commits; the receiver
// dedupes on event_id and the test counts none missing.
type crashHook struct {
	r     *hookReceiver
	hook  addedHook
	token string
}

func newCrashHook(t *testing.T, db testenv.DB) *crashHook {
	r := newHookReceiver(t)
	h := &crashHook{r: r, hook: addHook(t, db, r)}
	_, h.token = adminToken(t, db, "--name", "crash test")
	return h
}

// pullEvents pulls, with an admin token, every event of the seed's merchant
// after after from the server at base (GET /admin/v1/events).
func pullEvents(t *testing.T, base, token, after string) []admin.Event {
	t.Helper()
	var all []admin.Event
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/admin/v1/events?limit=1000&merchant="+testenv.Merchant+"&after="+after, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p admin.EventPage
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /admin/v1/events: %d %v", resp.StatusCode, err)
		}
		if len(p.Events) == 0 {
			return all
		}
		all = append(all, p.Events...)
		after = p.NextAfter
	}
}

// verify waits for the receiver to have every event committed, from the
// server p, and checks it got them in order: each event first arrived after
// every event before it (a resend after a restart repeats events, it never
// brings a new one out of order).
func (h *crashHook) verify(t *testing.T, base string) {
	t.Helper()
	want := pullEvents(t, base, h.token, h.hook.Cursor)
	deadline := time.Now().Add(60 * time.Second)
	for {
		h.r.mu.Lock()
		missing := 0
		for _, e := range want {
			if h.r.seen[e.EventID] == 0 {
				missing++
			}
		}
		first, total := append([]string(nil), h.r.first...), len(h.r.all)
		h.r.mu.Unlock()
		if missing == 0 {
			for i := 1; i < len(first); i++ {
				if !daodian.IDAfter(first[i], first[i-1]) {
					t.Errorf("event %s first arrived after %s", first[i], first[i-1])
				}
			}
			t.Logf("webhook: %d events committed, all received (%d deliveries: %d sent again after a kill)", len(want), total, total-len(first))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook: %d of %d events committed never arrived", missing, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWebhookLeaseTakeover (SPEC §9): two gateways serve one PostgreSQL
// database with one webhook. One of them holds its lease and delivers; the
// other does not deliver at the same time (the receiver sees no two
// deliveries at once). The holder is killed with SIGKILL under load; the
// other takes the lease over, and the receiver gets every event committed,
// each first arriving in event_id order.
func TestWebhookLeaseTakeover(t *testing.T) {
	db := testenv.NewDB(t, testenv.Postgres)
	seed := testenv.SeedDB(t, db, daodian.IssueRequest{Count: 40, Quantity: 50})
	h := newCrashHook(t, db)
	h.r.delay = 2 * time.Millisecond // deliveries that last: overlaps would show
	p1 := testenv.StartServe(t, db.Args()...)
	p2 := testenv.StartServe(t, db.Args()...)

	var n atomic.Int64
	load := func(ctx context.Context, p *testenv.Process, tag string) {
		c := client.New(p.URL, seed.App.Key, seed.App.Secret, client.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
		for i := 0; ctx.Err() == nil; i++ {
			tk := seed.Tickets[i%len(seed.Tickets)]
			if _, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: testenv.Shop, TicketRequestID: fmt.Sprintf("%s-%d", tag, i)}); err == nil {
				n.Add(1)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, p := range []*testenv.Process{p1, p2} {
		wg.Add(1)
		go func() { defer wg.Done(); load(ctx, p, fmt.Sprintf("g%d", i)) }()
	}
	waitFor(t, 30*time.Second, "deliveries under load", func() bool { return h.r.unique() > 100 })
	holder := leaseHolder(t, db)
	var killed, survivor *testenv.Process
	switch holder {
	case p1.Cmd.Process.Pid:
		killed, survivor = p1, p2
	case p2.Cmd.Process.Pid:
		killed, survivor = p2, p1
	default:
		t.Fatalf("the lease is held by pid %d, neither gateway (%d, %d)", holder, p1.Cmd.Process.Pid, p2.Cmd.Process.Pid)
	}
	h.r.mu.Lock()
	overlaps := h.r.overlaps
	h.r.counting = false // the killed holder's last answer may end after the take-over begins
	before := len(h.r.first)
	h.r.mu.Unlock()
	if overlaps != 0 {
		t.Errorf("%d deliveries overlapped while both gateways ran: two deliverers of one webhook", overlaps)
	}
	killed.Kill(t)
	cancel()
	wg.Wait()
	ctx, cancel = context.WithCancel(context.Background())
	wg.Add(1)
	go func() { defer wg.Done(); load(ctx, survivor, "after") }()
	waitFor(t, 30*time.Second, "deliveries by the survivor", func() bool { return h.r.unique() > before+100 })
	if got := leaseHolder(t, db); got != survivor.Cmd.Process.Pid {
		t.Errorf("after the kill the lease is held by pid %d, want the survivor %d", got, survivor.Cmd.Process.Pid)
	}
	cancel()
	wg.Wait()
	h.verify(t, survivor.Base)
	t.Logf("%d uses committed; %d events first received before the kill", n.Load(), before)
}

// leaseHolder returns the process id of the gateway holding the database's
// webhook lease: its lease session names it.
func leaseHolder(t *testing.T, db testenv.DB) int {
	t.Helper()
	pids := leaseHolders(t, db.URL)
	if len(pids) != 1 {
		t.Fatalf("gateways holding a webhook lease: %v, want one", pids)
	}
	return pids[0]
}

// leaseHolders returns the process ids of the gateways holding a webhook lease
// on the server of url (a standby too: advisory locks work there).
func leaseHolders(t *testing.T, url string) []int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var names []string
	rows, err := c.Query(ctx, `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'daodian webhook leases%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		names = append(names, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	pids := make([]int, len(names))
	for i, name := range names {
		pid, err := strconv.Atoi(name[strings.LastIndexByte(name, ' ')+1:])
		if err != nil || pid == os.Getpid() {
			t.Fatalf("lease session %q names no gateway", name)
		}
		pids[i] = pid
	}
	return pids
}

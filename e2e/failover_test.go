package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/pgtest"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/webhook"
)

// Bounds of TestFailover, measured from the promotion of the standby (the
// operator's or the HA manager's part of a failover): the gateway must be ready
// and answer definitively again within failoverBound.
const failoverBound = 10 * time.Second

// failoverWorkers is the number of POS terminals of TestFailover.
const failoverWorkers = 16

// TestFailover is SPEC §5.3 "High availability" on real processes: a primary with
// a synchronous standby, both clusters of the test's own; one `daodian serve` on
// the multi-host URL with target_session_attrs=read-write; POS terminals doing
// use → reversal cycles on tickets of their own, each retrying a request id until
// it has a definitive answer. The primary is stopped at once (no shutdown
// checkpoint, sessions cut) in the middle of the load, the standby promoted a
// second later, and the load goes on. Then:
//   - no answer was a wrong definitive one: a terminal owns its ticket, so its use
//     can only succeed and its reversal only succeed; and every answer to a
//     request sent while no primary existed was transient (code 15 or
//     SYSTEM_ERROR retry=true);
//   - /readyz is false while no writable primary is reachable, also for a gateway
//     whose URL lets it reach the standby, and true again after the promotion;
//   - the gateway answers definitively again, without a restart, within
//     failoverBound of the promotion;
//   - every acknowledged use and reversal is in the new primary's tables, read
//     from the database by a fresh connection (never by replaying through the
//     gateway, whose answer cache would hide a loss), and nothing else is: each
//     ticket's uses are exactly those acknowledged, its units what they imply;
//   - client.ReverseWithRetry started during the outage completes after the promotion,
//     with exactly one effect;
//   - `daodian audit` (a fresh process) finds nothing;
//   - serve said at start that commits wait for a synchronous standby, and its
//     gauge turns to 0 once it runs on the promoted standby, which has none;
//   - events (SPEC §9; verifyEvents): a webhook added with `daodian webhook add`
//     before anything was written receives exactly the new primary's records,
//     each first in event_id order, every delivery the event of that record byte
//     for byte; every acknowledged operation has its event; the pull pages
//     through the same events once;
//   - the webhook lease and the numbering of records survive the switch: no
//     gateway holds a lease on the standby while it is one (advisory locks are
//     not replicated: a lease there would not exclude one on the primary), the
//     gateway takes its lease again on the new primary within failoverBound of
//     the promotion, and its numbering pass, which failed while no primary
//     existed, numbers the new primary's records without the test's help.
func TestFailover(t *testing.T) {
	began := time.Now()
	primary := pgtest.NewCluster(t, "synchronous_standby_names=*")
	standby := primary.NewStandby(t)
	primary.Exec(t, "CREATE DATABASE daodian")
	hosts := primary.Host() + "," + standby.Host()
	// Every daodian command and store of the test names this database.
	db := testenv.DB{
		URL:     "postgres://postgres@" + hosts + "/daodian?sslmode=disable&connect_timeout=5&target_session_attrs=read-write",
		KeyFile: filepath.Join(t.TempDir(), "secret.key"),
	}
	ctx := context.Background()
	t.Logf("clusters ready in %v", time.Since(began).Round(time.Millisecond))

	app := createApp(t, db)
	// The webhook comes before any record: every record of the test is an
	// event the receiver must get.
	hook := newHookReceiver(t)
	addHook(t, db, hook)
	_, token := adminToken(t, db, "--name", "failover")
	tickets, sdkTicket := issueTickets(t, db, failoverWorkers)

	gw := testenv.StartServe(t, db.Args()...)
	// The gateway holds the lease before the other starts: after the failover
	// it must take it again itself.
	waitFor(t, 10*time.Second, "the gateway to take the webhook lease", func() bool {
		return slices.Equal(leaseHolders(t, db.URL), []int{gw.Cmd.Process.Pid})
	})
	// A gateway whose URL does not insist on a primary: it reaches the standby
	// when the primary is gone, and must not call itself ready there.
	loose := testenv.StartServe(t, testenv.DB{URL: "postgres://postgres@" + hosts + "/daodian?sslmode=disable&connect_timeout=5", KeyFile: db.KeyFile}.Args()...)
	if out := gw.Stderr(); !strings.Contains(out, `commits wait for a synchronous standby (synchronous_standby_names="*")`) {
		t.Fatalf("serve does not report the synchronous standby at start:\n%s", out)
	}
	if v := gauge(t, gw.Base, "daodian_store_synchronous_replication"); v != 1 {
		t.Fatalf("daodian_store_synchronous_replication = %v before the failover, want 1", v)
	}
	c := client.New(gw.URL, app.Key, app.Secret, client.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	for _, rid := range []string{"sdk-u1", "sdk-u2"} {
		if _, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: sdkTicket.Code, ShopID: "s1", TicketRequestID: rid}); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing in the test may wait for ever: a gateway that never answers
	// definitively again fails it.
	loadCtx, cancelLoad := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelLoad()
	l := &failoverLoad{t: t, c: c, tickets: tickets}
	l.start(loadCtx)
	// On a failure that ends the test early, the terminals stop at once and
	// quietly: they must not outlive it.
	defer func() {
		l.aborted.Store(true)
		cancelLoad()
		l.wg.Wait()
	}()
	time.Sleep(2 * time.Second)
	if l.acked.Load() == 0 {
		t.Fatal("no operation acknowledged in 2s before the failover")
	}
	if hook.unique() == 0 {
		t.Fatal("no event delivered in 2s before the failover")
	}

	stopAt := time.Now()
	primary.StopImmediately(t)
	stopped := time.Now()
	l.mark(stopped, time.Time{})
	ackedBefore := l.acked.Load()

	// client.ReverseWithRetry, started while no primary exists, rides through.
	sdkRetries := atomic.Int32{}
	type sdkAnswer struct {
		r   *alsc.ReserveResponse
		err error
	}
	sdk := make(chan sdkAnswer, 1)
	go func() {
		r, err := c.ReverseWithRetry(loadCtx, alsc.TicketReverseTopRequest{RequestID: "sdk-r", TicketID: sdkTicket.ID},
			client.RetryPolicy{OnRetry: func(int, error) { sdkRetries.Add(1) }})
		sdk <- sdkAnswer{r, err}
	}()

	for range 3 {
		for name, p := range map[string]*testenv.Process{"the gateway": gw, "a gateway that may reach the standby": loose} {
			if code := readyz(t, p); code != http.StatusServiceUnavailable {
				t.Errorf("%s answers /readyz %d while no primary exists, want 503", name, code)
			}
		}
	}
	// The other gateway reaches the standby, where advisory locks work but are
	// not replicated: a lease taken there would not exclude the same lease on
	// a primary. Once it has found its lease session gone, and polled again, it
	// must hold none there.
	waitFor(t, failoverBound, "the gateway that may reach the standby to lose its lease session", func() bool {
		return strings.Contains(loose.Stdout(), "the leases were lost")
	})
	time.Sleep(3 * webhook.DefaultPoll)
	if pids := leaseHolders(t, standby.URL("daodian")); len(pids) != 0 {
		t.Errorf("gateways %v hold a webhook lease on the standby", pids)
	}
	// Its part is done; after the promotion its lease session would compete
	// with the gateway's for the lease.
	loose.Kill(t)
	deliveredInOutage := hook.unique()
	time.Sleep(time.Until(stopped.Add(time.Second)))

	promoteAt := time.Now()
	l.mark(stopped, promoteAt)
	standby.Promote(t)
	promoted := time.Now()
	readyAt := waitReady(t, gw, promoteAt.Add(failoverBound))
	first := l.firstSuccessAfter(loadCtx, promoteAt, promoteAt.Add(failoverBound))
	waitFor(t, failoverBound, "the gateway to take the webhook lease on the new primary", func() bool {
		return slices.Equal(leaseHolders(t, db.URL), []int{gw.Cmd.Process.Pid})
	})
	leasedAt := time.Now()

	// Keep the load going on the new primary, until serve has seen that it has no
	// synchronous standby (it reads the settings every 10s).
	minEnd := time.Now().Add(2 * time.Second)
	for gauge(t, gw.Base, "daodian_store_synchronous_replication") != 0 {
		if time.Since(promoted) > 15*time.Second {
			t.Error("daodian_store_synchronous_replication still 1 15s after the failover to a primary without a synchronous standby")
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Until(minEnd))
	l.stop()
	a := <-sdk
	if a.err != nil || !a.r.Result.Success {
		t.Errorf("client.ReverseWithRetry started during the outage: %+v, %v; want success", a.r, a.err)
	}
	if sdkRetries.Load() == 0 {
		t.Error("client.ReverseWithRetry started during the outage was answered at its first attempt: the outage was not exercised")
	}

	t.Logf("primary stopped in %v; promotion took %v; ready %v after the promotion; first success %v after the stop, %v after the promotion",
		stopped.Sub(stopAt).Round(time.Millisecond), promoted.Sub(promoteAt).Round(time.Millisecond),
		readyAt.Sub(promoteAt).Round(time.Millisecond), first.Sub(stopped).Round(time.Millisecond), first.Sub(promoteAt).Round(time.Millisecond))
	t.Logf("%d operations acknowledged (%d before the stop); %d transient answers, %d of them while no primary existed; client.ReverseWithRetry retried %d times",
		l.acked.Load(), ackedBefore, l.transient.Load(), l.outageTransient.Load(), sdkRetries.Load())
	t.Logf("webhook lease taken on the new primary %v after the promotion; %d events first delivered by the promotion",
		leasedAt.Sub(promoteAt).Round(time.Millisecond), deliveredInOutage)
	if l.outageTransient.Load() == 0 {
		t.Error("no request was answered while no primary existed: the outage was not exercised")
	}
	if t.Failed() {
		return
	}

	// Judged from the database, by a fresh connection to the new primary.
	newPrimary := testenv.DB{URL: standby.URL("daodian"), KeyFile: db.KeyFile}
	checked := l.verify(newPrimary, app.Key, sdkTicket)
	l.verifyEvents(gw, newPrimary, hook, token, sdkTicket)
	out, err := db.Command(t, "audit").CombinedOutput()
	if err != nil {
		t.Fatalf("daodian audit after the failover: %v\n%s", err, out)
	}
	gw.Stop(t)
	t.Logf("%d acknowledged operations checked in the new primary's tables; test ran %v", checked, time.Since(began).Round(time.Millisecond))
}

// createApp creates the POS app with the command line, as an operator would.
func createApp(t *testing.T, db testenv.DB) *daodian.App {
	t.Helper()
	out, err := db.Command(t, "app", "create", "--name", "pos", "--merchant", "m1", "--json").Output()
	if err != nil {
		t.Fatalf("daodian app create: %v", err)
	}
	var a struct {
		Key    string `json:"app_key"`
		Secret string `json:"app_secret"`
	}
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("daodian app create --json: %v\n%s", err, out)
	}
	return &daodian.App{Key: a.Key, Secret: a.Secret}
}

// issueTickets registers shop s1 of merchant m1 and issues n single-ticket orders
// of one unit, one per terminal (a use of a ticket of a group-buy order may take
// a unit of another ticket of its order), and one ticket of two units for
// client.ReverseWithRetry.
func issueTickets(t *testing.T, db testenv.DB, n int) ([]daodian.Ticket, daodian.Ticket) {
	t.Helper()
	ctx := context.Background()
	s := db.Open(t)
	defer s.Close()
	l := daodian.NewLedger(s, daodian.Config{})
	if err := l.AddShop(ctx, daodian.Shop{MerchantID: "m1", ID: "s1", Name: "店"}); err != nil {
		t.Fatal(err)
	}
	issue := func(q int) daodian.Ticket {
		o, err := l.Issue(ctx, daodian.IssueRequest{MerchantID: "m1", Quantity: q})
		if err != nil {
			t.Fatal(err)
		}
		return o.Tickets[0]
	}
	tickets := make([]daodian.Ticket, n)
	for i := range tickets {
		tickets[i] = issue(1)
	}
	return tickets, issue(2)
}

// failoverLoad is the terminals of TestFailover and what they were answered.
type failoverLoad struct {
	t       *testing.T
	c       *client.Client
	tickets []daodian.Ticket

	stopping atomic.Bool // finish the current operation, then stop
	aborted  atomic.Bool // the test is ending: stop now, report nothing
	wg       sync.WaitGroup

	// outage is the window in which no primary exists: [from, to), to zero
	// while open.
	outageMu        sync.Mutex
	outageFrom      time.Time
	outageTo        time.Time
	firstMu         sync.Mutex
	successes       []time.Time // when each success after the stop was answered
	acked           atomic.Int64
	transient       atomic.Int64
	outageTransient atomic.Int64

	// acks[i] are the acknowledged operations of terminal i, in order.
	acks [][]ackedOp
}

// ackedOp is an operation answered success.
type ackedOp struct {
	rid     string
	use     bool
	transID string // of the use, or of the use the reversal names
}

func (l *failoverLoad) mark(from, to time.Time) {
	l.outageMu.Lock()
	defer l.outageMu.Unlock()
	l.outageFrom, l.outageTo = from, to
}

// inOutage reports whether an attempt sent at sent and answered at answered ran
// wholly while no primary existed.
func (l *failoverLoad) inOutage(sent, answered time.Time) bool {
	l.outageMu.Lock()
	defer l.outageMu.Unlock()
	return !l.outageFrom.IsZero() && sent.After(l.outageFrom) && (l.outageTo.IsZero() || answered.Before(l.outageTo))
}

func (l *failoverLoad) start(ctx context.Context) {
	l.acks = make([][]ackedOp, len(l.tickets))
	for i := range l.tickets {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.terminal(ctx, i)
		}()
	}
}

// stop lets every terminal finish its current operation, then waits for them.
func (l *failoverLoad) stop() {
	l.stopping.Store(true)
	l.wg.Wait()
}

// terminal runs use → reversal cycles on ticket i until stopped.
func (l *failoverLoad) terminal(ctx context.Context, i int) {
	tk := l.tickets[i]
	for k := 0; !l.stopping.Load(); k++ {
		rid := fmt.Sprintf("w%d-u%d", i, k)
		var transID string
		ok := l.untilDefinitive(ctx, rid, func() (bool, error) {
			r, err := l.c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: "s1", TicketRequestID: rid})
			if err != nil {
				return false, err
			}
			if len(r.TicketUseDetails) != 1 || r.TicketUseDetails[0].TicketID != tk.ID || r.TicketTransID == "" {
				return false, fmt.Errorf("use %s: answer %+v does not name one use of ticket %s", rid, r, tk.ID)
			}
			transID = r.TicketTransID
			return true, nil
		})
		if !ok {
			return
		}
		l.acks[i] = append(l.acks[i], ackedOp{rid: rid, use: true, transID: transID})

		rid = fmt.Sprintf("w%d-r%d", i, k)
		ok = l.untilDefinitive(ctx, rid, func() (bool, error) {
			r, err := l.c.Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: rid, TicketID: tk.ID, TicketUseTransID: transID})
			switch {
			case err != nil:
				return false, err
			case r.Result.Success:
				return true, nil
			case r.Result.Retry:
				return false, nil
			}
			return false, fmt.Errorf("reversal %s of an acknowledged use: definitive refusal %+v", rid, r.Result)
		})
		if !ok {
			return
		}
		l.acks[i] = append(l.acks[i], ackedOp{rid: rid, transID: transID})
	}
}

// untilDefinitive sends one operation under one request id until it succeeds.
// send returns (true, nil) for success, (false, nil) or a transient error for an
// answer that asks for a retry, and any other error for a wrong definitive
// answer, which fails the test. It reports whether the operation succeeded.
func (l *failoverLoad) untilDefinitive(ctx context.Context, rid string, send func() (bool, error)) bool {
	for {
		sent := time.Now()
		ok, err := send()
		answered := time.Now()
		if ok {
			if l.inOutage(sent, answered) {
				l.t.Errorf("%s: sent and answered success while no primary existed", rid)
			}
			l.acked.Add(1)
			l.firstMu.Lock()
			l.successes = append(l.successes, answered)
			l.firstMu.Unlock()
			return true
		}
		if err != nil && !client.RetryableError(err) {
			l.t.Errorf("%s: %v", rid, err)
			return false
		}
		l.transient.Add(1)
		if l.inOutage(sent, answered) {
			l.outageTransient.Add(1)
		}
		if ctx.Err() != nil {
			if !l.aborted.Load() {
				l.t.Errorf("%s: no definitive answer before the test's deadline (last: %v)", rid, err)
			}
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// firstSuccessAfter waits for the first success answered after from, and fails
// the test unless it comes before deadline.
func (l *failoverLoad) firstSuccessAfter(ctx context.Context, from, deadline time.Time) time.Time {
	for {
		l.firstMu.Lock()
		var first time.Time
		for _, at := range l.successes {
			if at.After(from) && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
		l.firstMu.Unlock()
		if !first.IsZero() {
			return first
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			l.t.Fatalf("no success within %v of the promotion", failoverBound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// verify checks the acknowledged operations against the tables of db and
// returns how many it checked.
func (l *failoverLoad) verify(db testenv.DB, appKey string, sdkTicket daodian.Ticket) int {
	t := l.t
	ctx := context.Background()
	s := db.Open(t)
	defer s.Close()
	uses := map[string][]daodian.Use{} // by ticket
	avail := map[string]int{}
	idem := map[daodian.IdemKey]bool{}
	err := s.View(ctx, func(tx daodian.ReadTx) error {
		if err := tx.EachUse(ctx, func(u *daodian.Use) error { uses[u.TicketID] = append(uses[u.TicketID], *u); return nil }); err != nil {
			return err
		}
		if err := tx.EachIdem(ctx, func(r *daodian.IdemRecord) error { idem[r.IdemKey] = true; return nil }); err != nil {
			return err
		}
		return tx.EachTicket(ctx, func(tk *daodian.Ticket) error { avail[tk.ID] = tk.Available; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for i, tk := range l.tickets {
		byTrans := map[string]daodian.Use{}
		for _, u := range uses[tk.ID] {
			byTrans[u.TransID] = u
		}
		nUses := 0
		for _, op := range l.acks[i] {
			checked++
			u, ok := byTrans[op.transID]
			op2 := daodian.OpReverse
			if op.use {
				op2 = daodian.OpUse
				nUses++
			}
			switch {
			case !ok:
				t.Errorf("acknowledged %s: use %s of ticket %s is not in the new primary", op.rid, op.transID, tk.ID)
			case op.use && (u.RequestID != op.rid || u.AppKey != appKey):
				t.Errorf("acknowledged use %s: the row %+v does not match", op.rid, u)
			case !op.use && (!u.Reversed || u.ReversalRequestID != op.rid):
				t.Errorf("acknowledged reversal %s: use %s is %+v", op.rid, op.transID, u)
			}
			if !idem[daodian.IdemKey{AppKey: appKey, Op: op2, RequestID: op.rid}] {
				t.Errorf("acknowledged %s: its answer is not recorded in the new primary", op.rid)
			}
		}
		if len(uses[tk.ID]) != nUses {
			t.Errorf("ticket %s: %d uses in the new primary, %d acknowledged", tk.ID, len(uses[tk.ID]), nUses)
		}
		want := 1
		if n := len(l.acks[i]); n > 0 && l.acks[i][n-1].use {
			want = 0
		}
		if avail[tk.ID] != want {
			t.Errorf("ticket %s: available %d, the acknowledged operations imply %d", tk.ID, avail[tk.ID], want)
		}
	}
	// client.ReverseWithRetry: one of the two uses reversed, by its request id, once.
	reversed := 0
	for _, u := range uses[sdkTicket.ID] {
		if u.Reversed {
			reversed++
			if u.ReversalRequestID != "sdk-r" {
				t.Errorf("use %s of the client.ReverseWithRetry ticket reversed by %q", u.TransID, u.ReversalRequestID)
			}
		}
	}
	if len(uses[sdkTicket.ID]) != 2 || reversed != 1 || avail[sdkTicket.ID] != 1 {
		t.Errorf("client.ReverseWithRetry ticket: %d uses, %d reversed, available %d; want 2, 1, 1",
			len(uses[sdkTicket.ID]), reversed, avail[sdkTicket.ID])
	}
	return checked + 3 // client.ReverseWithRetry's two uses and its reversal
}

// verifyEvents checks the events of the failover (SPEC §9) against the records
// of db, the new primary, read by a fresh connection. What may legitimately
// differ between the old primary and the new one is the transactions that
// committed on the old one and never reached the standby: with synchronous
// replication their commits were visible to no other session (a commit waits
// for the standby before it shows) and answered no client, so no event of
// theirs can have been delivered, and their terminals, retrying the same
// request ids, made them again on the new primary, where they got new ids.
// Hence, exactly:
//   - serve numbers every record committed on the new primary: its queue
//     empties without the test's help, once the load stops; its numbering
//     pass failed while no primary existed and said when it worked again;
//   - every record of the new primary (after a numbering pass of the test's
//     own) reaches the receiver, within a bounded wait;
//   - every delivery, resends included, is byte for byte the event of the new
//     primary's record of its event_id: nothing delivered before the switch
//     is missing from the new primary or has changed id there;
//   - events first arrive in event_id order, and no two deliveries overlap
//     (one deliverer at a time, also across the switch);
//   - each acknowledged use and reversal has its one event, and no use or
//     reversal event lacks an acknowledged operation;
//   - GET /admin/v1/events pages through the same events, once each, in order;
//   - the webhook's stored cursor reaches the last event and its lag gauge 0.
func (l *failoverLoad) verifyEvents(gw *testenv.Process, db testenv.DB, hook *hookReceiver, token string, sdkTicket daodian.Ticket) {
	t := l.t
	ctx := context.Background()
	s := db.Open(t)
	defer s.Close()
	records := func() []daodian.Record {
		var recs []daodian.Record
		err := s.View(ctx, func(tx daodian.ReadTx) error {
			return tx.EachRecord(ctx, func(r *daodian.Record) error { recs = append(recs, *r); return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	waitFor(t, 10*time.Second, "serve to number the records committed on the new primary", func() bool {
		return !slices.ContainsFunc(records(), func(r daodian.Record) bool { return r.ID == "" })
	})
	for _, line := range []string{"numbering records failed", "numbering records again", "webhooks: the leases were lost"} {
		if !strings.Contains(gw.Stdout(), line) {
			t.Errorf("serve did not log %q", line)
		}
	}
	if _, err := s.(daodian.RecordSequencer).SequenceRecords(ctx); err != nil {
		t.Fatal(err)
	}
	recs := records()
	byID := make(map[string]*daodian.Record, len(recs))
	for i := range recs {
		if recs[i].ID == "" {
			t.Fatalf("a record is still unnumbered after a numbering pass: %+v", recs[i])
		}
		byID[recs[i].ID] = &recs[i]
	}

	var missing []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		missing = missing[:0]
		hook.mu.Lock()
		for _, r := range recs {
			if hook.seen[r.ID] == 0 {
				missing = append(missing, r.ID)
			}
		}
		hook.mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of the new primary's %d events never reached the receiver (within 60s of the end of the load), the first %v",
			len(missing), len(recs), missing[:min(len(missing), 5)])
	}
	hook.mu.Lock()
	all, first, overlaps := slices.Clone(hook.all), slices.Clone(hook.first), hook.overlaps
	hook.mu.Unlock()
	var wrong []string
	for _, d := range all {
		id := d.header.Get("X-Daodian-Event-Id")
		r := byID[id]
		if r == nil {
			wrong = append(wrong, fmt.Sprintf("event %s delivered, not in the new primary", id))
			continue
		}
		want, err := admin.EventJSON(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.body, want) {
			wrong = append(wrong, fmt.Sprintf("event %s delivered as %s, the new primary's is %s", id, d.body, want))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d deliveries are not the new primary's events, the first: %q", len(wrong), wrong[:min(len(wrong), 3)])
	}
	for i := 1; i < len(first); i++ {
		if !daodian.IDAfter(first[i], first[i-1]) {
			t.Errorf("event %s first arrived after event %s", first[i], first[i-1])
		}
	}
	if overlaps != 0 {
		t.Errorf("%d deliveries overlapped: two deliverers of one webhook at once", overlaps)
	}

	// Acknowledged operations and use and reversal events, one to one.
	type opKey struct {
		kind daodian.RecordKind
		rid  string
	}
	events := map[opKey][]*daodian.Record{}
	for i := range recs {
		if r := &recs[i]; r.Kind == daodian.RecordUse || r.Kind == daodian.RecordReversal {
			events[opKey{r.Kind, r.RequestID}] = append(events[opKey{r.Kind, r.RequestID}], r)
		}
	}
	acked := 0
	expect := func(ticketID string, use bool, rid, transID string) {
		acked++
		k := opKey{daodian.RecordReversal, rid}
		if use {
			k.kind = daodian.RecordUse
		}
		rs := events[k]
		if len(rs) != 1 || rs[0].TicketID != ticketID || (transID != "" && rs[0].TransID != transID) {
			t.Errorf("acknowledged %s %s of ticket %s (use %s): events %+v, want one", k.kind, rid, ticketID, transID, rs)
		}
	}
	for i, tk := range l.tickets {
		for _, op := range l.acks[i] {
			expect(tk.ID, op.use, op.rid, op.transID)
		}
	}
	expect(sdkTicket.ID, true, "sdk-u1", "")
	expect(sdkTicket.ID, true, "sdk-u2", "")
	expect(sdkTicket.ID, false, "sdk-r", "")
	if n := len(events); n != acked {
		t.Errorf("%d use and reversal events in the new primary, %d operations acknowledged", n, acked)
	}

	pulled := pullEvents(t, gw.Base, token, "")
	if len(pulled) != len(recs) {
		t.Errorf("GET /admin/v1/events paged through %d events, the new primary has %d", len(pulled), len(recs))
	}
	for i := range min(len(pulled), len(recs)) {
		if want := admin.EventOf(&recs[i]); !reflect.DeepEqual(pulled[i], want) {
			t.Errorf("GET /admin/v1/events: event %d of the pull is %+v, want %+v", i, pulled[i], want)
			break
		}
	}

	last := recs[len(recs)-1].ID
	waitFor(t, 5*time.Second, "the webhook's stored cursor to reach the last event", func() bool {
		var hooks []daodian.Webhook
		err := s.View(ctx, func(tx daodian.ReadTx) error { var err error; hooks, err = tx.Webhooks(ctx); return err })
		if err != nil {
			t.Fatal(err)
		}
		return len(hooks) == 1 && hooks[0].Cursor == last
	})
	waitFor(t, 5*time.Second, "daodian_webhook_lag_seconds 0", func() bool { return gauge(t, gw.Base, "daodian_webhook_lag_seconds") == 0 })
	t.Logf("%d events in the new primary; %d deliveries, %d of them sent again; %d pulled; %d acknowledged operations",
		len(recs), len(all), len(all)-len(first), len(pulled), acked)
}

// readyz returns the status of GET /readyz of a serve process.
func readyz(t *testing.T, p *testenv.Process) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(p.Base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady polls /readyz until it answers 200 and returns when it did; it fails
// the test at deadline.
func waitReady(t *testing.T, p *testenv.Process, deadline time.Time) time.Time {
	t.Helper()
	for {
		if readyz(t, p) == http.StatusOK {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within %v of the promotion", failoverBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

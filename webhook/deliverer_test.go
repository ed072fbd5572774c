package webhook

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/storetest"
	"github.com/daodian/daodian/webhooksig"
)

// fakeClock is a Clock the test moves by hand: After's channels receive when
// Advance passes their time.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

// Advance moves the clock by d and fires the waiters it passes.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// next returns the earliest waiter's time, if any.
func (c *fakeClock) next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t time.Time
	for _, w := range c.waiters {
		if t.IsZero() || w.at.Before(t) {
			t = w.at
		}
	}
	return t, !t.IsZero()
}

// eventually waits (in real time) for cond, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// receiver is an HTTP endpoint that records what it receives and answers as
// told: status(eventID, n) for the n-th receipt of an event (200 when nil).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret atomic.Pointer[string]
	clock  Clock
	status func(eventID string, n int) int

	mu       sync.Mutex
	got      []received
	counts   map[string]int
	conns    map[string]bool // the client addresses seen: one per connection
	inFlight int
	maxIn    int
	hold     chan struct{} // when set, each request waits for it
}

type received struct {
	id, typ string
	body    []byte
}

func newReceiver(t *testing.T, clock Clock, status func(string, int) int) *receiver {
	return newReceiverWith(t, clock, status, nil)
}

// newReceiverWith is newReceiver with its HTTP server set up by setup first.
func newReceiverWith(t *testing.T, clock Clock, status func(string, int) int, setup func(*http.Server)) *receiver {
	r := &receiver{t: t, clock: clock, status: status, counts: map[string]int{}, conns: map[string]bool{}}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	if setup != nil {
		setup(r.srv.Config)
	}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id, typ := req.Header.Get(webhooksig.HeaderEventID), req.Header.Get(webhooksig.HeaderEventType)
	if s := r.secret.Load(); s != nil {
		if err := webhooksig.Verify(*s, req.Header.Get(webhooksig.HeaderSignature), body, time.Minute, r.clock.Now()); err != nil {
			r.t.Errorf("delivery of %s: %v", id, err)
		}
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("delivery of %s: %s with Content-Type %q", id, req.Method, req.Header.Get("Content-Type"))
	}
	r.mu.Lock()
	r.conns[req.RemoteAddr] = true
	r.inFlight++
	r.maxIn = max(r.maxIn, r.inFlight)
	r.counts[id]++
	n := r.counts[id]
	r.got = append(r.got, received{id, typ, body})
	hold := r.hold
	r.mu.Unlock()
	if hold != nil {
		<-hold
	}
	r.mu.Lock()
	r.inFlight--
	r.mu.Unlock()
	code := http.StatusOK
	if r.status != nil {
		code = r.status(id, n)
	}
	w.WriteHeader(code)
}

// ids returns the event ids received, in order.
func (r *receiver) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.got))
	for i, g := range r.got {
		out[i] = g.id
	}
	return out
}

// harness is a ledger on the embedded store and a deliverer on a fake clock.
type harness struct {
	t     *testing.T
	w     *storetest.World
	clock *fakeClock
	reg   *prometheus.Registry
	d     *Deliverer
}

func newHarness(t *testing.T) *harness {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hooks.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := storetest.NewWorld(t, s)
	return &harness{t: t, w: w, clock: &fakeClock{now: w.Clock.Now()}}
}

func (h *harness) start(cfg Config) *Deliverer {
	h.t.Helper()
	cfg.Clock = h.clock
	if cfg.Jitter == nil {
		cfg.Jitter = func() float64 { return 0.5 }
	}
	if cfg.Poll == 0 {
		cfg.Poll = 5 * time.Millisecond
	}
	if cfg.Flush == 0 {
		cfg.Flush = 5 * time.Millisecond
	}
	h.reg = prometheus.NewRegistry()
	cfg.Registerer = h.reg
	h.d = Start(h.w.Ledger, cfg)
	d := h.d
	h.t.Cleanup(d.Stop)
	return d
}

func (h *harness) add(r *receiver, types ...daodian.EventType) *daodian.Webhook {
	h.t.Helper()
	wh, err := h.w.Ledger.AddWebhook(h.w.Ctx, daodian.WebhookSpec{MerchantID: storetest.M1, URL: r.srv.URL + "/hook", Types: types})
	if err != nil {
		h.t.Fatal(err)
	}
	r.secret.Store(&wh.Secret)
	return wh
}

// events returns the ids of M1's events after after.
func (h *harness) events(after string) []string {
	h.t.Helper()
	p, err := h.w.Ledger.Events(h.w.Ctx, storetest.M1, after, daodian.MaxEventsPage)
	if err != nil {
		h.t.Fatal(err)
	}
	ids := make([]string, len(p.Events))
	for i, e := range p.Events {
		ids[i] = e.ID
	}
	return ids
}

func (h *harness) attempts(webhookID string, failedOnly bool) []daodian.DeliveryAttempt {
	h.t.Helper()
	as, err := h.w.Ledger.DeliveryAttempts(h.w.Ctx, daodian.AttemptQuery{WebhookID: webhookID, FailedOnly: failedOnly, Limit: daodian.MaxAttemptsPage})
	if err != nil {
		h.t.Fatal(err)
	}
	slices.Reverse(as) // oldest first
	return as
}

func (h *harness) cursor(webhookID string) string {
	h.t.Helper()
	var wh *daodian.Webhook
	if err := h.w.Store.View(h.w.Ctx, func(tx daodian.ReadTx) error {
		var err error
		wh, err = tx.Webhook(h.w.Ctx, webhookID)
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	return wh.Cursor
}

// counter reads daodian_webhook_deliveries_total{outcome} from the registry.
func (h *harness) counter(outcome daodian.DeliveryOutcome) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != MetricDeliveries {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "outcome" && lp.GetValue() == string(outcome) {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// activity makes n changes of M1: a ticket issued, then used and reversed,
// n/3 times.
func (h *harness) activity(tag string, n int) {
	h.t.Helper()
	for i := 0; i < n; i += 3 {
		tk := h.w.Issue(1, 1).Tickets[0]
		u := h.w.MustUse(h.w.A, tk.Code, 1, fmt.Sprintf("%s-u%d", tag, i))
		h.w.Reverse(h.w.A, fmt.Sprintf("%s-r%d", tag, i), tk.ID, u.TransID)
	}
}

// TestDeliversInOrder: every event after the webhook was added is delivered,
// once, in event_id order, signed, with the event as its body and its id and
// type in the headers; the cursor reaches the last event; an event of a type
// the webhook does not receive is skipped, and so are other merchants'.
func TestDeliversInOrder(t *testing.T) {
	h := newHarness(t)
	h.activity("before", 3) // before the webhook: not delivered
	all := newReceiver(t, h.clock, nil)
	whAll := h.add(all)
	uses := newReceiver(t, h.clock, nil)
	whUses := h.add(uses, daodian.EventUsed)
	h.start(Config{})
	h.activity("after", 30)
	if _, err := h.w.Ledger.Issue(h.w.Ctx, daodian.IssueRequest{MerchantID: storetest.M2, Quantity: 1, ItemName: "x",
		ValidFrom: h.w.Clock.Now(), ValidTo: h.w.Clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	want := h.events(whAll.Cursor)
	if len(want) != 30 {
		t.Fatalf("%d events after the webhook was added, want 30", len(want))
	}
	eventually(t, "every event delivered", func() bool { return len(all.ids()) >= len(want) })
	// The cursor passes the other merchant's event too: the webhook is done
	// with it.
	var last string
	if err := h.w.Store.View(h.w.Ctx, func(tx daodian.ReadTx) error { var err error; last, err = tx.LastRecordID(h.w.Ctx); return err }); err != nil {
		t.Fatal(err)
	}
	if last == want[len(want)-1] {
		t.Fatal("the other merchant's event is not the last")
	}
	eventually(t, "the cursor at the last event", func() bool { return h.cursor(whAll.ID) == last })
	if got := all.ids(); !slices.Equal(got, want) {
		t.Fatalf("delivered %v\nwant      %v", got, want)
	}
	var wantUses []string
	p, _ := h.w.Ledger.Events(h.w.Ctx, storetest.M1, whUses.Cursor, daodian.MaxEventsPage)
	for _, e := range p.Events {
		if e.Kind == daodian.RecordUse {
			wantUses = append(wantUses, e.ID)
		}
	}
	eventually(t, "every use delivered", func() bool { return len(uses.ids()) >= len(wantUses) })
	if got := uses.ids(); !slices.Equal(got, wantUses) {
		t.Fatalf("uses delivered %v\nwant %v", got, wantUses)
	}
	// The body is the event, as the pull endpoint renders it.
	for i, e := range p.Events[:3] {
		b, err := admin.EventJSON(&e)
		if err != nil {
			t.Fatal(err)
		}
		all.mu.Lock()
		g := all.got[i]
		all.mu.Unlock()
		if string(g.body) != string(b) || g.typ != string(daodian.EventTypeOf(e.Kind)) {
			t.Errorf("delivery %d: %s %s\nwant %s %s", i, g.typ, g.body, daodian.EventTypeOf(e.Kind), b)
		}
	}
	// The cursor of the uses-only webhook passes the reversal after the last
	// use too: it is done with it.
	eventually(t, "the uses-only cursor at the last event", func() bool { return h.cursor(whUses.ID) == last })
	if n := h.counter(daodian.Delivered); n != float64(len(want)+len(wantUses)) {
		t.Errorf("deliveries_total{delivered} = %v, want %d", n, len(want)+len(wantUses))
	}
	if l := h.d.Lag(); l != 0 {
		t.Errorf("lag %v with everything delivered", l)
	}
}

// TestFailureHoldsBackItsWebhookOnly: an event that fails holds back the
// later events of its webhook, which get them in order once it succeeds;
// another webhook gets everything meanwhile. The retries follow the schedule
// (1 s, then 2 s, at jitter 0.5: 0.75 s, 1.5 s) on the deliverer's clock.
func TestFailureHoldsBackItsWebhookOnly(t *testing.T) {
	h := newHarness(t)
	var failing atomic.Value
	failing.Store("")
	bad := newReceiver(t, h.clock, func(id string, n int) int {
		if id == failing.Load().(string) && n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	whBad := h.add(bad)
	good := newReceiver(t, h.clock, nil)
	h.add(good)
	h.activity("a", 6)
	evs := h.events(whBad.Cursor)
	failing.Store(evs[2])
	h.start(Config{})
	eventually(t, "the other webhook has every event", func() bool { return len(good.ids()) == len(evs) })
	eventually(t, "the failing event tried once", func() bool { return len(bad.ids()) == 3 })
	t0 := h.clock.Now()
	for i, delay := range []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond} {
		eventually(t, "a retry scheduled", func() bool { at, ok := h.clock.next(); return ok && at.Equal(h.clock.Now().Add(delay)) })
		if got := bad.ids(); len(got) != 3+i {
			t.Fatalf("before retry %d the receiver got %v: a later event went past the failing one", i+1, got)
		}
		h.clock.Advance(delay)
	}
	eventually(t, "the rest delivered", func() bool { return len(bad.ids()) == len(evs)+2 })
	want := append(append(slices.Clone(evs[:3]), evs[2], evs[2]), evs[3:]...)
	if got := bad.ids(); !slices.Equal(got, want) {
		t.Fatalf("received %v\nwant     %v", got, want)
	}
	eventually(t, "the attempts recorded", func() bool { return len(h.attempts(whBad.ID, false)) == len(want) })
	var failed []string
	for _, a := range h.attempts(whBad.ID, false) {
		if a.EventID == evs[2] {
			failed = append(failed, fmt.Sprintf("%d/%s/%d/%s", a.Attempt, a.Outcome, a.HTTPStatus, a.At.Sub(t0)))
			if a.Outcome == daodian.Retrying && !strings.HasPrefix(a.Error, "HTTP 503") {
				t.Errorf("attempt %d's error %q", a.Attempt, a.Error)
			}
		}
	}
	if got := strings.Join(failed, " "); got != "1/retry/503/0s 2/retry/503/750ms 3/delivered/204/2.25s" {
		t.Fatalf("attempts of the failing event: %s", got)
	}
	eventually(t, "the retry state cleared", func() bool {
		var wh *daodian.Webhook
		_ = h.w.Store.View(h.w.Ctx, func(tx daodian.ReadTx) error { wh, _ = tx.Webhook(h.w.Ctx, whBad.ID); return nil })
		return wh != nil && wh.Head == (daodian.HeadState{}) && wh.Cursor == evs[len(evs)-1]
	})
	if n := h.counter(daodian.Retrying); n != 2 {
		t.Errorf("deliveries_total{retry} = %v, want 2", n)
	}
}

// TestBackoffAndGiveUp: a receiver that always fails gets the event at the
// times of the schedule — each wait between half and all of 1 s doubling up
// to 1 h (the jitter here is 0.5: three quarters) — until 24 h after the
// first attempt, when the event is marked failed and the next one delivered.
// The lag meanwhile is the failing event's age.
func TestBackoffAndGiveUp(t *testing.T) {
	h := newHarness(t)
	var first atomic.Value
	first.Store("")
	r := newReceiver(t, h.clock, func(id string, n int) int {
		if id == first.Load().(string) {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	wh := h.add(r)
	h.activity("a", 3)
	evs := h.events(wh.Cursor)
	first.Store(evs[0])
	h.start(Config{})
	t0 := h.clock.Now()
	var wantAt []time.Duration
	at := time.Duration(0)
	for n := 1; ; n++ {
		wantAt = append(wantAt, at)
		if at >= daodian.RetryFor {
			break
		}
		at = min(at+daodian.RetryDelay(n, 0.5), daodian.RetryFor)
	}
	for i := 1; i < len(wantAt); i++ {
		eventually(t, fmt.Sprintf("retry %d scheduled", i), func() bool { nx, ok := h.clock.next(); return ok && !nx.Before(t0.Add(wantAt[i])) })
		nx, _ := h.clock.next()
		if !nx.Equal(t0.Add(wantAt[i])) {
			t.Fatalf("retry %d at %s, want %s", i, nx.Sub(t0), wantAt[i])
		}
		if lag := h.d.Lag(); lag < h.clock.Now().Sub(t0) {
			t.Fatalf("lag %s while the event waits since %s", lag, h.clock.Now().Sub(t0))
		}
		h.clock.Advance(nx.Sub(h.clock.Now()))
	}
	eventually(t, "the next events delivered", func() bool { return len(r.ids()) == len(wantAt)+2 })
	eventually(t, "the attempts recorded", func() bool { return len(h.attempts(wh.ID, false)) == len(wantAt)+2 })
	as := h.attempts(wh.ID, false)
	for i, a := range as[:len(wantAt)] {
		wantOutcome := daodian.Retrying
		if i == len(wantAt)-1 {
			wantOutcome = daodian.Failed
		}
		if a.EventID != evs[0] || a.Attempt != i+1 || a.At.Sub(t0) != wantAt[i] || a.Outcome != wantOutcome || a.HTTPStatus != 500 {
			t.Fatalf("attempt %d: %+v, want at %s outcome %s", i+1, a, wantAt[i], wantOutcome)
		}
	}
	if got := as[len(wantAt)].EventID; got != evs[1] {
		t.Fatalf("after the failed event, %s was attempted, want %s", got, evs[1])
	}
	failed := h.attempts(wh.ID, true)
	if len(failed) != 1 || failed[0].EventID != evs[0] {
		t.Fatalf("the failed attempts: %+v", failed)
	}
	if len(wantAt) < 30 || wantAt[len(wantAt)-1] != daodian.RetryFor {
		t.Fatalf("the schedule %v does not run to 24 h", wantAt)
	}
	if h.counter(daodian.Failed) != 1 || h.counter(daodian.Retrying) != float64(len(wantAt)-1) {
		t.Errorf("deliveries_total: failed %v, retry %v", h.counter(daodian.Failed), h.counter(daodian.Retrying))
	}
	eventually(t, "the cursor past every event", func() bool { return h.cursor(wh.ID) == evs[len(evs)-1] })
}

// TestRetryStateSurvivesRestart: a deliverer stopped while an event waits for
// its retry leaves the attempt count and the time of the next attempt; the
// next deliverer waits for that time, and counts on.
func TestRetryStateSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	var failing atomic.Value
	failing.Store("")
	r := newReceiver(t, h.clock, func(id string, n int) int {
		if id == failing.Load().(string) && n <= 2 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	wh := h.add(r)
	h.activity("a", 3)
	evs := h.events(wh.Cursor)
	failing.Store(evs[0])
	d := h.start(Config{})
	t0 := h.clock.Now()
	eventually(t, "a first retry scheduled", func() bool { _, ok := h.clock.next(); return ok })
	h.clock.Advance(750 * time.Millisecond)
	eventually(t, "a second retry scheduled", func() bool { nx, ok := h.clock.next(); return ok && nx.Equal(t0.Add(2250*time.Millisecond)) })
	d.Stop()
	var stored *daodian.Webhook
	if err := h.w.Store.View(h.w.Ctx, func(tx daodian.ReadTx) error {
		var err error
		stored, err = tx.Webhook(h.w.Ctx, wh.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if stored.Head.EventID != evs[0] || stored.Head.Attempts != 2 || !stored.Head.FirstAt.Equal(t0) || !stored.Head.NextAt.Equal(t0.Add(2250*time.Millisecond)) {
		t.Fatalf("stored retry state %+v", stored.Head)
	}
	h.clock.mu.Lock()
	h.clock.waiters = nil // the stopped deliverer's
	h.clock.mu.Unlock()
	h.start(Config{})
	eventually(t, "the restarted deliverer waits for the stored retry time", func() bool { nx, ok := h.clock.next(); return ok && nx.Equal(t0.Add(2250*time.Millisecond)) })
	if n := len(r.ids()); n != 2 {
		t.Fatalf("the restarted deliverer sent before the retry time: %d receipts", n)
	}
	h.clock.Advance(1500 * time.Millisecond)
	eventually(t, "every event delivered", func() bool { return len(r.ids()) == len(evs)+2 })
	eventually(t, "the third attempt recorded", func() bool {
		for _, a := range h.attempts(wh.ID, false) {
			if a.EventID == evs[0] && a.Attempt == 3 && a.Outcome == daodian.Delivered {
				return true
			}
		}
		return false
	})
}

// TestRedeliver: a redelivery sends an event again, before the webhook's next
// events, and is recorded as such; the stream goes on in order.
func TestRedeliver(t *testing.T) {
	h := newHarness(t)
	r := newReceiver(t, h.clock, nil)
	wh := h.add(r)
	h.activity("a", 3)
	evs := h.events(wh.Cursor)
	h.start(Config{})
	eventually(t, "delivered", func() bool { return len(r.ids()) == 3 })
	eventually(t, "the cursor stored", func() bool { return h.cursor(wh.ID) == evs[2] })
	queued, err := h.w.Ledger.Redeliver(h.w.Ctx, evs[1], "")
	if err != nil || len(queued) != 1 {
		t.Fatalf("Redeliver: %v %v", queued, err)
	}
	eventually(t, "redelivered", func() bool { return len(r.ids()) == 4 })
	h.activity("b", 3)
	eventually(t, "the next events", func() bool { return len(r.ids()) == 7 })
	got := r.ids()
	if got[3] != evs[1] || !slices.Equal(got[4:], h.events(evs[2])) {
		t.Fatalf("received %v", got)
	}
	eventually(t, "the redelivery recorded and done", func() bool {
		var rs []daodian.Redelivery
		_ = h.w.Store.View(h.w.Ctx, func(tx daodian.ReadTx) error { rs, _ = tx.Redeliveries(h.w.Ctx); return nil })
		for _, a := range h.attempts(wh.ID, false) {
			if a.Redelivery && a.EventID == evs[1] && a.Outcome == daodian.Delivered {
				return len(rs) == 0
			}
		}
		return false
	})
	time.Sleep(50 * time.Millisecond) // several polls: it is not sent a third time
	if n := len(r.ids()); n != 7 {
		t.Fatalf("%d receipts after the redelivery was done, want 7", n)
	}
}

// TestBoundedConcurrency: with MaxConcurrent 2, four webhooks whose receivers
// hang never have more than two attempts in flight, and a hanging receiver
// costs an attempt's timeout, then a retry.
func TestBoundedConcurrency(t *testing.T) {
	h := newHarness(t)
	hold := make(chan struct{})
	var receivers []*receiver
	var total atomic.Int32
	for range 4 {
		r := newReceiver(t, h.clock, nil)
		r.hold = hold
		receivers = append(receivers, r)
		h.add(r)
	}
	h.activity("a", 3)
	h.start(Config{MaxConcurrent: 2, Timeout: 300 * time.Millisecond})
	eventually(t, "two attempts in flight", func() bool {
		n := 0
		for _, r := range receivers {
			r.mu.Lock()
			n += r.inFlight
			r.mu.Unlock()
		}
		total.Store(int32(n))
		return n == 2
	})
	time.Sleep(100 * time.Millisecond)
	n := 0
	for _, r := range receivers {
		r.mu.Lock()
		n += r.inFlight
		r.mu.Unlock()
	}
	if n > 2 {
		t.Fatalf("%d attempts in flight, at most 2 allowed", n)
	}
	eventually(t, "timeouts recorded as retries", func() bool { return h.counter(daodian.Retrying) >= 2 })
	close(hold)
	for _, r := range receivers {
		r.mu.Lock()
		if r.maxIn > 1 {
			t.Errorf("one webhook had %d attempts in flight at once", r.maxIn)
		}
		r.mu.Unlock()
	}
}

// TestReceiverMisbehaving: a redirect is not followed, a 2xx with an endless
// body counts at once, a failure's body is quoted in a few bytes, a receiver
// that never answers costs the timeout.
func TestReceiverMisbehaving(t *testing.T) {
	var followed atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	defer elsewhere.Close()
	never := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, elsewhere.URL, http.StatusFound)
		case "/endless":
			w.WriteHeader(http.StatusOK)
			for {
				if _, err := w.Write([]byte(strings.Repeat("x", 1<<16))); err != nil {
					return
				}
			}
		case "/huge-error":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte("bad\x00event " + strings.Repeat("y", 1<<20)))
		case "/silent":
			<-never
		}
	}))
	defer srv.Close()
	defer close(never) // before srv.Close, which waits for its handlers
	h := newHarness(t)
	hooks := map[string]*daodian.Webhook{}
	for _, p := range []string{"/redirect", "/endless", "/huge-error", "/silent"} {
		wh, err := h.w.Ledger.AddWebhook(h.w.Ctx, daodian.WebhookSpec{MerchantID: storetest.M1, URL: srv.URL + p, Types: []daodian.EventType{daodian.EventIssued}})
		if err != nil {
			t.Fatal(err)
		}
		hooks[p] = wh
	}
	h.w.Issue(1, 1)
	h.start(Config{Timeout: 500 * time.Millisecond})
	first := func(p string) daodian.DeliveryAttempt {
		var as []daodian.DeliveryAttempt
		eventually(t, "an attempt to "+p, func() bool { as = h.attempts(hooks[p].ID, false); return len(as) > 0 })
		return as[0]
	}
	if a := first("/redirect"); a.Outcome != daodian.Retrying || a.HTTPStatus != 302 || !strings.Contains(a.Error, "redirects are not followed") {
		t.Errorf("a redirect: %+v", a)
	}
	if followed.Load() {
		t.Error("the redirect was followed")
	}
	if a := first("/endless"); a.Outcome != daodian.Delivered || a.Latency > 400*time.Millisecond {
		t.Errorf("a 2xx with an endless body: %+v", a)
	}
	if a := first("/huge-error"); a.Outcome != daodian.Retrying || a.Error != "HTTP 400: bad event "+strings.Repeat("y", maxSnippet-len("bad\x00event ")) {
		t.Errorf("an error with a huge body: %+v", a)
	}
	if a := first("/silent"); a.Outcome != daodian.Retrying || a.HTTPStatus != 0 || a.Error != "no answer within 500ms" || a.Latency < 500*time.Millisecond {
		t.Errorf("a receiver that never answers: %+v", a)
	}
}

// TestMetadataAddressesRefused: link-local and cloud metadata addresses are
// never dialled unless allowed; private and loopback ones are (the LAN).
func TestMetadataAddressesRefused(t *testing.T) {
	for _, c := range []struct {
		ip      string
		refused bool
	}{
		{"169.254.169.254", true}, {"169.254.0.1", true}, {"fe80::1", true}, {"100.100.100.200", true},
		{"fd00:ec2::254", true}, {"::ffff:169.254.169.254", true},
		{"127.0.0.1", false}, {"::1", false}, {"10.1.2.3", false}, {"192.168.1.10", false}, {"172.16.0.1", false},
		{"100.100.100.201", false}, {"fd00::1", false}, {"8.8.8.8", false},
	} {
		if got := Refused(netip.MustParseAddr(c.ip)); got != c.refused {
			t.Errorf("Refused(%s) = %v, want %v", c.ip, got, c.refused)
		}
	}
	h := newHarness(t)
	wh, err := h.w.Ledger.AddWebhook(h.w.Ctx, daodian.WebhookSpec{MerchantID: storetest.M1, URL: "http://169.254.169.254/latest/meta-data/"})
	if err != nil {
		t.Fatal(err)
	}
	h.w.Issue(1, 1)
	h.start(Config{})
	var as []daodian.DeliveryAttempt
	eventually(t, "an attempt", func() bool { as = h.attempts(wh.ID, false); return len(as) > 0 })
	if a := as[0]; a.Outcome != daodian.Retrying || !strings.Contains(a.Error, "--webhook-allow-metadata") || a.Latency > time.Second {
		t.Errorf("a delivery to 169.254.169.254: %+v", a)
	}
}

// TestRemovedWebhookStops: a webhook removed gets nothing more.
func TestRemovedWebhookStops(t *testing.T) {
	h := newHarness(t)
	r := newReceiver(t, h.clock, nil)
	wh := h.add(r)
	h.start(Config{})
	h.activity("a", 3)
	eventually(t, "delivered", func() bool { return len(r.ids()) == 3 })
	if err := h.w.Ledger.RemoveWebhook(h.w.Ctx, wh.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the worker stopped", func() bool { h.d.mu.Lock(); defer h.d.mu.Unlock(); return len(h.d.workers) == 0 })
	h.activity("b", 3)
	time.Sleep(50 * time.Millisecond)
	if n := len(r.ids()); n != 3 {
		t.Fatalf("a removed webhook received %d deliveries, want 3", n)
	}
}

// TestAttemptsBounded: under load only the latest DeliveredPerFlush
// successful attempts of a flush are written, and at most KeepAttempts are
// kept per webhook; every failed attempt is written.
func TestAttemptsBounded(t *testing.T) {
	p := &pendingUpdate{}
	for i := range 25 {
		out := daodian.Delivered
		if i%10 == 3 {
			out = daodian.Retrying
		}
		p.addAttempt(daodian.DeliveryAttempt{EventID: fmt.Sprint(i), Outcome: out}, 5)
	}
	var got []string
	for _, a := range p.u.Attempts {
		got = append(got, a.EventID)
	}
	if strings.Join(got, ",") != "3,13,19,20,21,22,23,24" || p.delivered != 5 {
		t.Fatalf("kept %v (%d delivered)", got, p.delivered)
	}

	h := newHarness(t)
	r := newReceiver(t, h.clock, nil)
	wh := h.add(r)
	h.activity("a", 60)
	h.start(Config{Flush: time.Hour, KeepAttempts: 20, DeliveredPerFlush: 7})
	evs := h.events(wh.Cursor)
	eventually(t, "every result pending", func() bool {
		h.d.flusher.mu.Lock()
		defer h.d.flusher.mu.Unlock()
		p := h.d.flusher.pending[wh.ID]
		return p != nil && len(p.u.Attempts) > 0 && p.u.Attempts[len(p.u.Attempts)-1].EventID == evs[59]
	})
	if err := h.d.flusher.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	as := h.attempts(wh.ID, false)
	if len(as) != 7 || as[6].EventID != evs[59] || as[0].EventID != evs[53] {
		t.Fatalf("%d attempts kept of one flush, want the last 7", len(as))
	}
	if c := h.cursor(wh.ID); c != evs[59] {
		t.Fatalf("cursor %s, want %s", c, evs[59])
	}
}

// TestConnection: a webhook's deliveries share one kept-alive connection; when
// the receiver has closed it while idle, the next delivery dials again and
// goes through at its first attempt.
func TestConnection(t *testing.T) {
	h := newHarness(t)
	// Long enough that a busy machine's pauses between deliveries do not close
	// the connection; short enough for the test.
	r := newReceiverWith(t, h.clock, nil, func(s *http.Server) { s.IdleTimeout = 500 * time.Millisecond })
	wh := h.add(r)
	h.start(Config{})
	h.activity("a", 30)
	eventually(t, "delivered", func() bool { return len(r.ids()) == 30 })
	r.mu.Lock()
	n := len(r.conns)
	r.mu.Unlock()
	if n != 1 {
		t.Fatalf("30 deliveries over %d connections, want 1", n)
	}
	time.Sleep(time.Second) // the receiver closes the idle connection
	h.activity("b", 3)
	eventually(t, "delivered after the receiver closed the connection", func() bool { return len(r.ids()) == 33 })
	eventually(t, "the attempts recorded", func() bool { return h.cursor(wh.ID) == h.events("")[len(h.events(""))-1] })
	if n := h.counter(daodian.Retrying); n != 0 {
		t.Fatalf("%v retries: a closed idle connection cost an attempt", n)
	}
	if got := r.ids(); !slices.Equal(got[30:], h.events(got[29])) {
		t.Fatalf("after the reconnection: %v", got[30:])
	}
}

// TestLagThroughABacklog: the lag is the age of the oldest event not yet
// delivered, all through a backlog of many windows: it never reads 0 before
// the last event is delivered, and reads 0 once it is.
func TestLagThroughABacklog(t *testing.T) {
	h := newHarness(t)
	r := newReceiver(t, h.clock, nil)
	h.add(r)
	h.activity("a", 60)
	h.clock.Advance(time.Hour) // the events are an hour old when delivered
	h.start(Config{Window: 4})
	samples := 0
	for {
		lag := h.d.Lag()
		n := len(r.ids())
		if n == 60 {
			break
		}
		if lag < time.Hour && n > 0 {
			t.Fatalf("lag %v with %d of 60 events delivered", lag, n)
		}
		samples++
		time.Sleep(100 * time.Microsecond)
	}
	eventually(t, "the lag at 0", func() bool { return h.d.Lag() == 0 })
	t.Logf("%d samples", samples)
}

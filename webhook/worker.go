package webhook

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
)

// worker delivers one webhook's events, one at a time.
type worker struct {
	d      *Deliverer
	wh     daodian.Webhook
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	notify chan struct{}
	link   *link
	// headAt is the time of the first undelivered event in the window, in
	// Unix nanoseconds (0: none), for Deliverer.Lag.
	headAt atomic.Int64

	mu     sync.Mutex // guards what the manager hands over
	latest string     // the last event_id the manager saw
	reds   []daodian.Redelivery

	// The rest belongs to the worker's goroutine.
	cursor string
	// window holds the next events after cursor; when complete, it held
	// every matching event up to horizon, the last event_id when it was read.
	window   []daodian.Record
	complete bool
	horizon  string
	loaded   bool
	// retry is the state of the window's first event once an attempt of it
	// failed (persisted as the webhook's head).
	retry daodian.HeadState
	// redo is the retry state of each redelivery under way, done the
	// redeliveries finished (by their request time, so that one asked again
	// is sent again) until the store no longer lists them.
	redo     map[string]*daodian.HeadState
	finished map[string]time.Time
}

func newWorker(d *Deliverer, wh daodian.Webhook) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{
		d: d, wh: wh, ctx: ctx, cancel: cancel, done: make(chan struct{}), notify: make(chan struct{}, 1), link: newLink(d.cfg.AllowMetadata),
		cursor: wh.Cursor, redo: map[string]*daodian.HeadState{}, finished: map[string]time.Time{},
	}
	if wh.Head.EventID != "" && daodian.IDAfter(wh.Head.EventID, wh.Cursor) {
		w.retry = wh.Head
	}
	return w
}

// update hands the worker what the manager read, and wakes it if there is
// something new.
func (w *worker) update(latest string, reds []daodian.Redelivery) {
	w.mu.Lock()
	changed := latest != w.latest || !slices.Equal(reds, w.reds)
	w.latest, w.reds = latest, reds
	w.mu.Unlock()
	if changed {
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}
}

// item is the next event to attempt.
type item struct {
	ev         daodian.Record
	redelivery *daodian.Redelivery // nil for the webhook's own stream
	state      *daodian.HeadState
}

func (w *worker) run() {
	defer close(w.done)
	defer w.headAt.Store(0)
	defer w.link.close()
	for w.ctx.Err() == nil {
		it, wait := w.next()
		if it == nil {
			w.sleep(wait)
			continue
		}
		w.deliver(it)
	}
}

// sleep waits for the manager's news, for a retry's time (wait > 0), or for
// the end.
func (w *worker) sleep(wait time.Duration) {
	var due <-chan time.Time
	if wait > 0 {
		due = w.d.clock.After(wait)
	}
	select {
	case <-w.ctx.Done():
	case <-w.notify:
	case <-due:
	}
}

// errWait is the pause after a failed read of the store.
const errWait = time.Second

// next returns the next event to attempt now, or nil and how long to wait
// (0: until the manager has news): a redelivery whose time has come first,
// then the first event of the window unless it waits for its retry.
func (w *worker) next() (*item, time.Duration) {
	now := w.d.clock.Now()
	var earliest time.Time
	sooner := func(t time.Time) {
		if earliest.IsZero() || t.Before(earliest) {
			earliest = t
		}
	}
	w.mu.Lock()
	reds := w.reds
	w.mu.Unlock()
	for i := range reds {
		r := &reds[i]
		if at, ok := w.finished[r.EventID]; ok && at.Equal(r.RequestedAt) {
			continue
		}
		st := w.redo[r.EventID]
		if st != nil && st.NextAt.After(now) {
			sooner(st.NextAt)
			continue
		}
		ev, err := w.record(r.EventID)
		if errors.Is(err, daodian.ErrNotFound) {
			// Not an event (any more): nothing to send.
			w.finishRedelivery(r, nil)
			continue
		}
		if err != nil {
			return nil, errWait
		}
		if st == nil {
			st = &daodian.HeadState{}
			w.redo[r.EventID] = st
		}
		return &item{ev: *ev, redelivery: r, state: st}, 0
	}
	// Forget the redeliveries the store no longer lists.
	for id, at := range w.finished {
		if !slices.ContainsFunc(reds, func(r daodian.Redelivery) bool { return r.EventID == id && r.RequestedAt.Equal(at) }) {
			delete(w.finished, id)
		}
	}
	if len(w.window) == 0 {
		if err := w.load(); err != nil {
			if w.ctx.Err() == nil {
				w.d.logErr(w.ctx, "webhooks: reading the events failed", err)
			}
			return nil, errWait
		}
	}
	if len(w.window) > 0 {
		head := &w.window[0]
		w.headAt.Store(head.At.UnixNano())
		if w.retry.EventID == head.ID && w.retry.NextAt.After(now) {
			sooner(w.retry.NextAt)
		} else {
			return &item{ev: *head, state: &w.retry}, 0
		}
	} else {
		w.headAt.Store(0)
	}
	if earliest.IsZero() {
		return nil, 0
	}
	return nil, earliest.Sub(now)
}

func (w *worker) record(id string) (*daodian.Record, error) {
	var r *daodian.Record
	err := w.d.store.View(w.ctx, func(tx daodian.ReadTx) error {
		var err error
		r, err = tx.RecordByID(w.ctx, id)
		return err
	})
	if err == nil && r.MerchantID != w.wh.MerchantID {
		return nil, daodian.ErrNotFound // never another merchant's event
	}
	return r, err
}

// load reads the next window of events after the cursor, if the manager has
// seen events the last window did not cover.
func (w *worker) load() error {
	w.mu.Lock()
	latest := w.latest
	w.mu.Unlock()
	if w.loaded && w.complete && !daodian.IDAfter(latest, w.horizon) {
		return nil
	}
	var recs []daodian.Record
	var horizon string
	err := w.d.store.View(w.ctx, func(tx daodian.ReadTx) error {
		var err error
		// The horizon first: every event up to it is committed, so the page
		// read after it in this snapshot holds each one that matches.
		if horizon, err = tx.LastRecordID(w.ctx); err != nil {
			return err
		}
		recs, err = tx.Records(w.ctx, daodian.RecordQuery{MerchantID: w.wh.MerchantID, Kinds: w.wh.Kinds(), AfterID: w.cursor, Limit: w.d.cfg.Window})
		return err
	})
	if err != nil {
		return err
	}
	w.window, w.horizon, w.complete, w.loaded = recs, horizon, len(recs) < w.d.cfg.Window, true
	if len(recs) > 0 && !daodian.IDAfter(horizon, recs[len(recs)-1].ID) {
		w.horizon = recs[len(recs)-1].ID
	}
	w.skipToHorizon()
	return nil
}

// skipToHorizon moves the cursor over the events that do not match the
// webhook, once the window held all that did up to its horizon and they are
// done: the next read starts after them.
func (w *worker) skipToHorizon() {
	if len(w.window) == 0 && w.complete && daodian.IDAfter(w.horizon, w.cursor) {
		w.cursor = w.horizon
		w.d.flusher.add(w.wh.ID, w.cursor, nil, nil, "")
	}
}

// deliver makes one attempt and records what came of it.
func (w *worker) deliver(it *item) {
	body, err := admin.EventJSON(&it.ev)
	if err != nil { // a record always renders; a failure is a bug
		w.d.cfg.Logger.Error("webhooks: an event does not render as JSON", "event_id", it.ev.ID, "err", err)
		w.sleep(errWait)
		return
	}
	select {
	case w.d.slots <- struct{}{}:
	case <-w.ctx.Done():
		return
	}
	now := w.d.clock.Now()
	res, err := w.d.send(w.ctx, w.link, &w.wh, &it.ev, body)
	<-w.d.slots
	if err != nil { // stopped: the attempt says nothing of the receiver
		return
	}
	st := it.state
	hadRetry := st.EventID != ""
	if st.EventID != it.ev.ID {
		*st = daodian.HeadState{EventID: it.ev.ID, FirstAt: now}
	}
	st.Attempts++
	a := daodian.DeliveryAttempt{
		WebhookID: w.wh.ID, EventID: it.ev.ID, EventType: daodian.EventTypeOf(it.ev.Kind), Attempt: st.Attempts, At: now,
		HTTPStatus: res.status, Latency: res.latency, Error: res.err, Outcome: daodian.Delivered, Redelivery: it.redelivery != nil,
	}
	finished := true
	if res.err != "" {
		next, giveUp := daodian.NextAttempt(st.FirstAt, now, st.Attempts, w.d.cfg.Jitter())
		if giveUp {
			a.Outcome = daodian.Failed
			w.d.cfg.Logger.Error("webhooks: an event was retried for 24h without success and is marked failed; the webhook goes on with the next one (daodian webhook redeliver sends it again)",
				"webhook_id", w.wh.ID, "event_id", it.ev.ID, "attempts", st.Attempts, "err", res.err)
		} else {
			a.Outcome, st.NextAt, finished = daodian.Retrying, next, false
			w.d.cfg.Logger.Warn("webhooks: a delivery failed; it will be retried", "webhook_id", w.wh.ID, "event_id", it.ev.ID,
				"attempt", st.Attempts, "http_status", res.status, "err", res.err, "retry_in_s", next.Sub(now).Seconds())
		}
	}
	w.d.metrics.count(a.Outcome)
	if it.redelivery != nil {
		if finished {
			w.finishRedelivery(it.redelivery, &a)
		} else {
			w.d.flusher.add(w.wh.ID, "", nil, &a, "")
		}
		return
	}
	if !finished {
		head := *st
		w.d.flusher.add(w.wh.ID, "", &head, &a, "")
		return
	}
	w.window = w.window[1:]
	w.cursor = it.ev.ID
	*st = daodian.HeadState{}
	var head *daodian.HeadState
	if hadRetry {
		head = &daodian.HeadState{} // clear the stored retry state
	}
	w.d.flusher.add(w.wh.ID, w.cursor, head, &a, "")
	// The lag drops to 0 only when the webhook is caught up: between two
	// windows of a backlog it keeps the age of the event just delivered,
	// until the next window is read (at once).
	if len(w.window) == 0 && w.complete {
		w.headAt.Store(0)
		w.skipToHorizon()
	}
}

// finishRedelivery records a redelivery as done (a: its last attempt, if
// any).
func (w *worker) finishRedelivery(r *daodian.Redelivery, a *daodian.DeliveryAttempt) {
	delete(w.redo, r.EventID)
	w.finished[r.EventID] = r.RequestedAt
	w.d.flusher.add(w.wh.ID, "", nil, a, r.EventID)
}

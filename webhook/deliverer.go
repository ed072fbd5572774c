// Package webhook delivers the ledger's events to webhooks (SPEC §9): each
// event committed is POSTed, signed, to every webhook of its merchant that
// receives its type, at least once, in event_id order per webhook.
//
// The outbox is the records table (daodian/events.go): nothing here is on the
// path of a use or a reversal. A Deliverer runs inside `daodian serve`:
//
//   - a manager looks every Config.Poll for webhooks, redeliveries and the
//     last event_id (one read), starts a worker per webhook (on PostgreSQL,
//     per webhook whose lease it holds: one gateway delivers a webhook at a
//     time) and wakes the workers that have new events;
//   - a worker delivers its webhook's events one after the other, in order,
//     from a window of at most Config.Window events read after its cursor: the
//     outbox is the queue, memory holds a window. A failed attempt is retried
//     with exponential backoff and jitter (daodian.NextAttempt) and holds back
//     the webhook's later events, not other webhooks'; after
//     daodian.RetryFor the event is marked failed and the worker goes on;
//   - at most Config.MaxConcurrent attempts are in flight across webhooks,
//     each bounded by Config.Timeout, reading at most a few KiB of the answer;
//   - a flusher writes the workers' results — cursors, retry states,
//     attempts, redeliveries done — in one store Update every Config.Flush,
//     never one per event: the embedded store has one writer, shared with the
//     ledger.
//
// A crash loses at most the results not yet flushed: their events are sent
// again after the restart (the receiver dedupes on event_id). Nothing
// committed is ever skipped: a cursor moves only past events delivered or
// marked failed.
package webhook

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/daodian/daodian"
)

// Defaults of Config.
const (
	DefaultMaxConcurrent = 16
	DefaultWindow        = 64
	DefaultPoll          = 200 * time.Millisecond
	DefaultFlush         = 100 * time.Millisecond
	// DefaultKeepAttempts bounds the attempts kept per webhook, besides the
	// ones that marked an event failed, which are kept DefaultKeepFailedFor.
	DefaultKeepAttempts  = 1000
	DefaultKeepFailedFor = 30 * 24 * time.Hour
	// DefaultDeliveredPerFlush bounds the successful attempts of one webhook
	// written per flush (the latest ones): under load a webhook succeeds
	// thousands of times a second, and writing each would take the embedded
	// store's writer from the ledger. Failed attempts are always written.
	DefaultDeliveredPerFlush = 10
)

// Bounds that are not settings.
const (
	// maxPendingAttempts bounds the attempts of one webhook waiting for a
	// flush, when the store cannot take them (it is down): the oldest go.
	maxPendingAttempts = 1000
	// finalFlushTimeout bounds the last flush when the deliverer stops.
	finalFlushTimeout = 5 * time.Second
	// errorLogEvery spaces the log lines of a failure that repeats every poll.
	errorLogEvery = time.Minute
)

// Config tunes a Deliverer; the zero value is usable.
type Config struct {
	// MaxConcurrent bounds the attempts in flight across every webhook.
	MaxConcurrent int
	// Window is how many events of one webhook are held in memory.
	Window int
	// Poll is how often webhooks, redeliveries and new events are looked for.
	Poll time.Duration
	// Flush is how often results are written to the store.
	Flush time.Duration
	// Timeout bounds one attempt (default daodian.DeliveryTimeout).
	Timeout time.Duration
	// AllowMetadata lets deliveries reach link-local and cloud metadata
	// addresses (Refused), which are refused by default.
	AllowMetadata bool
	// KeepAttempts, KeepFailedFor and DeliveredPerFlush bound the attempts
	// recorded (see the defaults).
	KeepAttempts      int
	KeepFailedFor     time.Duration
	DeliveredPerFlush int
	// Clock is the time of attempts, retries and signatures (default the
	// system's).
	Clock Clock
	// Jitter returns the jitter of a retry's delay, in [0, 1) (default
	// uniform random).
	Jitter func() float64
	// Logger receives failed attempts and store failures (default
	// slog.Default()).
	Logger *slog.Logger
	// Registerer, if set, gets the metrics daodian_webhook_deliveries_total
	// and daodian_webhook_lag_seconds.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	c.Window = min(c.Window, daodian.MaxRecordsPage)
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.Flush <= 0 {
		c.Flush = DefaultFlush
	}
	if c.Timeout <= 0 {
		c.Timeout = daodian.DeliveryTimeout
	}
	if c.KeepAttempts <= 0 {
		c.KeepAttempts = DefaultKeepAttempts
	}
	if c.KeepFailedFor <= 0 {
		c.KeepFailedFor = DefaultKeepFailedFor
	}
	if c.DeliveredPerFlush <= 0 {
		c.DeliveredPerFlush = DefaultDeliveredPerFlush
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Deliverer delivers events to webhooks until stopped.
type Deliverer struct {
	ledger  *daodian.Ledger
	store   daodian.Store
	cfg     Config
	clock   Clock
	slots   chan struct{}
	flusher *flusher
	metrics *metrics
	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}

	mu      sync.Mutex // guards workers against Lag
	workers map[string]*worker
	// leases is nil on a store without leases, or while none could be had.
	leases  daodian.WebhookLeases
	lastErr time.Time // when a poll's failure was last logged
}

// Start starts delivering the events of l's store; Stop ends it.
func Start(l *daodian.Ledger, cfg Config) *Deliverer {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	d := &Deliverer{
		ledger: l, store: l.Store(), cfg: cfg, clock: cfg.Clock,
		slots: make(chan struct{}, cfg.MaxConcurrent), wake: make(chan struct{}, 1),
		cancel: cancel, done: make(chan struct{}), workers: map[string]*worker{},
	}
	d.flusher = newFlusher(d)
	d.metrics = newMetrics(d, cfg.Registerer)
	go d.run(ctx)
	return d
}

// Stop stops every delivery (an attempt in flight is abandoned, not
// recorded: its event is sent again by the next deliverer), writes the
// results not yet written, and gives the leases up.
func (d *Deliverer) Stop() {
	d.cancel()
	<-d.done
}

// Wake makes the deliverer look for new events now rather than at its next
// poll.
func (d *Deliverer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Lag is the age of the oldest event not yet delivered among the webhooks
// this deliverer delivers (0 when there is none).
func (d *Deliverer) Lag() time.Duration {
	now := d.clock.Now().UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	var lag int64
	for _, w := range d.workers {
		if at := w.headAt.Load(); at != 0 {
			lag = max(lag, now-at)
		}
	}
	return time.Duration(lag)
}

func (d *Deliverer) run(ctx context.Context) {
	defer close(d.done)
	flushDone := make(chan struct{})
	flushStop := make(chan struct{})
	go func() {
		defer close(flushDone)
		d.flusher.loop(flushStop)
	}()
	for {
		d.poll(ctx)
		var lost <-chan struct{}
		if d.leases != nil {
			lost = d.leases.Lost()
		}
		select {
		case <-ctx.Done():
			d.stopWorkers(func(*worker) bool { return true })
			close(flushStop)
			<-flushDone
			fctx, cancel := context.WithTimeout(context.Background(), finalFlushTimeout)
			if err := d.flusher.flush(fctx); err != nil {
				d.cfg.Logger.Warn("webhooks: the last delivery results could not be written; their events will be delivered again", "err", err)
			}
			cancel()
			if d.leases != nil {
				_ = d.leases.Close()
			}
			return
		case <-time.After(d.cfg.Poll):
		case <-d.wake:
		case <-lost:
		}
	}
}

// poll reads the webhooks, the redeliveries and the last event_id, and starts,
// stops and wakes the workers accordingly.
func (d *Deliverer) poll(ctx context.Context) {
	if err := d.ledger.NumberRecords(ctx); err != nil {
		d.logErr(ctx, "webhooks: numbering the records failed", err)
	}
	var hooks []daodian.Webhook
	var reds []daodian.Redelivery
	var last string
	err := d.store.View(ctx, func(tx daodian.ReadTx) error {
		var err error
		if hooks, err = tx.Webhooks(ctx); err != nil {
			return err
		}
		if reds, err = tx.Redeliveries(ctx); err != nil {
			return err
		}
		last, err = tx.LastRecordID(ctx)
		return err
	})
	if err != nil {
		d.logErr(ctx, "webhooks: reading the webhooks failed", err)
		return
	}
	if !d.holdLeases(ctx) {
		return
	}
	present := make(map[string]bool, len(hooks))
	for _, h := range hooks {
		present[h.ID] = true
	}
	d.stopWorkers(func(w *worker) bool { return !present[w.wh.ID] })
	byHook := map[string][]daodian.Redelivery{}
	for _, r := range reds {
		byHook[r.WebhookID] = append(byHook[r.WebhookID], r)
	}
	for i := range hooks {
		h := &hooks[i]
		w := d.workers[h.ID]
		if w == nil {
			if d.leases != nil {
				ok, err := d.leases.Acquire(ctx, h.ID)
				if err != nil {
					d.logErr(ctx, "webhooks: taking a lease failed", err)
					return
				}
				if !ok {
					continue // another gateway delivers it
				}
			}
			w = newWorker(d, *h)
			d.mu.Lock()
			d.workers[h.ID] = w
			d.mu.Unlock()
			w.update(last, byHook[h.ID])
			go w.run()
			continue
		}
		w.update(last, byHook[h.ID])
	}
}

// holdLeases readies the leases on a store that has them: after they were
// lost, every worker stops (another gateway may deliver now) and new ones are
// taken. It reports false when no leases could be had.
func (d *Deliverer) holdLeases(ctx context.Context) bool {
	leaser, ok := d.store.(daodian.WebhookLeaser)
	if !ok {
		return true
	}
	if d.leases != nil {
		select {
		case <-d.leases.Lost():
			d.cfg.Logger.Warn("webhooks: the leases were lost (the database session ended); stopping the deliveries and taking leases again")
			d.stopWorkers(func(*worker) bool { return true })
			_ = d.leases.Close()
			d.leases = nil
		default:
		}
	}
	if d.leases == nil {
		l, err := leaser.WebhookLeases(ctx)
		if err != nil {
			d.logErr(ctx, "webhooks: opening the leases failed", err)
			return false
		}
		d.leases = l
	}
	return true
}

// stopWorkers stops the workers that match and waits for them; their leases
// are given up.
func (d *Deliverer) stopWorkers(match func(*worker) bool) {
	var stopped []*worker
	d.mu.Lock()
	for id, w := range d.workers {
		if match(w) {
			w.cancel()
			stopped = append(stopped, w)
			delete(d.workers, id)
		}
	}
	d.mu.Unlock()
	for _, w := range stopped {
		<-w.done
		if d.leases != nil {
			_ = d.leases.Release(context.Background(), w.wh.ID)
		}
	}
}

// logErr logs a failure that may repeat every poll at most once per
// errorLogEvery.
func (d *Deliverer) logErr(ctx context.Context, msg string, err error) {
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	if now.Sub(d.lastErr) < errorLogEvery {
		return
	}
	d.lastErr = now
	d.cfg.Logger.Warn(msg, "err", err)
}

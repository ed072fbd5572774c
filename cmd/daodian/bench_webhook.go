package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/bench"
	"github.com/daodian/daodian/webhook"
)

// A bench run with --webhook-receiver registers one webhook for the bench
// merchant, to a receiver this process runs, and reports the delivery lag
// (SPEC §6: under 5 s during the run) beside the throughput.

const (
	// lagSample is how often the server's lag gauge is read during the run.
	lagSample = 250 * time.Millisecond
	// drainTimeout bounds the wait, after the load, for a fast receiver to
	// have every event.
	drainTimeout = 2 * time.Minute
)

type benchHook struct {
	r         *bench.ReceiverClient
	stopChild func()
	cursor    string // the last event before the webhook: it receives those after

	mu      sync.Mutex
	maxLag  float64
	endLag  float64
	drainS  float64
	scrapes int
	stop    func()
}

// startBenchHook starts the receiver, a child process like the baseline's
// server, and registers its webhook on l.
func startBenchHook(ctx context.Context, self string, l *daodian.Ledger, merchant, mode string) (*benchHook, error) {
	base, stop, err := startChild(ctx, self, `receiver on (http://\S+)`, "bench", "--serve-receiver", mode)
	if err != nil {
		return nil, fmt.Errorf("start the webhook receiver: %w", err)
	}
	stop = sync.OnceFunc(stop)
	r := &bench.ReceiverClient{Base: base, Mode: mode}
	wh, err := l.AddWebhook(ctx, daodian.WebhookSpec{MerchantID: merchant, URL: r.URL()})
	if err == nil {
		err = r.SetSecret(ctx, wh.Secret)
	}
	if err != nil {
		stop()
		return nil, err
	}
	return &benchHook{r: r, stopChild: stop, cursor: wh.Cursor, stop: func() {}}, nil
}

// serveReceiverHandler is the receiver's process.
func serveReceiverHandler(ctx context.Context, e *env, addr, mode string) error {
	r, err := bench.NewReceiver(mode)
	if err != nil {
		return &exitError{2, err.Error()}
	}
	return serveChild(ctx, e, addr, r.Handler(), "receiver on http://%s\n")
}

// watch samples the server's lag until the run ends (end).
func (h *benchHook) watch(ctx context.Context, base string) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	h.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		t := time.NewTicker(lagSample)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if lag, err := bench.ScrapeGauge(ctx, base, webhook.MetricLag); err == nil {
				h.mu.Lock()
				h.maxLag, h.scrapes = max(h.maxLag, lag), h.scrapes+1
				h.mu.Unlock()
			}
		}
	}()
}

// end stops sampling, reads the lag as the load stops and, for a fast
// receiver, waits for the backlog to drain.
func (h *benchHook) end(ctx context.Context, base string) {
	h.stop()
	lag, _ := bench.ScrapeGauge(ctx, base, webhook.MetricLag)
	h.mu.Lock()
	h.endLag, h.maxLag = lag, max(h.maxLag, lag)
	h.mu.Unlock()
	if h.r.Mode != bench.ReceiverFast {
		return
	}
	// Drained once the lag reads 0 over more than two of the deliverer's
	// polls: the last events committed reach it at its next poll.
	start, zeroSince := time.Now(), time.Time{}
	for time.Since(start) < drainTimeout {
		lag, err := bench.ScrapeGauge(ctx, base, webhook.MetricLag)
		switch {
		case err != nil || lag > 0:
			zeroSince = time.Time{}
		case zeroSince.IsZero():
			zeroSince = time.Now()
		case time.Since(zeroSince) > 2*webhook.DefaultPoll+100*time.Millisecond:
			h.drainS = zeroSince.Sub(start).Seconds()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.drainS = time.Since(start).Seconds()
}

// report adds the webhook's figures to out, counting the events committed
// after the webhook was added on l (the server stopped) and those the
// receiver never got.
func (h *benchHook) report(ctx context.Context, l *daodian.Ledger, merchant string, out map[string]any) error {
	defer h.stopChild()
	got, err := h.r.IDs(ctx)
	if err != nil {
		return err
	}
	stats, err := h.r.Stats(ctx)
	if err != nil {
		return err
	}
	committed, missing := 0, 0
	for after := h.cursor; ; {
		p, err := l.Events(ctx, merchant, after, daodian.MaxEventsPage)
		if err != nil {
			return err
		}
		if len(p.Events) == 0 {
			break
		}
		for _, e := range p.Events {
			if !got[e.ID] {
				missing++
			}
		}
		committed += len(p.Events)
		after = p.NextAfter
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out["webhook_receiver"] = h.r.Mode
	out["webhook_lag_max_s"] = round3(h.maxLag)
	out["webhook_lag_end_s"] = round3(h.endLag)
	out["webhook_lag_samples"] = h.scrapes
	out["webhook_events"] = committed
	out["webhook_received"] = stats.Events
	out["webhook_deliveries"] = stats.Deliveries
	out["webhook_bad_signatures"] = stats.Bad
	if h.r.Mode == bench.ReceiverFast {
		out["webhook_drain_s"] = round3(h.drainS)
		out["webhook_missing"] = missing
	}
	return nil
}

// print writes the webhook's line of the text report.
func (h *benchHook) print(w io.Writer, out map[string]any) {
	var b strings.Builder
	fmt.Fprintf(&b, "webhook  %s receiver: lag max %.2f s, at the end %.2f s; %v events committed, %v received (%v deliveries)",
		h.r.Mode, out["webhook_lag_max_s"], out["webhook_lag_end_s"], out["webhook_events"], out["webhook_received"], out["webhook_deliveries"])
	if h.r.Mode == bench.ReceiverFast {
		fmt.Fprintf(&b, ", drained %.2f s after the load, %v missing", out["webhook_drain_s"], out["webhook_missing"])
	}
	fmt.Fprintln(w, b.String())
}

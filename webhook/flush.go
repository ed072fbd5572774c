package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/daodian/daodian"
)

// flusher gathers the workers' results and writes them in one store Update
// per Config.Flush: a cursor per webhook (the furthest), its retry state (the
// latest), its attempts (every failed one, the latest DeliveredPerFlush
// successful ones) and its redeliveries done. Every so often the same Update
// prunes a webhook's attempts to Config.KeepAttempts.
type flusher struct {
	d *Deliverer

	mu      sync.Mutex
	pending map[string]*pendingUpdate

	// Per webhook: attempts written since its last pruning, and when that was.
	// Touched by the flushing goroutine only.
	sincePrune map[string]int
	lastPrune  map[string]time.Time
}

type pendingUpdate struct {
	u         daodian.DeliveryUpdate
	delivered int // successful attempts in u.Attempts
}

// pruneEvery is the longest a webhook with new attempts goes unpruned.
const pruneEvery = time.Minute

func newFlusher(d *Deliverer) *flusher {
	return &flusher{d: d, pending: map[string]*pendingUpdate{}, sincePrune: map[string]int{}, lastPrune: map[string]time.Time{}}
}

// add records a result of a webhook: a cursor to move to (""), a retry state
// (nil: unchanged), an attempt (nil: none), a redelivery done ("").
func (f *flusher) add(webhookID, cursor string, head *daodian.HeadState, a *daodian.DeliveryAttempt, redelivered string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pending[webhookID]
	if p == nil {
		p = &pendingUpdate{u: daodian.DeliveryUpdate{WebhookID: webhookID}}
		f.pending[webhookID] = p
	}
	p.merge(cursor, head, redelivered)
	if a != nil {
		p.addAttempt(*a, f.d.cfg.DeliveredPerFlush)
	}
}

func (p *pendingUpdate) merge(cursor string, head *daodian.HeadState, redelivered string) {
	if daodian.IDAfter(cursor, p.u.Cursor) {
		p.u.Cursor = cursor
	}
	if head != nil {
		h := *head
		p.u.Head = &h
	}
	if redelivered != "" {
		p.u.Redelivered = append(p.u.Redelivered, redelivered)
	}
}

// addAttempt appends an attempt; beyond perFlush successful ones, the oldest
// successful one goes, and beyond maxPendingAttempts the oldest of any kind.
func (p *pendingUpdate) addAttempt(a daodian.DeliveryAttempt, perFlush int) {
	if a.Outcome == daodian.Delivered {
		if p.delivered >= perFlush {
			for i := range p.u.Attempts {
				if p.u.Attempts[i].Outcome == daodian.Delivered {
					p.u.Attempts = append(p.u.Attempts[:i], p.u.Attempts[i+1:]...)
					p.delivered--
					break
				}
			}
		}
		p.delivered++
	}
	if len(p.u.Attempts) >= maxPendingAttempts {
		if p.u.Attempts[0].Outcome == daodian.Delivered {
			p.delivered--
		}
		p.u.Attempts = p.u.Attempts[1:]
	}
	p.u.Attempts = append(p.u.Attempts, a)
}

// loop flushes every Config.Flush until stop is closed.
func (f *flusher) loop(stop <-chan struct{}) {
	t := time.NewTicker(f.d.cfg.Flush)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), f.d.cfg.Timeout)
		if err := f.flush(ctx); err != nil {
			f.d.logErr(ctx, "webhooks: writing the delivery results failed; they are kept and written later", err)
		}
		cancel()
	}
}

// flush writes what is pending in one Update; on failure it is kept to be
// written with the next results.
func (f *flusher) flush(ctx context.Context) error {
	f.mu.Lock()
	batch := f.pending
	f.pending = map[string]*pendingUpdate{}
	f.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	now := f.d.clock.Now()
	var prune []string
	for id, p := range batch {
		f.sincePrune[id] += len(p.u.Attempts)
		if f.sincePrune[id] > 0 && (f.sincePrune[id] >= f.d.cfg.KeepAttempts/10 || now.Sub(f.lastPrune[id]) >= pruneEvery) {
			prune = append(prune, id)
		}
	}
	err := f.d.store.Update(ctx, func(tx daodian.Tx) error {
		for _, p := range batch {
			if _, err := tx.SaveDelivery(ctx, &p.u); err != nil {
				return err
			}
		}
		for _, id := range prune {
			if _, err := tx.PruneAttempts(ctx, id, f.d.cfg.KeepAttempts, now.Add(-f.d.cfg.KeepFailedFor)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.restore(batch)
		return err
	}
	for _, id := range prune {
		f.sincePrune[id], f.lastPrune[id] = 0, now
	}
	return nil
}

// restore puts back a batch that could not be written, before what was added
// since.
func (f *flusher) restore(batch map[string]*pendingUpdate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, old := range batch {
		newer := f.pending[id]
		f.pending[id] = old
		if newer == nil {
			continue
		}
		old.merge(newer.u.Cursor, newer.u.Head, "")
		old.u.Redelivered = append(old.u.Redelivered, newer.u.Redelivered...)
		for _, a := range newer.u.Attempts {
			old.addAttempt(a, f.d.cfg.DeliveredPerFlush)
		}
	}
}

package sqlite

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daodian/daodian"
)

// Identifiers handed out by NewID: 19 decimal digits, from idBase up.
const (
	idBase uint64 = 2_100_000_000_000_000_000
	idMax  uint64 = 9_999_999_999_999_999_999
	// idBlock is how far ahead of the ids in use the persisted high-water mark
	// is moved, so that it is written once per idBlock ids rather than per id.
	idBlock = 1000
)

// States of an op. The writer claims an op (queued → running) before it runs
// it; a caller whose context ends first withdraws it (queued → cancelled) and
// returns at once. Whoever wins the swap decides, so an Update never reports a
// cancellation for an op that ran.
const (
	opQueued int32 = iota
	opRunning
	opCancelled
)

// op is one Update waiting for, or running on, the writer.
type op struct {
	ctx   context.Context
	fn    func(daodian.Tx) error
	state atomic.Int32
	done  chan error // buffered: the writer never blocks answering
	// err is fn's error, held until the batch is durable (see runBatch).
	err error
}

var opPool = sync.Pool{New: func() any { return &op{done: make(chan error, 1)} }}

func getOp(ctx context.Context, fn func(daodian.Tx) error) *op {
	o := opPool.Get().(*op)
	o.ctx, o.fn, o.err = ctx, fn, nil
	o.state.Store(opQueued)
	return o
}

// putOp recycles an op whose answer has been received.
func putOp(o *op) {
	o.ctx, o.fn = nil, nil
	opPool.Put(o)
}

func (o *op) claim() bool { return o.state.CompareAndSwap(opQueued, opRunning) }

// writer owns the write connection. It takes the first queued op, drains what
// else is queued (up to maxBatch, waiting at most linger for more), and runs
// them all in one transaction, each under its own savepoint, with one COMMIT —
// one fsync — for the batch. Ops run one after the other on one connection, so
// each sees the effects of those before it: that serialisation is the whole of
// the store's concurrency control.
type writer struct {
	s        *session
	queue    chan *op
	maxBatch int
	linger   time.Duration
	onCommit func(batchSize int, dur time.Duration)
	sync     *syncer // nil with Options.SerialSync: COMMIT itself is durable
	ckpt     *checkpointer
	// tail is set by the checkpointer when the WAL should restart: the writer
	// then checkpoints the remainder itself before its next batch.
	tail atomic.Bool
	// closed is set once the queue is closed and drained: the loop ends after
	// the batch in hand.
	closed bool

	// NewID state, touched only by the writer goroutine. The writer hands out
	// ids from a block [next, limit) that it reserved by raising
	// meta.id_limit; the reservation is read and raised inside a write
	// transaction and committed with the batch that used its first ids, so two
	// Stores on one file (Options.Shared) never reserve the same block, and a
	// restarted Store starts above every id handed out before. next never goes
	// back, so an aborted batch's ids are not reused by this process either.
	next, limit uint64
	limitDirty  bool

	// mem is the writer's memory of the hot rows (mem.go); nil on a Shared
	// Store, which writes every statement through.
	mem     *mem
	stage   *stage // the Update's, reset for each
	flusher flusher
	// issued are the ids NewID handed out during the current batch: a use
	// inserted under one of them needs no lookup to know it is new.
	issued map[string]bool
}

func (w *writer) newID() (string, error) {
	if w.next >= w.limit {
		if err := w.reserveIDs(); err != nil {
			return "", err
		}
	}
	id := strconv.FormatUint(w.next, 10)
	w.next++
	if w.mem != nil {
		w.issued[id] = true
	}
	return id, nil
}

// reserveIDs reserves the next block of ids, above any block another Store
// on the file has committed.
func (w *writer) reserveIDs() error {
	row, err := w.s.queryRow(w.s.w.getMeta, 1, metaIDLimit)
	switch {
	case err == errNoRow:
	case err != nil:
		return w.s.fail(err)
	default:
		stored, perr := strconv.ParseUint(asStr(row[0]), 10, 64)
		if perr != nil {
			return fmt.Errorf("sqlite: bad %s %q: %w", metaIDLimit, asStr(row[0]), perr)
		}
		w.next = max(w.next, stored)
	}
	if w.next > idMax {
		return errors.New("sqlite: identifier space exhausted")
	}
	w.limit = min(w.next+idBlock, idMax+1)
	w.limitDirty = true
	return nil
}

// dropReservation forgets an id block whose reservation was not committed:
// another Store may take it now, so the next id comes from a fresh one.
func (w *writer) dropReservation() {
	if w.limitDirty {
		w.limit = w.next
	}
}

// loop is the writer goroutine; it returns once the queue is closed and empty.
func (w *writer) loop(done chan<- struct{}) {
	defer close(done)
	batch := make([]*op, 0, w.maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		o, ok := <-w.queue
		if !ok {
			return
		}
		batch = append(batch[:0], o)
		w.closed = !w.fill(&batch, timer)
		batch = w.process(batch)
		clear(batch) // let answered ops and their closures be collected
		if w.closed {
			return
		}
	}
}

// fill adds what is already queued to the batch, then waits up to linger for
// more; it reports false once the queue is closed and drained.
func (w *writer) fill(batch *[]*op, timer *time.Timer) bool {
drain:
	for len(*batch) < w.maxBatch {
		select {
		case o, ok := <-w.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, o)
		default:
			break drain
		}
	}
	if w.linger <= 0 || len(*batch) >= w.maxBatch {
		return true
	}
	timer.Reset(w.linger)
	defer timer.Stop()
	for len(*batch) < w.maxBatch {
		select {
		case o, ok := <-w.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, o)
		case <-timer.C:
			return true
		}
	}
	return true
}

// process runs a batch; ops that an aborted transaction left unstarted run in
// a fresh one. It returns the batch as extended while it ran (see extend), so
// that the caller can clear every slot used.
func (w *writer) process(batch []*op) []*op {
	all := batch
	for len(batch) > 0 {
		var rest []*op
		err := w.s.raw(func() error {
			rest, all = w.runBatch(batch, all)
			return nil
		})
		if err != nil {
			// The connection could not be had: nothing ran.
			terr := daodian.Transient(fmt.Errorf("sqlite: writer connection: %w", err))
			for _, o := range batch {
				if o != nil && o.claim() {
					o.done <- terr
				}
			}
			return all
		}
		batch = rest
	}
	return all
}

// extend waits for one more op to add to the open batch while the syncer is
// busy with the previous one, and returns nil once it is idle (commit now:
// the disk is free), the batch is full, or the queue is closed. Waiting costs
// no latency: the batch could not become durable before the running
// fdatasync ends anyway, and each op run meanwhile is one fewer for the next
// batch, whose pages it shares (fewer WAL frames, one fdatasync).
func (w *writer) extend(n int) *op {
	if w.sync == nil || w.closed || n >= w.maxBatch {
		return nil
	}
	for w.sync.busy.Load() {
		select {
		case o, ok := <-w.queue:
			if !ok {
				w.closed = true
				return nil
			}
			return o
		case <-w.sync.idle:
			// Re-check busy: the signal may be left over from an earlier flush.
		}
	}
	return nil
}

// runBatch runs one transaction over the batch, extended with what extend
// adds. Answers: an op whose fn failed gets its own error at once (its
// savepoint is rolled back, so it wrote nothing whatever happens next); the
// others get nil after COMMIT, or the commit error, transient. If the
// transaction breaks half-way, the ops already run get a transient error and
// the ops not yet started are returned to run again. all is the slice batch
// came from; it is returned with the ops added to it.
func (w *writer) runBatch(batch, all []*op) (rest, _ []*op) {
	s := w.s
	s.broken = nil
	if w.sync != nil {
		if err := w.sync.failure(); err != nil {
			terr := daodian.Transient(err)
			for _, o := range batch {
				if o != nil && o.claim() {
					o.done <- terr
				}
			}
			return nil, all
		}
	}
	if w.tail.Swap(false) {
		w.checkpointTail()
	}
	if w.mem != nil {
		w.mem.rotate()
	}
	start := time.Now()
	if _, err := s.exec(s.w.begin); err != nil {
		terr := daodian.Transient(fmt.Errorf("sqlite: begin: %w", err))
		s.broken = nil
		for _, o := range batch {
			if o != nil && o.claim() {
				o.done <- terr
			}
		}
		return nil, all
	}
	if err := w.checkFile(); err != nil {
		w.abort(batch, daodian.Transient(err))
		return nil, all
	}
	ran, succeeded := 0, 0
	for i := 0; ; i++ {
		if i == len(batch) {
			// batch is the tail of all, so appending to it fills all's next
			// slot (all has room for maxBatch ops, and extend stops there).
			o := w.extend(len(all))
			if o == nil {
				break
			}
			batch = append(batch, o)
			all = all[:len(all)+1]
		}
		o := batch[i]
		if o == nil {
			continue
		}
		if !o.claim() {
			batch[i] = nil // withdrawn by its caller
			continue
		}
		if err := o.ctx.Err(); err != nil {
			o.done <- daodian.Transient(err)
			batch[i] = nil
			continue
		}
		ran++
		err := w.runOp(o)
		if s.broken != nil {
			abortErr := daodian.Transient(fmt.Errorf("sqlite: batch aborted: %w", s.broken))
			w.rollback()
			if err == nil {
				err = abortErr
			}
			o.done <- err
			batch[i] = nil
			for _, p := range batch[:i] {
				if p != nil {
					p.done <- abortErr
				}
			}
			return batch[i+1:], all
		}
		if err != nil {
			// Answered with the batch, not now: a refusal may rest on what
			// the ops before it in this batch wrote, or on the previous batch,
			// and must not be seen before they are durable — a reader told
			// "not enough units" must not then find them still there.
			o.err = err
			continue
		}
		succeeded++
	}
	if succeeded == 0 && !w.limitDirty {
		// Nothing to keep: no commit. The answers wait only for what was
		// committed before, if it is not yet durable.
		w.rollback()
		if w.sync != nil {
			if seq := w.sync.committed.Load(); w.sync.synced.Load() < seq {
				w.sync.push(syncRecord{seq: seq, ops: live(batch)})
				return nil, all
			}
		}
		answer(batch)
		return nil, all
	}
	if w.mem != nil {
		if err := w.flusher.flush(s, &w.mem.pend); err != nil {
			w.abort(batch, daodian.Transient(err))
			return nil, all
		}
	}
	limitWritten := false
	if w.limitDirty {
		if _, err := s.exec(s.w.raiseIDLimit, strconv.FormatUint(w.limit, 10)); err != nil {
			w.abort(batch, daodian.Transient(fmt.Errorf("sqlite: persist id limit: %w", err)))
			return nil, all
		}
		limitWritten = true
	}
	var seq uint64
	if w.sync != nil {
		seq = w.sync.begin() // before COMMIT: see syncer.committed
	}
	_, err := s.exec(s.w.commit)
	if err != nil {
		w.abort(batch, daodian.Transient(fmt.Errorf("sqlite: commit: %w", err)))
		if w.sync != nil {
			w.sync.push(syncRecord{seq: seq}) // let Views waiting on seq go
		}
		return nil, all
	}
	if limitWritten {
		w.limitDirty = false
	}
	if w.mem != nil {
		w.mem.pend.reset()
		clear(w.issued)
	}
	if w.ckpt != nil {
		w.ckpt.poke()
	}
	if w.sync != nil {
		w.sync.push(syncRecord{seq: seq, ops: live(batch), ran: ran, start: start})
		return nil, all
	}
	if w.onCommit != nil {
		w.onCommit(ran, time.Since(start))
	}
	answer(batch)
	return nil, all
}

// live returns the ops of a batch still waiting for their answer.
func live(batch []*op) []*op {
	ops := make([]*op, 0, len(batch))
	for _, o := range batch {
		if o != nil {
			ops = append(ops, o)
		}
	}
	return ops
}

// answer gives each op of a durable batch its own outcome.
func answer(batch []*op) {
	for _, o := range batch {
		if o != nil {
			o.done <- o.err
		}
	}
}

// checkpointTail checkpoints what the background checkpointer has not yet
// copied, so that the next write transaction can restart the WAL. It runs on
// the writer, between batches, because only there is the log not growing.
func (w *writer) checkpointTail() {
	row, err := w.s.queryRow(w.s.checkpoint, 3)
	switch {
	case err != nil:
		if w.ckpt != nil {
			w.ckpt.logf(fmt.Errorf("sqlite: checkpoint: %w", err))
		}
	case asInt(row[0]) != 0:
		// The background checkpoint holds the checkpoint lock: try again
		// before the next batch.
		w.tail.Store(true)
	}
}

// runOp runs one Update under its own savepoint, which its first write through
// a statement opens, and, with memory, on a stage of its own (mem.go) that
// becomes memory's when it succeeds.
func (w *writer) runOp(o *op) error {
	s := w.s
	tx := &writeTx{readTx: readTx{s: s}, w: w}
	if w.mem != nil {
		w.stage.reset()
		tx.st = w.stage
	}
	err := call(o.fn, tx)
	tx.done = true
	if err == nil && tx.st != nil && s.broken == nil {
		defer func() {
			if s.broken == nil {
				w.mem.commitStage(tx.st)
			}
		}()
	}
	if s.broken != nil || !tx.savepoint {
		return err
	}
	if err != nil {
		// Undo this op only; the batch goes on.
		if _, e := s.exec(s.w.rollbackTo); e != nil {
			s.fail(e)
			return err
		}
		if _, e := s.exec(s.w.release); e != nil {
			s.fail(e)
		}
		return err
	}
	if _, e := s.exec(s.w.release); e != nil {
		return s.fail(e)
	}
	return nil
}

// call runs fn, turning a panic into an error so that one bad Update fails
// alone instead of killing the writer.
func call(fn func(daodian.Tx) error, tx daodian.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlite: Update function panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return fn(tx)
}

// rollback ends the batch's transaction, whatever state it is in. Memory may
// hold the batch's writes: it is forgotten.
func (w *writer) rollback() {
	w.dropReservation()
	if w.mem != nil {
		w.mem.reset()
		clear(w.issued)
	}
	w.s.broken = nil
	// An error means no transaction was open (SQLite already rolled it back).
	_, _ = w.s.exec(w.s.w.rollback)
}

// abort rolls the batch back and answers every op still waiting with err.
func (w *writer) abort(batch []*op, err error) {
	w.rollback()
	for _, o := range batch {
		if o != nil {
			o.done <- err
		}
	}
}

// checkFile drops memory if another process has written the file since the
// writer last saw it. It runs in the batch's transaction, under the write lock,
// so that no other write can come between the check and the batch.
func (w *writer) checkFile() error {
	if w.mem == nil {
		return nil
	}
	row, err := w.s.queryRow(w.s.w.dataVersion, 1)
	if err != nil {
		return w.s.fail(err)
	}
	if v := asInt(row[0]); v != w.mem.version {
		if w.mem.version != -1 {
			w.mem.reset()
		}
		w.mem.version = v
	}
	return nil
}

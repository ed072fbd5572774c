package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daodian/daodian"
)

// Concurrent decisions in one transaction.
//
// A decision's call alone costs PostgreSQL a transaction and a round trip on
// top of its statements, and the gateway a round trip; shared by a batch, they
// roughly halved what each spends per request under load (BENCHMARKS.md,
// machine J). So Decide hands its call to a batcher, which sends the calls
// waiting together as one pipeline (pgx.Batch): one round trip, one implicit
// transaction, one commit, as the embedded store's writer commits a batch.
//
// There are no goroutines of its own: the caller that finds a lane free leads
// a batch of whatever is waiting (its own call among them, or not), and the
// others wait for their answers. A lone call is made as before, on its own.
//
// A batch takes its locks in one order, so that no deadlock can arise: before
// its calls, one statement locks every ticket of every sub-order they name, in
// id order; the calls then find their tickets held by their own transaction
// and never wait. Other transactions wait only in id order too (the functions
// lock a sub-order's tickets in id order, or one ticket with the others
// skipped if held; see migrationUseLocks).
//
// A batch's calls share its fate. If it fails on the server (a statement
// raised, so the transaction rolled back) or could not be sent, nothing of it
// happened, and each call is made again on its own, where its failure is
// handled as before. If its outcome is unknown, every call of it is a
// transient failure, as a lone call's would be.

// decideLanes is how many batches may be in flight at once: while one commits
// (its fsync), the next runs its statements.
const decideLanes = 2

// maxDecideBatch bounds the calls of one batch, and so the locks it holds and
// the time its first call waits for its last.
const maxDecideBatch = 64

// sqlLockTickets locks the tickets of every sub-order that a batch's calls name
// by code ($1) or by id ($2), in id order. The sub-orders are an array computed
// first, not a join: with IN (subquery), the generic plan PostgreSQL settles on
// for a prepared statement joined every ticket of the ledger by hash, a scan of
// the whole table per batch; with = ANY(ARRAY(…)) it can only look them up in
// the sub-order index (TestLockTicketsPlan).
const sqlLockTickets = `SELECT id FROM tickets WHERE sub_order_no = ANY(ARRAY(
	SELECT sub_order_no FROM tickets WHERE code = ANY($1) OR id = ANY($2))) ORDER BY id FOR UPDATE`

// classAlone is a batch's failure that left nothing done: its calls are made
// again, each on its own.
const classAlone errClass = -1

// call is one decision waiting in a batcher.
type call struct {
	ctx context.Context
	st  *decideStmt

	out   daodian.Decided
	class errClass
	err   error
	done  chan struct{}
}

// batcher groups the calls of concurrent decisions.
type batcher struct {
	mu      sync.Mutex
	waiting []*call
	// lanes holds a token per batch in flight.
	lanes chan struct{}
}

func newBatcher() *batcher {
	return &batcher{lanes: make(chan struct{}, decideLanes)}
}

// decideBatched makes the call st in a batch, or on its own if its batch
// failed having done nothing, and returns its outcome as decideOnce does.
func (s *Store) decideBatched(ctx context.Context, st *decideStmt) (daodian.Decided, errClass, error) {
	b := s.batch
	c := &call{ctx: ctx, st: st, done: make(chan struct{})}
	b.mu.Lock()
	b.waiting = append(b.waiting, c)
	b.mu.Unlock()
	for {
		select {
		case <-c.done:
			return s.outcome(c)
		case b.lanes <- struct{}{}:
			b.mu.Lock()
			n := min(len(b.waiting), maxDecideBatch)
			calls := make([]*call, n)
			copy(calls, b.waiting)
			rest := copy(b.waiting, b.waiting[n:])
			clear(b.waiting[rest:]) // no reference kept to a call taken
			b.waiting = b.waiting[:rest]
			b.mu.Unlock()
			if n == 0 {
				// Nothing waits, so this call is in a batch in flight: wait
				// for it rather than take the free lane again and again.
				<-b.lanes
				<-c.done
				return s.outcome(c)
			}
			s.runBatch(calls)
			<-b.lanes
		}
	}
}

// outcome is c's, its batch done: made again on its own if the batch did
// nothing.
func (s *Store) outcome(c *call) (daodian.Decided, errClass, error) {
	if c.class == classAlone {
		return s.decideOnce(c.ctx, c.st)
	}
	return c.out, c.class, c.err
}

// runBatch makes calls and closes each one's done.
func (s *Store) runBatch(calls []*call) {
	defer func() {
		for _, c := range calls {
			close(c.done)
		}
	}()
	// Its own slice, not calls[:0]: filtering in place would leave the
	// deferred loop above closing some calls twice and others never.
	live := make([]*call, 0, len(calls))
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil {
			// The caller is gone: nothing was sent, nothing is decided.
			c.class, c.err = classTransient, fmt.Errorf("postgres: not decided: %w", err)
			continue
		}
		live = append(live, c)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		c := live[0]
		c.out, c.class, c.err = s.decideOnce(c.ctx, c.st)
		return
	}
	class, err := s.sendBatch(live)
	if err != nil {
		for _, c := range live {
			c.class, c.err = class, err
		}
	}
}

// sendBatch sends calls as one pipeline, one transaction, and fills in their
// answers; on failure it returns how every call of it is to be handled.
func (s *Store) sendBatch(calls []*call) (errClass, error) {
	// The batch runs detached from its callers: once sent, its outcome must be
	// read whoever left. commitDurably bounds it.
	ctx := context.Background()
	conn, err := s.acquire(ctx)
	if err != nil {
		return classify(err), err
	}
	// A connection whose batch failed mid-way is closed, and Release drops it.
	defer conn.Release()
	codes, ids := batchTickets(calls)
	batch := &pgx.Batch{}
	batch.Queue(sqlLockTickets, codes, ids)
	for _, c := range calls {
		batch.Queue(c.st.sql, c.st.args...)
	}
	err = s.commitDurably(ctx, conn.Conn(), func(cctx context.Context) error {
		br := conn.SendBatch(cctx, batch)
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return err
		}
		for _, c := range calls {
			if err := br.QueryRow().Scan(&c.out.Answer, &c.out.Replayed, &c.out.Conflict); err != nil {
				_ = br.Close()
				return err
			}
		}
		// The implicit transaction commits at the pipeline's end: only Close
		// tells whether it did.
		return br.Close()
	})
	if err == nil {
		for _, c := range calls {
			c.class = classPermanent
		}
		return classPermanent, nil
	}
	if !errors.Is(err, errUnreplicated) && (isServerError(err) || pgconn.SafeToRetry(err)) {
		return classAlone, err
	}
	return decideErr(err)
}

// batchTickets returns the ticket codes and ids that calls name.
func batchTickets(calls []*call) (codes, ids []string) {
	for _, c := range calls {
		if c.st.code != "" {
			codes = append(codes, c.st.code)
		}
		if c.st.ticketID != "" {
			ids = append(ids, c.st.ticketID)
		}
	}
	return codes, ids
}

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Commits and synchronous replication.
//
// With a synchronous standby, PostgreSQL flushes a commit locally, then waits for
// the standby to confirm it before answering. Two things can cut that wait short
// and still let the commit look like a success:
//
//   - A cancel request (pg_cancel_backend, or a driver that turns the end of a
//     context into one). The server then answers COMMIT normally, after a WARNING
//     "canceling wait for synchronous replication due to user request … committed
//     locally, but might not have been replicated to the standby". The
//     transaction becomes visible on the primary, and a failover loses it.
//   - A termination: the same WARNING, then the connection is closed. The client
//     sees a lost connection, which is "outcome unknown" already.
//
// commitDurably closes both. No context of a caller reaches the commit. When its
// own bound passes, pgx drops the connection without reading an answer (Open
// installs its deadline handler, where a cancel-request handler would read the
// cancelled wait's success); it also sends a cancel request as it closes, so the
// server may commit locally, but the caller has its outcome as unknown. And the
// WARNING turns any success that follows it into errUnreplicated, which Update
// reports as a transient failure: nothing is answered, nothing cached, and the
// caller's retry under the same request id decides. That retry cannot answer
// from a locally committed record while the standby is still missing: the
// ledger locks the ticket's row before it reads the record, which gives the
// transaction an id, so its own COMMIT waits for the standby to confirm a WAL
// position past the earlier commit.

// commitWatchKey keys a connection's commitWatch in pgconn.PgConn.CustomData.
const commitWatchKey = "daodian.commitWatch"

// commitWatch collects, while a statement that commits runs, the notice that says
// the wait for the synchronous standby was cut short.
type commitWatch struct {
	unreplicated *pgconn.Notice
}

// onNotice is the notice handler of every connection of the store. It runs on the
// goroutine that reads the connection's answers, which is the one running the
// statement, so the watch needs no lock.
func onNotice(c *pgconn.PgConn, n *pgconn.Notice) {
	w, ok := c.CustomData()[commitWatchKey].(*commitWatch)
	if ok && w.unreplicated == nil && syncRepCutShort(n) {
		w.unreplicated = n
	}
}

// syncRepCutShort reports whether a notice comes from the synchronous replication
// wait of a commit. Every notice it sends to the client says that the wait ended
// before the standby confirmed. The message and its SQLSTATE (01000 for a cancel
// request) depend on lc_messages or say little; the routine and file names are
// never translated.
func syncRepCutShort(n *pgconn.Notice) bool {
	return n.Routine == "SyncRepWaitForLSN" || n.File == "syncrep.c"
}

// errUnreplicated reports a commit the server made locally while telling that its
// synchronous standby might not have it.
var errUnreplicated = errors.New("the server committed locally but stopped waiting for the synchronous standby, so the commit might not survive a failover")

// commitDurably runs commit, a call that ends with a commit: COMMIT (or a
// pipeline ending with it), or any statement in autocommit, where the server
// commits when the statement ends and reports a cut-short replication wait the
// same way, before the statement's ReadyForQuery. commit must read its answers to
// the end (a pgx Exec, a closed batch or result).
//
// commit runs under a context detached from ctx: a caller that hangs up or whose
// deadline passes while the commit waits for the standby must not turn the commit
// into one of unknown durability. Its own bound is Options.CommitTimeout; when it
// passes, the connection is dropped without reading an answer, which leaves the
// outcome unknown, never a cut-short success.
//
// It returns commit's error, or errUnreplicated when commit succeeded but the
// server said the standby might not have the commit.
func (s *Store) commitDurably(ctx context.Context, c *pgx.Conn, commit func(context.Context) error) error {
	cctx := context.WithoutCancel(ctx)
	if s.opts.CommitTimeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(cctx, s.opts.CommitTimeout)
		defer cancel()
	}
	data := c.PgConn().CustomData()
	w := &commitWatch{}
	data[commitWatchKey] = w
	defer delete(data, commitWatchKey)
	err := commit(cctx)
	if err == nil && w.unreplicated != nil {
		return fmt.Errorf("%w (server: %s)", errUnreplicated, w.unreplicated.Message)
	}
	return err
}

// Replication is what the server says about how far a commit is durable.
type Replication struct {
	// SynchronousCommit is the store's sessions' synchronous_commit (Open sets
	// it to on).
	SynchronousCommit string
	// SynchronousStandbyNames is the server's synchronous_standby_names: the
	// standbys a commit waits for; empty when it waits for none.
	SynchronousStandbyNames string
}

// Synchronous reports whether a commit waits for a synchronous standby to flush
// it, so that a failover to that standby loses no acknowledged commit.
func (r Replication) Synchronous() bool {
	switch r.SynchronousCommit {
	case "on", "remote_apply":
		return r.SynchronousStandbyNames != ""
	}
	return false
}

// Replication reads the replication settings the store's commits run under, on
// the server the store is connected to now (after a failover, the new primary,
// whose settings may differ).
func (s *Store) Replication(ctx context.Context) (Replication, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return Replication{}, err
	}
	defer conn.Release()
	var r Replication
	err = conn.QueryRow(ctx, "SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names')").
		Scan(&r.SynchronousCommit, &r.SynchronousStandbyNames)
	if err != nil {
		return Replication{}, wrapErr("read replication settings", err)
	}
	return r, nil
}

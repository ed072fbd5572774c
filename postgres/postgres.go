// Package postgres is the PostgreSQL store of the ledger: a daodian.Store on a pgx
// connection pool, for one or several daodian processes serving the same database.
//
// Correctness across processes comes only from the database. Inside Update, the
// ticket-returning reads lock the rows they return (SELECT … FOR UPDATE), so two
// transactions on one ticket are serialised by PostgreSQL's row lock whichever
// process runs them; unique constraints back ErrDuplicate; identifiers come from a
// sequence. Transactions run at READ COMMITTED: the ticket lock serialises the work on
// a ticket, and every statement sees the latest committed rows, which is what a
// transaction that waited for the lock needs to see.
//
// Every Update touches the rows of a single ticket plus its idempotency row (a
// group-buy use, spanning the tickets of one sub-order, is the one exception), so
// the schema can be distributed by ticket_id; see DISTRIBUTION.md.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/seal"
)

// Defaults of Options.
const (
	// DefaultStatementTimeout bounds one statement on the server, including the time
	// it waits for a row lock. A ledger statement takes milliseconds; one that takes
	// seconds is stuck behind something, and the caller is better served by a
	// transient error it can retry than by an unbounded wait.
	DefaultStatementTimeout = 5 * time.Second
	// DefaultAcquireTimeout bounds the wait for a free pooled connection.
	DefaultAcquireTimeout = 5 * time.Second
	// DefaultIdleInTransactionTimeout makes the server end a session that holds a
	// transaction open without running a statement, so that a hung process cannot
	// keep a ticket locked for ever.
	DefaultIdleInTransactionTimeout = 30 * time.Second
	// DefaultRetries is how many times Update re-runs fn after a retryable failure.
	DefaultRetries = 5
	// DefaultCommitTimeout bounds a COMMIT, which runs detached from the caller's
	// context (see commitDurably). A commit takes milliseconds, or as long as the
	// synchronous standby takes to confirm it; one that waits longer is waiting
	// for a standby that is gone, and the caller gets a transient error rather
	// than an unbounded wait.
	DefaultCommitTimeout = 5 * time.Second
)

// Options tunes a Store. The zero value selects every default.
type Options struct {
	// MaxConns is the size of the connection pool; 0 means 4×GOMAXPROCS (at least
	// 4). Every Update and View holds one connection for its whole duration.
	MaxConns int
	// StatementTimeout is the server-side statement_timeout of every session; 0
	// means DefaultStatementTimeout, a negative value disables it. A statement that
	// times out, lock waits included, fails the call with a transient error.
	StatementTimeout time.Duration
	// AcquireTimeout bounds the wait for a free connection when the pool is
	// exhausted; 0 means DefaultAcquireTimeout, a negative value waits as long as
	// the caller's context allows. Exhaustion is reported as a transient error.
	AcquireTimeout time.Duration
	// IdleInTransactionTimeout is the server-side
	// idle_in_transaction_session_timeout; 0 means
	// DefaultIdleInTransactionTimeout, a negative value disables it.
	IdleInTransactionTimeout time.Duration
	// Retries bounds how many times Update re-runs fn after a serialisation
	// failure, a deadlock, a lost connection or an ErrDuplicate; 0 means
	// DefaultRetries, a negative value disables retries.
	Retries int
	// SecretKeyFile is the file of the key the app secrets are sealed with
	// (SPEC §5.4); required, and the same file for every process on one
	// database. A missing file is created, mode 0600, with a new random key,
	// unless the database's secrets are already sealed: then Open fails, as it
	// does with a file holding another key.
	SecretKeyFile string
	// CommitTimeout bounds a COMMIT once sent, including its wait for a
	// synchronous standby; 0 means DefaultCommitTimeout, a negative value waits
	// as long as the server takes. The caller's context does not bound it. A
	// commit that outlives it fails with a transient error, its outcome unknown.
	CommitTimeout time.Duration
	// NumberRecordsEvery, if positive, runs a numbering pass of the records
	// (SequenceRecords) at that interval until Close, which bounds how long a
	// committed record stays out of records pages and event feeds. A server
	// sets it; a one-off command has no need (the ledger numbers before it
	// lists). Failures are logged to Logger, at most once per streak.
	NumberRecordsEvery time.Duration
	// RulesInGo makes the ledger run the use, the reversal and the refund
	// through Update, with its Go rules, a transaction of several round trips,
	// instead of one call of the store's server-side function each (Decide).
	// Both do the same; the Go path is kept to compare them (the differential
	// test, benchmarks).
	RulesInGo bool
	// Logger receives the failures of background work; default slog.Default().
	Logger *slog.Logger

	// tracer, set by tests only, sees every statement of the store's
	// connections.
	tracer pgx.QueryTracer
}

func (o Options) withDefaults() Options {
	if o.MaxConns <= 0 {
		o.MaxConns = max(4, 4*runtime.GOMAXPROCS(0))
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = DefaultStatementTimeout
	}
	if o.AcquireTimeout == 0 {
		o.AcquireTimeout = DefaultAcquireTimeout
	}
	if o.IdleInTransactionTimeout == 0 {
		o.IdleInTransactionTimeout = DefaultIdleInTransactionTimeout
	}
	if o.CommitTimeout == 0 {
		o.CommitTimeout = DefaultCommitTimeout
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	return o
}

// Store is a daodian.Store on PostgreSQL. It is safe for concurrent use, and any
// number of processes may open the same database at once.
type Store struct {
	pool *pgxpool.Pool
	opts Options
	key  *seal.Key // seals and opens app secrets

	// batch groups the calls of concurrent decisions (batch.go).
	batch *batcher

	// stop ends the background numbering; done is closed when it has.
	stop context.CancelFunc
	done chan struct{}

	// beforeCommit, when set (by tests only), runs between fn and COMMIT with the
	// connection of the transaction.
	beforeCommit func(*pgxpool.Conn)
}

var _ daodian.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string), applies the schema migrations this version knows and returns
// the store. Every session runs with synchronous_commit=on whatever the URL or the
// server say, so that a committed Update is durable.
//
// Open also loads (or, for a database without sealed secrets, creates) the secret
// key file, refuses a key that is not the one the database's secrets are sealed
// with, and seals in place the secrets of a database written before sealing
// existed.
//
// Errors never include the URL, which may hold a password.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.SecretKeyFile == "" {
		return nil, errors.New("postgres: a secret key file is required (Options.SecretKeyFile): app secrets are sealed with its key, and every process on one database uses the same file")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts passwords only on a best-effort basis for malformed URLs, so
		// say nothing about the URL's content.
		return nil, errors.New("postgres: the database URL cannot be parsed; expected postgres://user:password@host:port/database?options")
	}
	opts = opts.withDefaults()
	cfg.MaxConns = int32(min(opts.MaxConns, 1<<30))
	params := cfg.ConnConfig.RuntimeParams
	// Durability is not negotiable: success is answered only after the commit is
	// flushed (SPEC §4.4 rule 6), so override whatever the URL asked for.
	params["synchronous_commit"] = "on"
	params["statement_timeout"] = millis(opts.StatementTimeout)
	params["idle_in_transaction_session_timeout"] = millis(opts.IdleInTransactionTimeout)
	// Decide's calls run in autocommit, at the session's default isolation:
	// the functions are written for READ COMMITTED, as Update's transactions.
	params["default_transaction_isolation"] = "read committed"
	if params["application_name"] == "" {
		params["application_name"] = "daodian"
	}
	// A context that ends makes the connection's reads fail at once (pgx's
	// default since v5.6, kept explicit here), rather than sending a cancel
	// request and reading the answer: a cancel that reaches a COMMIT waiting
	// for the synchronous standby makes the server commit locally and answer
	// success (see commitDurably).
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	cfg.ConnConfig.OnNotice = onNotice
	if opts.tracer != nil {
		cfg.ConnConfig.Tracer = opts.tracer
	}
	// Keep pgx's default QueryExecModeCacheStatement: every statement text below is
	// a constant, so each connection prepares it once and then only binds.
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, opts: opts, batch: newBatcher()}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if s.key, err = s.prepareSecrets(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if opts.NumberRecordsEvery > 0 {
		bg, stop := context.WithCancel(context.Background())
		s.stop, s.done = stop, make(chan struct{})
		go s.numberRecords(bg, opts.NumberRecordsEvery)
	}
	return s, nil
}

// numberRecords runs SequenceRecords every interval until ctx ends.
func (s *Store) numberRecords(ctx context.Context, interval time.Duration) {
	defer close(s.done)
	logger := s.opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, numberingTimeout)
		_, err := s.SequenceRecords(pctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			logger.Warn("numbering records failed; committed records stay out of records pages until a pass succeeds", "err", err)
		case err == nil && failing:
			failing = false
			logger.Info("numbering records again")
		}
	}
}

// numberingTimeout bounds one background numbering pass; a backlog is numbered
// over several.
const numberingTimeout = 30 * time.Second

func millis(d time.Duration) string {
	if d < 0 {
		return "0" // PostgreSQL's "disabled"
	}
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// Ping reports whether the store can take writes: a server is reachable and it is
// a primary. A standby (in recovery) answers reads but refuses every Update, which
// happens when the URL lists it without target_session_attrs=read-write and the
// primary is down; during a failover, before the standby is promoted, Ping fails
// either way.
func (s *Store) Ping(ctx context.Context) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var standby bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return wrapErr("ping", err)
	}
	if standby {
		return daodian.Transient(errors.New("postgres: the server is a standby, which refuses writes; list every host of the cluster in the URL with target_session_attrs=read-write"))
	}
	return nil
}

// Close waits for the connections in use to be released, then closes the pool.
// Updates started after Close fail with a transient error.
func (s *Store) Close() error {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	s.pool.Close()
	return nil
}

// errUnreachable marks a connection the pool could not open: no server was
// reached, or none of the hosts takes writes (a failover before the promotion).
// It is answered as a transient failure at once, never retried inside the
// store: each attempt to connect may take up to connect_timeout per host, an
// outage lasts seconds, and the caller's retry under the same request id is
// what rides it out (the client's backoff, docs/operations.md "A failover, as
// clients see it"). Retrying here only held the request and its concurrency
// slot: on a loaded 2-core machine six attempts took 3.5 s, longer than the
// outage they were meant to outlast.
var errUnreachable = errors.New("no database server that takes writes could be reached")

// acquire takes a pooled connection, waiting at most AcquireTimeout.
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx := ctx
	if s.opts.AcquireTimeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, s.opts.AcquireTimeout)
		defer cancel()
	}
	c, err := s.pool.Acquire(actx)
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			return nil, daodian.Transient(fmt.Errorf("postgres: no database connection became free within %v (pool of %d)", s.opts.AcquireTimeout, s.opts.MaxConns))
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			// The server refused the session (authentication, an unknown
			// database, too many connections): its code says whether that lasts.
			return nil, wrapErr("acquire a connection", err)
		}
		// Anything else (no route to the server, no host that takes writes, a
		// closed pool on shutdown) may pass by the time the caller retries.
		var connectErr *pgconn.ConnectError
		if errors.As(err, &connectErr) {
			return nil, daodian.Transient(fmt.Errorf("postgres: acquire a connection: %w: %w", errUnreachable, err))
		}
		return nil, daodian.Transient(fmt.Errorf("postgres: acquire a connection: %w", err))
	}
	return c, nil
}

// View runs fn in a REPEATABLE READ READ ONLY transaction: every read of fn sees
// the same snapshot, and nothing is locked.
func (s *Store) View(ctx context.Context, fn func(tx daodian.ReadTx) error) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	t := &pgTx{c: conn.Conn(), begin: beginView, key: s.key}
	ferr := fn(t)
	// A read-only transaction has nothing to keep: always roll back.
	rollback(ctx, t)
	if ferr != nil {
		if classify(ferr) != classPermanent {
			return daodian.Transient(ferr)
		}
		return ferr
	}
	return nil
}

// Update runs fn in a READ COMMITTED transaction and commits it with
// synchronous_commit=on, so it returns nil only once the commit is durable.
//
// fn runs again, up to Options.Retries times, when the attempt failed in a way a
// fresh attempt can fix: a serialisation failure or deadlock, a connection lost
// before COMMIT, or ErrDuplicate returned by fn (a concurrent transaction inserted
// the same key first; the retry sees its row). After the last attempt the failure is
// returned wrapped with daodian.Transient, except ErrDuplicate, which is returned as
// is: by then the conflicting row is committed and visible to fn, so the duplicate
// is real and a retry by the caller cannot help.
//
// COMMIT runs under its own bound (Options.CommitTimeout), not under ctx: once sent,
// a caller that goes away does not cut it short. A COMMIT whose outcome or
// durability is unknown (the connection was lost while it ran, its bound passed,
// or the server stopped waiting for the synchronous standby) is reported as a
// transient error, never as success, and is not retried here: the ledger's
// idempotency records make the caller's retry safe.
func (s *Store) Update(ctx context.Context, fn func(tx daodian.Tx) error) error {
	lockAll := false
	for attempt := 0; ; attempt++ {
		class, err := s.updateOnce(ctx, fn, lockAll)
		switch {
		case err == nil:
			return nil
		case class == classContended && !lockAll:
			// A use met its sub-order busy: again at once, locking all of
			// it, which cannot meet it busy; not counted as a retry.
			lockAll = true
			attempt--
			continue
		case class == classPermanent:
			return err
		case class == classTransient:
			return daodian.Transient(err)
		case attempt >= s.opts.Retries:
			if class == classDuplicate {
				return err
			}
			return daodian.Transient(err)
		}
		if class == classRetry {
			// Contention or an outage: back off with full jitter so that the
			// contenders do not meet again at once. A duplicate is retried at once:
			// its winner has already committed.
			if serr := sleep(ctx, backoff(attempt)); serr != nil {
				return daodian.Transient(err)
			}
		}
		if ctx.Err() != nil {
			return daodian.Transient(err)
		}
	}
}

// updateOnce runs one attempt of Update and says how its failure may be handled.
func (s *Store) updateOnce(ctx context.Context, fn func(tx daodian.Tx) error, lockAll bool) (errClass, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return classify(err), err
	}
	// Release returns the connection to the pool only if it is idle outside a
	// transaction; one left in any other state (a failed rollback, a panic in fn)
	// is closed, which makes the server roll back.
	defer conn.Release()
	t := &pgTx{c: conn.Conn(), begin: beginUpdate, lock: true, lockAll: lockAll, key: s.key}
	if ferr := fn(t); ferr != nil {
		return failed(ctx, t, ferr)
	}
	if !t.began() && len(t.pending) == 0 {
		return classPermanent, nil // fn ran no statement: nothing to commit
	}
	if s.beforeCommit != nil {
		s.beforeCommit(conn)
	}
	if err := ctx.Err(); err != nil {
		// The caller is gone: roll back rather than commit a change whose answer
		// nobody reads. Past this point the commit no longer depends on ctx.
		rollback(ctx, t)
		return classTransient, daodian.Transient(fmt.Errorf("postgres: not committed: %w", err))
	}
	var committing bool
	var tag pgconn.CommandTag
	err = s.commitDurably(ctx, t.c, func(cctx context.Context) error {
		var cerr error
		committing, tag, cerr = t.commit(cctx)
		return cerr
	})
	if !committing {
		// A held-back write failed: the transaction did not commit.
		return failed(ctx, t, err)
	}
	if err != nil {
		return commitErr(err)
	}
	if tag.String() == "ROLLBACK" {
		// A statement failed inside fn and fn went on as if it had not: the server
		// rolled everything back. That is a bug in fn, not a transient condition.
		return classPermanent, errors.New("postgres: commit: the transaction was rolled back because a statement inside it had failed")
	}
	return classPermanent, nil
}

// failed ends a transaction whose function (or one of its held-back writes)
// failed with ferr, and says how the failure may be handled.
func failed(ctx context.Context, t *pgTx, ferr error) (errClass, error) {
	rollback(ctx, t)
	if t.c.IsClosed() {
		// The connection died under fn, whatever fn made of the error it got:
		// the server has rolled the transaction back, so a new attempt is safe.
		return classRetry, ferr
	}
	if errors.Is(ferr, daodian.ErrDuplicate) {
		return classDuplicate, ferr
	}
	if errors.Is(ferr, daodian.ErrSubOrderBusy) {
		return classContended, ferr
	}
	return classify(ferr), ferr
}

// commitErr classifies a failed COMMIT. Only an answer from the server tells that
// the transaction did not commit; any other failure leaves the outcome unknown.
func commitErr(err error) (errClass, error) {
	if isServerError(err) {
		return classify(err), wrapErr("commit", err)
	}
	if pgconn.SafeToRetry(err) {
		// Failed before anything was sent: the transaction is still open, and
		// Release will close the connection.
		return classTransient, daodian.Transient(fmt.Errorf("postgres: commit not sent: %w", err))
	}
	return classTransient, daodian.Transient(fmt.Errorf("postgres: commit outcome unknown: %w", err))
}

// rollback ends a transaction that will not be committed. It does not use the
// caller's context, which may be what failed: a rollback that cannot be sent leaves
// the connection closed, which is costlier than waiting briefly for the rollback.
func rollback(ctx context.Context, t *pgTx) {
	if !t.began() || t.c.IsClosed() {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// On failure the connection is left inside the transaction, and Release
	// closes it, which rolls back too.
	_, _ = t.c.Exec(rctx, "ROLLBACK")
}

// backoff returns the pause before retry number attempt+1: full jitter over an
// exponentially growing window, from 2 ms to at most 100 ms.
func backoff(attempt int) time.Duration {
	window := min(2*time.Millisecond<<min(attempt, 6), 100*time.Millisecond)
	return time.Duration(rand.Int64N(int64(window)) + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

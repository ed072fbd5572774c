// Package sqlite is the embedded daodian.Store: one SQLite database file in WAL
// mode, driven by the pure-Go driver modernc.org/sqlite (no cgo).
//
// Writes are group-committed. Update queues its function for a single writer
// goroutine that owns the one write connection; the writer runs whatever is
// queued (up to Options.MaxBatch) in one transaction, each function under its
// own savepoint so that it fails alone, and makes the whole batch durable with
// one fsync of the WAL, which a separate goroutine performs while the writer
// runs the next batch (durability.go); that next batch stays open, taking each
// function as it arrives, until the fsync is done (writer.extend), so that a
// slow disk makes batches larger rather than more numerous. Functions run one
// after another, each
// seeing the effects of the previous ones, which serialises every
// read-modify-write without locks. Reads (View) run on a pool of read-only
// connections, each View in one read transaction (a consistent snapshot).
// Checkpoints run in the background on a connection of their own.
//
// The rows that every request reads (tickets, uses, orders, apps) keep their
// descriptive fields in an encoded column (codec.go): the driver's cost grows
// with the number of result columns.
//
// Only one process may open a database: Open takes an exclusive advisory lock
// on path+".lock", because identifiers are handed out from memory by the
// writer.
//
// The database and its -wal and -shm files are readable by their owner only,
// and app secrets are stored sealed under the key of a key file (secrets.go,
// package seal).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/seal"
	"github.com/daodian/daodian/sqlite/internal/walvfs"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Options tune a Store; the zero value is usable.
type Options struct {
	// MaxBatch bounds the Updates committed in one transaction (default 256).
	MaxBatch int
	// QueueLen bounds the Updates waiting for the writer (default 4096). When the
	// queue is full, Update fails at once with a transient error: the caller
	// answers "busy, retry" instead of piling up latency.
	QueueLen int
	// Linger is how long the writer waits for more Updates after it has drained
	// the queue, before committing a batch smaller than MaxBatch (default 0: no
	// fixed wait; batches form from whatever queued up during the previous
	// commit, and grow while the previous batch is being synced).
	Linger time.Duration
	// Readers is the number of read connections serving View and Ping (default
	// twice GOMAXPROCS, at least 4).
	Readers int
	// BusyTimeout bounds how long a statement waits for a lock held by another
	// connection, such as the sqlite3 shell reading the file (default 5s).
	BusyTimeout time.Duration
	// CacheKiB is the page cache of the write connection in KiB (default
	// DefaultCacheKiB, or DefaultSharedCacheKiB for a Shared Store).
	CacheKiB int
	// ReadCacheKiB is the page cache of each read connection in KiB (default
	// DefaultReadCacheKiB).
	ReadCacheKiB int
	// CheckpointPages is the WAL size, in pages, past which the log is
	// restarted (default 16384: 64 MiB with 4 KiB pages). Checkpoints run in
	// the background all along, but restarting the log costs the writer a
	// short pause (see durability.go), so this trades disk for fewer pauses.
	CheckpointPages int
	// CheckpointInterval is the least time between two background checkpoints
	// (default 20ms). Each costs two fsyncs (WAL and database) that compete
	// with the commits' for the disk; a longer interval copies each hot page
	// once for more updates of it.
	CheckpointInterval time.Duration
	// Shared opens the database without the exclusive lock, next to a Store
	// that holds it: for admin commands run while a server is up. It is safe
	// (SQLite serialises the writers; identifier blocks are reserved in the
	// file) but the two writers wait for each other's transactions, up to
	// BusyTimeout, so it is meant for occasional writes. A Shared Store syncs
	// in COMMIT (as with SerialSync), and its Views may see the other Store's
	// last commits a moment before that Store has synced them.
	Shared bool
	// MemoryTickets bounds the writer's memory of the hot rows (mem.go): the
	// tickets held, per generation of two (default DefaultMemoryTickets). A
	// negative value keeps no memory: every read and write is a statement. A
	// Shared Store keeps none.
	MemoryTickets int
	// SerialSync makes every COMMIT fsync the WAL itself (SQLite's
	// synchronous=FULL), with the writer waiting for it, instead of syncing in
	// a pipeline (see durability.go). Both are durable; SerialSync is slower.
	SerialSync bool
	// Logger receives failures of background work (checkpoints); default
	// slog.Default().
	Logger *slog.Logger
	// SecretKeyFile is the file of the key the app secrets are sealed with
	// (default: the database path + ".key"). A missing file is created, mode
	// 0600, with a new random key, unless the database's secrets are already
	// sealed: then Open fails, as it does with a file holding another key.
	SecretKeyFile string
	// OnCommit, if set, is called once per committed batch, when it is
	// durable, with the number of Updates that ran in it (including those
	// that failed alone) and the time from BEGIN until durable. It runs on the
	// store's own goroutine, before the batch's Updates return: it must be
	// quick and must not call the Store.
	OnCommit func(batchSize int, dur time.Duration)

	// syncFile, if set, replaces fdatasync of the WAL (tests: slow or failing
	// disks).
	syncFile func(*os.File) error
}

// The write connection's page cache is small on purpose. SQLite scans the
// whole page cache at the end of every write transaction that balanced a
// B-tree by swapping two new pages: the swap parks a page at the number of
// the lock-byte page (1 GiB into the file), and the truncation of the cache to
// the database's size at COMMIT, which then finds a page beyond it, visits
// every cached page and hash slot instead of the few past the end. Random
// inserts into the indexes balance pages in many group commits, so until the
// file reaches 1 GiB those commits pay a scan proportional to the cache: with
// 64 MiB full (a ledger of 1 000 000 tickets) 10 % of a server's CPU, with
// 8 MiB under 2 % (BENCHMARKS.md, "The write connection's page cache"). The
// writer decides from its memory of the hot rows (mem.go), so the page cache
// serves only the B-tree descents of its writes and the loads of tickets it
// does not hold: 8 MiB keeps the inner pages of every index and a batch's
// leaves, and reads no more pages from the file than 64 MiB did at 10 000
// tickets.
const (
	// DefaultCacheKiB is the write connection's page cache of a Store that
	// owns its file (Options.CacheKiB): 8 MiB.
	DefaultCacheKiB = 8 << 10
	// DefaultSharedCacheKiB is the write connection's page cache of a Shared
	// Store: 64 MiB. Its writes are admin commands — imports and issues of
	// tens of thousands of tickets per transaction, whose random codes touch
	// pages all over their index — in few commits, so the scan costs little
	// and a large cache spares reading the index back.
	DefaultSharedCacheKiB = 64 << 10
	// DefaultReadCacheKiB is each read connection's page cache
	// (Options.ReadCacheKiB): 16 MiB, for the history and console pages that
	// walk records.
	DefaultReadCacheKiB = 16 << 10
)

// DefaultMemoryTickets is the default of Options.MemoryTickets: with the
// idempotency records, about 100 MB at most for single-use tickets.
const DefaultMemoryTickets = 100_000

func (o Options) withDefaults() Options {
	if o.MemoryTickets == 0 {
		o.MemoryTickets = DefaultMemoryTickets
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 4096
	}
	if o.Linger < 0 {
		o.Linger = 0
	}
	if o.Readers <= 0 {
		o.Readers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.CacheKiB <= 0 {
		o.CacheKiB = DefaultCacheKiB
		if o.Shared {
			o.CacheKiB = DefaultSharedCacheKiB
		}
	}
	if o.ReadCacheKiB <= 0 {
		o.ReadCacheKiB = DefaultReadCacheKiB
	}
	if o.CheckpointPages <= 0 {
		o.CheckpointPages = 16384
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 20 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Shared {
		// Another process's Views do not wait for this one's syncer: commit
		// only what is already durable.
		o.SerialSync = true
	}
	return o
}

// Errors of the store itself, returned wrapped: ErrClosed and ErrQueueFull
// with daodian.ErrTransient (a retry, later or on another process, may
// succeed), ErrLocked with the path.
var (
	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("sqlite: store closed")
	// ErrQueueFull is returned by Update when Options.QueueLen Updates are
	// already waiting.
	ErrQueueFull = errors.New("store queue full")
	// ErrLocked is returned by Open when another Store holds the database.
	ErrLocked = errors.New("sqlite: database in use")
)

// Store is the embedded daodian.Store. Its methods are safe for concurrent use.
type Store struct {
	path    string
	keyPath string
	opts    Options
	db      *sql.DB
	lock    *fileLock
	key     *seal.Key // seals and opens app secrets

	w          *writer
	ws         *session // the writer's connection
	queue      chan *op
	writerDone chan struct{}
	sync       *syncer // nil with SerialSync
	ckpt       *checkpointer

	readers  chan *session
	nreaders int // read sessions created; Close collects them all

	// mu orders Update's enqueue against Close's closing of the queue.
	mu      sync.RWMutex
	closed  bool
	closing chan struct{} // closed when Close starts

	closeOnce sync.Once
	closeErr  error
}

var _ daodian.Store = (*Store)(nil)

// Open opens the database at path, creating the file and its schema if needed
// and migrating an older schema, and starts the writer. A second Open of the
// same path, from this process or another, fails with ErrLocked until the
// first Store is closed, unless it sets Options.Shared.
//
// Open creates the database file with mode 0600 and takes group and other
// access away from an existing one and its -wal and -shm files. It loads (or,
// for a database without sealed secrets, creates) the secret key file, refuses
// a key that is not the one the database's secrets are sealed with, and seals
// in place the secrets of a database written before sealing existed.
func Open(ctx context.Context, path string, opts Options) (_ *Store, err error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: database path: %w", err)
	}
	opts = opts.withDefaults()
	keyPath := opts.SecretKeyFile
	if keyPath == "" {
		keyPath = abs + ".key"
	}
	var lock *fileLock
	if !opts.Shared {
		if lock, err = lockFile(abs); err != nil {
			return nil, err
		}
	}
	s := &Store{
		path:       abs,
		keyPath:    keyPath,
		opts:       opts,
		lock:       lock,
		queue:      make(chan *op, opts.QueueLen),
		writerDone: make(chan struct{}),
		readers:    make(chan *session, opts.Readers),
		closing:    make(chan struct{}),
	}
	defer func() {
		if err != nil {
			s.release()
		}
	}()

	if err := restrictFiles(abs); err != nil {
		return nil, err
	}
	s.db, err = sql.Open("sqlite", dsn(abs, opts))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	// Connections are taken once and held; database/sql must never close them.
	s.db.SetMaxOpenConns(opts.Readers + 2)
	s.db.SetMaxIdleConns(opts.Readers + 2)
	s.db.SetConnMaxLifetime(0)
	s.db.SetConnMaxIdleTime(0)

	if err := s.openWriter(ctx); err != nil {
		return nil, err
	}
	for range opts.Readers {
		rs, err := s.openReader(ctx)
		if err != nil {
			return nil, err
		}
		s.nreaders++
		s.readers <- rs
	}
	if err := s.openCheckpointer(ctx); err != nil {
		return nil, err
	}
	if !opts.SerialSync {
		// The WAL exists from the writer's first access. Its directory entry
		// must be durable before any sync of its contents means anything.
		y, err := newSyncer(abs+"-wal", opts.OnCommit, opts.syncFile)
		if err != nil {
			return nil, err
		}
		if err := syncDir(filepath.Dir(abs)); err != nil {
			_ = y.wal.Close()
			return nil, fmt.Errorf("sqlite: sync directory of %s: %w", abs, err)
		}
		s.sync, s.w.sync = y, y
		go y.loop()
	}
	s.w.ckpt = s.ckpt
	go s.ckpt.loop()
	go s.w.loop(s.writerDone)
	return s, nil
}

// dsn builds the driver's data source name. Pragmas in the DSN apply to every
// connection the pool opens.
func dsn(path string, opts Options) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)+")")
	// Every Update returns only once its WAL frames are on stable storage:
	// with SerialSync because COMMIT fsyncs them (FULL), otherwise because the
	// syncer does (NORMAL; see durability.go).
	if opts.SerialSync {
		q.Add("_pragma", "synchronous(FULL)")
	} else {
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	// Savepoint journals and sorts stay in memory.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "foreign_keys(OFF)")
	// Keep the WAL file from staying at its high-water size after a burst.
	q.Add("_pragma", "journal_size_limit(67108864)")
	// A transaction's WAL frames in a few write(2)s instead of two per page
	// (internal/walvfs). Registering fails only if SQLite itself cannot
	// start, and then so does the open.
	if walvfs.Name != "" && walvfs.Register() == nil {
		q.Add("vfs", walvfs.Name)
	}
	// A URI filename, so that any character of the path is taken literally.
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows drive letters: file:/C:/...
	}
	return "file:" + p + "?" + q.Encode()
}

func (s *Store) openWriter(ctx context.Context) error {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	s.ws = &session{conn: c}
	var mode string
	if err := c.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: set WAL mode: %w", s.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal mode is %q, want wal", s.path, mode)
	}
	for _, p := range []string{
		"PRAGMA cache_size = -" + strconv.Itoa(s.opts.CacheKiB),
		// Checkpoints run on the checkpointer's connection, not in COMMIT.
		"PRAGMA wal_autocheckpoint = 0",
	} {
		if _, err := c.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("sqlite: open %s: %s: %w", s.path, p, err)
		}
	}
	if err := migrate(ctx, c); err != nil {
		return fmt.Errorf("%w (database %s)", err, s.path)
	}
	if s.key, err = s.prepareSecrets(ctx, c); err != nil {
		return err
	}
	s.ws.key = s.key
	w := &writer{
		s:        s.ws,
		queue:    s.queue,
		maxBatch: s.opts.MaxBatch,
		linger:   s.opts.Linger,
		onCommit: s.opts.OnCommit,
		next:     idBase,
	}
	if !s.opts.Shared && s.opts.MemoryTickets > 0 {
		w.mem, w.stage, w.issued = newMem(s.opts.MemoryTickets), newStage(), make(map[string]bool)
	}
	var limit string
	switch err := c.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaIDLimit).Scan(&limit); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("sqlite: open %s: read id limit: %w", s.path, err)
	default:
		n, err := strconv.ParseUint(limit, 10, 64)
		if err != nil {
			return fmt.Errorf("sqlite: open %s: bad id limit %q: %w", s.path, limit, err)
		}
		w.next = max(w.next, n)
	}
	w.limit = w.next
	if err := s.ws.raw(func() error {
		if err := s.ws.prepareRead(ctx); err != nil {
			return err
		}
		var err error
		if s.ws.checkpoint, err = s.ws.prepare(ctx, sqlCheckpoint); err != nil {
			return err
		}
		return s.ws.prepareWrite(ctx)
	}); err != nil {
		return fmt.Errorf("%w (database %s)", err, s.path)
	}
	s.w = w
	return nil
}

func (s *Store) openReader(ctx context.Context) (*session, error) {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: read connection: %w", s.path, err)
	}
	rs := &session{conn: c, key: s.key}
	for _, p := range []string{
		"PRAGMA query_only = 1",
		"PRAGMA cache_size = -" + strconv.Itoa(s.opts.ReadCacheKiB),
	} {
		if _, err := c.ExecContext(ctx, p); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("sqlite: open %s: %s: %w", s.path, p, err)
		}
	}
	if err := rs.raw(func() error {
		if err := rs.prepareRead(ctx); err != nil {
			return err
		}
		var err error
		if rs.viewBegin, err = rs.prepare(ctx, sqlReadBegin); err != nil {
			return err
		}
		rs.viewEnd, err = rs.prepare(ctx, sqlReadEnd)
		return err
	}); err != nil {
		_ = rs.close()
		return nil, fmt.Errorf("%w (database %s)", err, s.path)
	}
	return rs, nil
}

func (s *Store) openCheckpointer(ctx context.Context) error {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: checkpoint connection: %w", s.path, err)
	}
	cs := &session{conn: c}
	if err := cs.raw(func() error {
		var err error
		cs.checkpoint, err = cs.prepare(ctx, sqlCheckpoint)
		return err
	}); err != nil {
		_ = cs.close()
		return fmt.Errorf("%w (database %s)", err, s.path)
	}
	s.ckpt = &checkpointer{
		s:            cs,
		interval:     s.opts.CheckpointInterval,
		restartPages: int64(s.opts.CheckpointPages),
		tail:         &s.w.tail,
		kick:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		logf: func(err error) {
			s.opts.Logger.Warn("sqlite: background checkpoint failed", "db", s.path, "err", err)
		},
	}
	return nil
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Update runs fn in the writer's next batch and returns once that batch is
// durable. fn runs exactly once (the single writer has no serialisation
// failures to retry). An error from fn, or a panic in it, undoes fn's writes
// and is returned (a panic as an error); the other Updates of the batch are
// unaffected. A full queue, a closed store, a context that ends before fn
// starts, and a failed commit return errors wrapping daodian.ErrTransient;
// once fn has started, Update waits for the outcome even if ctx ends.
//
// fn runs on the writer goroutine: it must not block, must not call the Store,
// and must not keep tx or use it from another goroutine.
func (s *Store) Update(ctx context.Context, fn func(daodian.Tx) error) error {
	if fn == nil {
		return errors.New("sqlite: Update with a nil function")
	}
	if err := ctx.Err(); err != nil {
		return daodian.Transient(err)
	}
	if err := s.failure(); err != nil {
		return daodian.Transient(err)
	}
	o := getOp(ctx, fn)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		putOp(o)
		return daodian.Transient(ErrClosed)
	}
	select {
	case s.queue <- o:
	default:
		s.mu.RUnlock()
		putOp(o)
		return daodian.Transient(ErrQueueFull)
	}
	s.mu.RUnlock()
	select {
	case err := <-o.done:
		putOp(o)
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opCancelled) {
			// The writer will skip it. It may still hold o, so o is not
			// recycled.
			return daodian.Transient(ctx.Err())
		}
		err := <-o.done
		putOp(o)
		return err
	}
}

// View runs fn in a read transaction on one of the read connections: every
// read of fn sees the same committed state. A panic in fn is re-raised after
// the connection is cleaned up.
func (s *Store) View(ctx context.Context, fn func(daodian.ReadTx) error) error {
	if fn == nil {
		return errors.New("sqlite: View with a nil function")
	}
	rs, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	released := false
	release := func() {
		if !released {
			released = true
			s.readers <- rs
		}
	}
	defer release()
	var (
		fnErr    error
		panicked bool
		panicVal any
	)
	err = rs.raw(func() error {
		if _, err := rs.exec(rs.viewBegin); err != nil {
			return rs.fail(err)
		}
		tx := &readTx{s: rs}
		defer func() {
			tx.done = true
			if r := recover(); r != nil {
				panicked, panicVal = true, r
			}
			// A read transaction has nothing to undo; ending it releases the
			// snapshot so that checkpoints can progress.
			if _, err := rs.exec(rs.viewEnd); err != nil && fnErr == nil {
				fnErr = rs.fail(err)
			}
		}()
		fnErr = fn(tx)
		return nil
	})
	release()
	if panicked {
		panic(panicVal)
	}
	if err != nil {
		return err
	}
	if s.sync != nil {
		// fn may have seen commits that are not synced yet: answer only once
		// they are, so that nothing a caller learns can be lost.
		if err := s.sync.waitDurable(ctx, s.sync.committed.Load()); err != nil {
			return err
		}
	}
	return fnErr
}

// failure is the error that stopped the store (a failed WAL sync), if any.
func (s *Store) failure() error {
	if s.sync == nil {
		return nil
	}
	return s.sync.failure()
}

// Ping reports whether the database can be read and the store still works.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.failure(); err != nil {
		return err
	}
	rs, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer func() { s.readers <- rs }()
	return rs.raw(func() error {
		if _, err := rs.queryRow(rs.r.ping, 1); err != nil {
			return rs.fail(err)
		}
		return nil
	})
}

// acquire takes a read connection.
func (s *Store) acquire(ctx context.Context) (*session, error) {
	select {
	case <-s.closing:
		return nil, daodian.Transient(ErrClosed)
	default:
	}
	select {
	case rs := <-s.readers:
		return rs, nil
	default:
	}
	select {
	case rs := <-s.readers:
		return rs, nil
	case <-ctx.Done():
		return nil, daodian.Transient(ctx.Err())
	case <-s.closing:
		return nil, daodian.Transient(ErrClosed)
	}
}

// Close stops accepting Updates, lets the writer finish every queued one,
// waits for running Views, and closes the database and its lock. It is safe to
// call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		s.closed = true
		close(s.queue)
		s.mu.Unlock()
		<-s.writerDone
		var errs []error
		if s.sync != nil {
			errs = append(errs, s.sync.close()) // answers the last batches
		}
		s.ckpt.stopLoop()
		errs = append(errs, s.release())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// release closes what Open built, after the writer has stopped (or before it
// started).
func (s *Store) release() error {
	var errs []error
	for range s.nreaders {
		errs = append(errs, (<-s.readers).close())
	}
	s.nreaders = 0
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.s.close())
		s.ckpt = nil
	}
	if s.ws != nil {
		errs = append(errs, s.ws.close())
		s.ws = nil
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.release())
		s.lock = nil
	}
	return errors.Join(errs...)
}

// close finalises the session's statements and returns its connection.
func (s *session) close() error {
	err := s.raw(s.closeStmts)
	return errors.Join(err, s.conn.Close())
}

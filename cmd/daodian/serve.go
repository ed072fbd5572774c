package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/console"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/postgres"
	"github.com/daodian/daodian/seal"
	"github.com/daodian/daodian/sqlite"
	"golang.org/x/term"
)

const defaultDB = "daodian.db"

// storeRef names a store: the --db and --secret-key-file of a command.
type storeRef struct {
	db string
	// keyFile is the file of the key the app secrets are sealed with; "" is
	// the embedded store's default, <db>.key, and an error for PostgreSQL.
	keyFile string
}

// storeFlags registers --db and --secret-key-file, which every command that
// opens the store takes.
func storeFlags(fs *flag.FlagSet, dbDefault, dbUsage string) *storeRef {
	r := &storeRef{}
	fs.StringVar(&r.db, "db", dbDefault, dbUsage)
	fs.StringVar(&r.keyFile, "secret-key-file", "", "file of the key that seals the app secrets in the store (default for an embedded database: DB.key beside it, created 0600 on first use; required for PostgreSQL)")
	return r
}

// errPostgresNeedsKey is the refusal to open PostgreSQL without a key file.
var errPostgresNeedsKey = errors.New("PostgreSQL needs --secret-key-file (or DAODIAN_SECRET_KEY_FILE): the app secrets are sealed with the key in that file, and every gateway and command on one database must use the same file")

// openStore opens the embedded store at a path, or PostgreSQL for a postgres:// URL.
// The server owns an embedded file exclusively (one serving process per file);
// admin commands open it shared, so they work while the server runs.
func openStore(ctx context.Context, ref storeRef, server bool) (daodian.Store, error) {
	return openStoreWith(ctx, ref, storeOptions{server: server})
}

// numberRecordsEvery is how often a server numbers the records committed on
// PostgreSQL (postgres.Options.NumberRecordsEvery). A pass with nothing to
// number reads one row; at 50 ms, records reach pages and event feeds well
// within a second (BENCHMARKS.md, history on PostgreSQL).
const numberRecordsEvery = 50 * time.Millisecond

// maxMemoryTickets bounds --memory-tickets: two generations of ten million
// tickets are about 34 GB, more than a machine this serves should give it.
const maxMemoryTickets = 10_000_000

// storeOptions are the settings of openStoreWith beyond the database name.
type storeOptions struct {
	server bool
	// onCommit receives the embedded store's group commits (batch size, time to
	// durable) for the metrics. PostgreSQL commits one transaction per
	// operation and reports nothing.
	onCommit func(batchSize int, d time.Duration)
	// logger receives the embedded store's background failures (default
	// slog.Default()).
	logger *slog.Logger
	// memoryTickets is sqlite.Options.MemoryTickets (0: its default).
	memoryTickets int
}

func openStoreWith(ctx context.Context, ref storeRef, o storeOptions) (daodian.Store, error) {
	if isPostgresURL(ref.db) {
		if ref.keyFile == "" {
			return nil, errPostgresNeedsKey
		}
		opts := postgres.Options{SecretKeyFile: ref.keyFile, Logger: o.logger}
		if o.server {
			// Records committed by any gateway get their ids within about this
			// long, so that pages and event feeds keep up with the commits.
			opts.NumberRecordsEvery = numberRecordsEvery
		}
		s, err := postgres.Open(ctx, ref.db, opts)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store: %w", keyHint(err))
		}
		return s, nil
	}
	s, err := sqlite.Open(ctx, ref.db, sqlite.Options{Shared: !o.server, OnCommit: o.onCommit, Logger: o.logger, SecretKeyFile: ref.keyFile,
		MemoryTickets: o.memoryTickets})
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", ref.db, keyHint(err))
	}
	return s, nil
}

// keyHint adds to a refusal of the key file the flag that names it.
func keyHint(err error) error {
	if errors.Is(err, seal.ErrNoKeyFile) || errors.Is(err, seal.ErrWrongKey) {
		return fmt.Errorf("%w (--secret-key-file, DAODIAN_SECRET_KEY_FILE)", err)
	}
	return err
}

// newLogger logs JSON when w is not a terminal (collected by machines), text on a
// terminal (read by people).
func newLogger(w *os.File) *slog.Logger {
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// isTerminal reports whether w is a terminal. It asks the terminal driver rather
// than checking for a character device, which /dev/null also is.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Server limits. Each bounds what one client can hold: a slow client (slowloris)
// cannot keep a connection forever, nor send unbounded headers.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 15 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	shutdownTimeout   = 15 * time.Second
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (port 0 picks a free port)")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	window := fs.Duration("reverse-window", 24*time.Hour, "how long after a use it may be reversed")
	skew := fs.Duration("timestamp-skew", 10*time.Minute, "accepted distance of `timestamp` from server time")
	maxBody := fs.Int64("max-body", 1<<20, "largest accepted request body in bytes")
	cpuProfile := fs.String("cpu-profile", "", "write a pprof CPU profile of the whole run to this file")
	maxConcurrent := fs.Int("max-concurrent", gateway.DefaultMaxConcurrent, "most signed TOP requests in their method at once; beyond it a request is answered at once with code 15 isp.server-busy (negative: no limit)")
	headerTimeout := fs.Duration("read-header-timeout", readHeaderTimeout, "how long a client may take to send the request headers (slow clients are cut off)")
	bodyTimeout := fs.Duration("read-body-timeout", gateway.DefaultBodyReadTimeout, "how long a client may take to send a request body after its headers (slow clients are cut off)")
	noFaults := fs.Bool("no-faults", false, "ignore the store's fault rules (daodian fault): a production server never injects faults")
	demoFlag := fs.Bool("demo", false, "on an empty database, seed a demo merchant, shop, app and tickets and print how to call them")
	noConsole := fs.Bool("no-console", false, "do not serve the web console (/console/); the admin API stays")
	adminAddr := fs.String("admin-addr", "", "serve the admin API and the console on this address only (e.g. 127.0.0.1:8081), not on --addr")
	memoryTickets := fs.Int("memory-tickets", sqlite.DefaultMemoryTickets, "embedded store: tickets the writer keeps in memory to decide from, per generation of two (about 1.7 KB each with a use and its answer); -1 keeps none")
	noRequestLog := fs.Bool("no-request-log", false, "keep no copy of recent requests in memory: the console's requests page and the overview's charts stay empty")
	trustProxy := fs.Bool("trust-proxy", false, "behind a proxy: believe its X-Forwarded-Proto (the console's Secure cookie) and X-Forwarded-For (sign-in throttling)")
	hooks := addWebhookFlags(fs)
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *maxConcurrent == 0 || *headerTimeout <= 0 || *bodyTimeout <= 0 {
		return errors.New("--max-concurrent must not be 0 (negative: no limit), and --read-header-timeout and --read-body-timeout must be positive")
	}
	if *memoryTickets == 0 || *memoryTickets < -1 || *memoryTickets > maxMemoryTickets {
		return fmt.Errorf("--memory-tickets must be -1 (none) or 1 to %d", maxMemoryTickets)
	}
	logger := slog.Default()
	if f, ok := e.stdout.(*os.File); ok {
		logger = newLogger(f)
	} else {
		logger = slog.New(slog.NewJSONHandler(e.stdout, nil))
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	metrics := gateway.NewMetrics()
	store, err := openStoreWith(ctx, *ref, storeOptions{server: true, onCommit: metrics.ObserveCommit, logger: logger, memoryTickets: *memoryTickets})
	if err != nil {
		return err
	}
	// Closed once: explicitly after the last request, to report its error, or
	// by the defer on an early return.
	closeStore := sync.OnceValue(store.Close)
	defer closeStore()
	ledger := daodian.NewLedger(store, daodian.Config{ReverseWindow: *window, FutureSkew: *skew, Logger: logger})
	gw := gateway.New(ledger, gateway.Config{Metrics: metrics, MaxBodyBytes: *maxBody, TimestampSkew: *skew, Logger: logger, MaxConcurrent: *maxConcurrent,
		BodyReadTimeout: *bodyTimeout, Faults: gateway.FaultOptions{Disabled: *noFaults}, RequestLog: gateway.RequestLogOptions{Disabled: *noRequestLog}})
	announceFaults(ctx, e.stderr, ledger, *noFaults)
	watchReplication(ctx, e.stderr, metrics.Registry(), logger, store)
	stopWebhooks := startWebhooks(ledger, hooks, metrics.Registry(), logger)
	defer stopWebhooks()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server running there? use --addr)", *addr, err)
	}
	adminLn := ln
	if *adminAddr != "" {
		if adminLn, err = net.Listen("tcp", *adminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s: %w (is another server running there? use --admin-addr)", *adminAddr, err)
		}
	}
	adm := admin.New(ledger, admin.Config{Logger: logger, RequestLog: gw.RequestLog(), FaultsDisabled: *noFaults})
	var con *console.Console
	if !*noConsole {
		con = console.New(console.Config{API: adm, Logger: logger, TrustProxy: *trustProxy})
	}
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: *headerTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	}
	var srv, adminSrv *http.Server
	if adminLn == ln {
		srv = newServer(routes(gw, adm, con))
	} else {
		srv, adminSrv = newServer(gw.Handler()), newServer(routes(nil, adm, con))
	}
	// Uses held by hold faults finish with the in-flight requests.
	srv.RegisterOnShutdown(gw.ReleaseHeld)
	url := fmt.Sprintf("http://%s/router/rest", ln.Addr())
	if *demoFlag {
		d, err := seedDemo(ctx, ledger)
		if err != nil {
			ln.Close()
			return fmt.Errorf("seed demo data: %w", err)
		}
		if d == nil {
			fmt.Fprintln(e.stderr, "daodian: --demo seeds only an empty database; this one has data, so nothing was added (use --db with a new file for a fresh demo)")
		} else {
			d.print(e.stderr, url)
		}
	}
	adminBase := "http://" + adminLn.Addr().String()
	announceAdmin(ctx, e.stderr, ledger, adminBase)
	if con != nil {
		fmt.Fprintf(e.stderr, "daodian: console on %s%s (sign in with an admin token)\n", adminBase, console.Prefix)
	}
	fmt.Fprintf(e.stderr, "daodian: serving on %s (store %s)\n", url, describeDB(ref.db))
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if adminSrv != nil {
		go func() { errc <- adminSrv.Serve(adminLn) }()
	}
	select {
	case err := <-errc:
		srv.Close()
		if adminSrv != nil {
			adminSrv.Close()
		}
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: no new connections, finishing in-flight requests", "timeout_s", shutdownTimeout.Seconds())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var adminDone chan error
	if adminSrv != nil {
		adminDone = make(chan error, 1)
		go func() { adminDone <- adminSrv.Shutdown(sctx) }()
	}
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: requests still running after %s: %w", shutdownTimeout, err)
	}
	if adminDone != nil {
		if err := <-adminDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("shutdown of the admin listener: requests still running after %s: %w", shutdownTimeout, err)
		}
	}
	// Every request has been answered: no Update is pending, so closing the
	// store loses nothing (each answered change was durable before its answer);
	// the deliverer writes its last results first.
	stopWebhooks()
	if err := closeStore(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	logger.Info("stopped: every in-flight request answered, store closed")
	return nil
}

// routes is what a listener serves, in one place: the gateway's paths
// (/router/rest, /healthz, /readyz, /metrics; none when gw is nil, on the
// listener of --admin-addr), the admin API (SPEC §10) under admin.Prefix and
// the console under console.Prefix (none when con is nil: --no-console).
func routes(gw *gateway.Gateway, adm *admin.API, con *console.Console) http.Handler {
	mux := http.NewServeMux()
	if gw != nil {
		mux.Handle("/", gw.Handler())
	}
	mux.Handle(admin.Prefix, adm)
	// Without its slash too, so that it answers as the API (401, 404) rather
	// than with the mux's redirect.
	mux.Handle(strings.TrimSuffix(admin.Prefix, "/"), adm)
	if con != nil {
		mux.Handle(console.Prefix, con)
		mux.Handle(strings.TrimSuffix(console.Prefix, "/"), con)
	}
	return mux
}

// describeDB names the store without the secrets a URL may hold: the password of
// its user part and any password parameter of its query (PostgreSQL accepts
// password= and sslpassword= there).
func describeDB(db string) string {
	if !strings.Contains(db, "://") {
		return db + " (embedded)"
	}
	u, err := url.Parse(db)
	if err != nil {
		return "(a database URL that does not parse)" // it may hold a password: never echo it
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

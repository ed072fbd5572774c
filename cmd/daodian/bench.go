package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/bench"
)

const (
	benchMerchant = "bench-merchant"
	benchShop     = "bench-shop"
	// issueBatch is the orders written per durable commit while issuing tickets.
	issueBatch = 500
	maxTickets = 10_000_000
)

func runBench(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench")
	ref := storeFlags(fs, "", "database for the run: a fresh file path (default: a temporary one), or with --target the target's store, to issue tickets and audit")
	db := &ref.db
	target := fs.String("target", "", "drive a running gateway at this URL instead of starting one")
	appKey := fs.String("app-key", "", "with --target: the app to call as")
	appSecret := fs.String("app-secret", "", "with --target: its secret")
	conc := fs.Int("concurrency", 64, "concurrent clients")
	dur := fs.Duration("duration", 10*time.Second, "how long each phase (baseline, ledger) runs")
	tickets := fs.Int("tickets", 10_000, "tickets to issue for the load")
	asJSON := fs.Bool("json", false, "print one JSON object")
	cpuProfile := fs.String("cpu-profile", "", "without --target: have the server write a pprof CPU profile to this file")
	serveBaseline := fs.Bool("serve-baseline", false, "internal: serve the bare baseline handler")
	addr := fs.String("addr", "127.0.0.1:0", "internal: with --serve-baseline or --serve-receiver, the listen address")
	serveReceiver := fs.String("serve-receiver", "", "internal: serve a webhook receiver of this mode")
	hookMode := fs.String("webhook-receiver", "", "register a webhook of the bench merchant to a receiver this process runs, and report the delivery lag: "+bench.ReceiverFast+" (answers at once) or "+bench.ReceiverSleep+" (answers after 10 s)")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *serveBaseline {
		return serveBaselineHandler(ctx, e, *addr)
	}
	if *serveReceiver != "" {
		return serveReceiverHandler(ctx, e, *addr, *serveReceiver)
	}
	if *conc < 1 || *conc > bench.MaxConcurrency {
		return &exitError{2, fmt.Sprintf("--concurrency must be between 1 and %d", bench.MaxConcurrency)}
	}
	if *tickets < *conc || *tickets > maxTickets {
		return &exitError{2, fmt.Sprintf("--tickets must be between --concurrency and %d", maxTickets)}
	}
	if *dur <= 0 || *dur > time.Hour {
		return &exitError{2, "--duration must be between 1ns and 1h"}
	}
	if *hookMode != "" && (*target != "" || (*hookMode != bench.ReceiverFast && *hookMode != bench.ReceiverSleep)) {
		return &exitError{2, "--webhook-receiver is " + bench.ReceiverFast + " or " + bench.ReceiverSleep + ", without --target"}
	}
	progress := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(e.stderr, format+"\n", a...)
		}
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := bench.Config{Concurrency: *conc, Duration: *dur, ShopID: benchShop, RunID: strconv.FormatInt(time.Now().UnixNano(), 36)}
	if *target != "" {
		if *db == "" || *appKey == "" || *appSecret == "" {
			return &exitError{2, "--target needs --db (the target's store, to issue tickets and audit), --app-key and --app-secret"}
		}
		cfg.URL, cfg.AppKey, cfg.AppSecret = *target, *appKey, *appSecret
	} else {
		if *db == "" {
			dir, err := os.MkdirTemp("", "daodian-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			*db = filepath.Join(dir, "bench.db")
		} else if _, err := os.Stat(*db); err == nil {
			return &exitError{2, fmt.Sprintf("%s exists; bench starts its server on a fresh database, give a new path", *db)}
		}
	}

	progress("issuing %d tickets into %s …", *tickets, describeDB(*db))
	t0 := time.Now()
	var hook *benchHook
	merchant := benchMerchant
	if err := withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		if *target != "" {
			app, err := lookupApp(ctx, l, *appKey)
			if err != nil {
				return err
			}
			merchant = app.Merchants[0]
		} else {
			app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "bench", MerchantID: merchant})
			if err != nil {
				return err
			}
			cfg.AppKey, cfg.AppSecret = app.Key, app.Secret
		}
		if err := l.AddShop(ctx, daodian.Shop{MerchantID: merchant, ID: benchShop}); err != nil && !errors.Is(err, daodian.ErrDuplicate) {
			return err
		}
		if cfg.Tickets, err = issueBenchTickets(ctx, l, merchant, *tickets); err != nil || *hookMode == "" {
			return err
		}
		hook, err = startBenchHook(ctx, self, l, merchant, *hookMode)
		return err
	}); err != nil {
		return err
	}
	if hook != nil {
		defer hook.stopChild()
	}
	issueS := time.Since(t0).Seconds()
	progress("issued in %.1fs", issueS)

	stopServer := func() {}
	if *target == "" {
		serveArgs := []string{"serve", "--addr", "127.0.0.1:0", "--db", *db}
		if ref.keyFile != "" {
			serveArgs = append(serveArgs, "--secret-key-file", ref.keyFile)
		}
		if *cpuProfile != "" {
			serveArgs = append(serveArgs, "--cpu-profile", *cpuProfile)
		}
		url, stop, err := startChild(ctx, self, `serving on (http://\S+)`, serveArgs...)
		if err != nil {
			return fmt.Errorf("start daodian serve: %w", err)
		}
		stopServer = sync.OnceFunc(stop)
		defer stopServer()
		cfg.URL = url
	}
	baseURL, stopBase, err := startChild(ctx, self, `baseline on (http://\S+)`, "bench", "--serve-baseline")
	if err != nil {
		return fmt.Errorf("start the baseline server: %w", err)
	}
	progress("baseline: bare net/http handler, %d clients, %s …", *conc, *dur)
	base, err := bench.Baseline(ctx, baseURL, cfg)
	stopBase()
	if err != nil {
		return err
	}
	progress("ledger: use → reverse → replay cycles, %d clients, %s …", *conc, *dur)
	// CPU per request of the load generator (this process) and of the server
	// (a child, counted once it has exited): on a machine they share, what one
	// spends the other cannot, so both are reported.
	self0, children0, cpuOK := cpuTimes()
	server := strings.TrimSuffix(cfg.URL, "/router/rest")
	if hook != nil {
		hook.watch(ctx, server)
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	self1, _, _ := cpuTimes()
	if hook != nil {
		hook.end(ctx, server)
	}
	// The embedded store has one owner at a time: stop our server before auditing.
	stopServer()
	_, children1, _ := cpuTimes()

	var rep *daodian.AuditReport
	out := map[string]any{}
	if err := withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		var err error
		if rep, err = l.Audit(ctx); err != nil || hook == nil {
			return err
		}
		return hook.report(ctx, l, merchant, out)
	}); err != nil {
		return fmt.Errorf("audit after the run: %w", err)
	}
	for k, v := range map[string]any{
		"ops_per_s": round(res.OpsPerS), "uses_per_s": round(res.UsesPerS), "reversals_per_s": round(res.ReversePerS),
		"replays_per_s": round(res.ReplayPerS), "baseline_per_s": round(base.OpsPerS),
		"ratio": round3(res.OpsPerS / base.OpsPerS), "reversal_ratio": round3(res.ReversePerS / base.OpsPerS),
		"p50_ms": res.P50ms, "p99_ms": res.P99ms, "p999_ms": res.P999ms, "max_ms": res.MaxMs,
		"baseline_p99_ms": base.P99ms, "errors": res.Errors + base.Errors, "first_error": res.FirstError,
		"requests": res.Requests, "tickets": *tickets, "concurrency": *conc, "duration_s": round3(res.DurationS),
		"issue_s": round3(issueS), "store": storeKind(*db), "audit_violations": len(rep.Violations),
	} {
		out[k] = v
	}
	if cpuOK && res.Requests > 0 {
		perOp := func(d time.Duration) float64 { return round3(float64(d.Microseconds()) / float64(res.Requests)) }
		out["client_cpu_us_per_op"] = perOp(self1 - self0)
		if *target == "" {
			// The server's whole life: start-up and shutdown are a small part of it.
			out["server_cpu_us_per_op"] = perOp(children1 - children0)
		}
	}
	if *asJSON {
		if err := printJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "ledger   %9.0f req/s (uses %.0f, reversals %.0f, replays %.0f)  p50 %.2f ms  p99 %.2f ms  p999 %.2f ms  errors %d\n",
			res.OpsPerS, res.UsesPerS, res.ReversePerS, res.ReplayPerS, res.P50ms, res.P99ms, res.P999ms, res.Errors)
		fmt.Fprintf(e.stdout, "baseline %9.0f req/s  p99 %.2f ms\nratio    %.3f (all requests) / %.3f (reversals only)\naudit    %d violations over %d tickets, %d uses\n",
			base.OpsPerS, base.P99ms, res.OpsPerS/base.OpsPerS, res.ReversePerS/base.OpsPerS, len(rep.Violations), rep.Tickets, rep.Uses)
		if hook != nil {
			hook.print(e.stdout, out)
		}
	}
	if len(rep.Violations) > 0 {
		return &exitError{1, fmt.Sprintf("audit found %d violations after the run: %s", len(rep.Violations), rep.Violations[0])}
	}
	if res.Errors+base.Errors > 0 {
		return &exitError{1, fmt.Sprintf("%d requests failed; first: %s", res.Errors+base.Errors, res.FirstError)}
	}
	return nil
}

func round(v float64) float64  { return float64(int64(v + 0.5)) }
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func storeKind(db string) string {
	if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
		return "postgres"
	}
	return "embedded"
}

func lookupApp(ctx context.Context, l *daodian.Ledger, key string) (*daodian.App, error) {
	app, err := l.App(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("app %s in the target's store: %w", key, err)
	}
	if len(app.Merchants) == 0 {
		return nil, fmt.Errorf("app %s is bound to no merchant", key)
	}
	return app, nil
}

// issueBenchTickets issues n single-unit tickets, one per order, many orders per
// durable commit.
func issueBenchTickets(ctx context.Context, l *daodian.Ledger, merchant string, n int) ([]bench.Ticket, error) {
	out := make([]bench.Ticket, 0, n)
	now := l.Now()
	for len(out) < n {
		k := min(issueBatch, n-len(out))
		reqs := make([]daodian.IssueRequest, k)
		for i := range reqs {
			reqs[i] = daodian.IssueRequest{MerchantID: merchant, ItemName: "bench", TotalAmountCents: 100, ValidFrom: now.Add(-time.Hour), ValidTo: now.Add(365 * 24 * time.Hour)}
		}
		issued, err := l.IssueMany(ctx, reqs)
		if err != nil {
			return nil, err
		}
		for _, o := range issued {
			out = append(out, bench.Ticket{ID: o.Tickets[0].ID, Code: o.Tickets[0].Code})
		}
	}
	return out, nil
}

// startChild starts this executable with args, waits for a line of its stderr
// matching pattern, and returns the first group and a stop function (SIGTERM, then
// wait).
func startChild(ctx context.Context, self, pattern string, args ...string) (string, func(), error) {
	cmd := exec.Command(self, args...)
	// The child's log goes to the null device (Stdout nil): a pipe drained into
	// io.Discard would cost the load generator a read per few lines of it, CPU
	// the server under test then lacks.
	cmd.Stdout = nil
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	re := regexp.MustCompile(pattern)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	select {
	case u, ok := <-found:
		if !ok {
			stop()
			return "", nil, errors.New("child exited before it was ready")
		}
		return u, stop, nil
	case <-time.After(60 * time.Second):
		stop()
		return "", nil, errors.New("child not ready after 60s")
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	}
}

func serveBaselineHandler(ctx context.Context, e *env, addr string) error {
	return serveChild(ctx, e, addr, bench.BaselineHandler(), "baseline on http://%s/router/rest\n")
}

// serveChild serves h on addr until ctx ends, for a parent bench that waits
// for the banner (its format takes the address).
func serveChild(ctx context.Context, e *env, addr string, h http.Handler, banner string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout}
	fmt.Fprintf(e.stderr, banner, ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

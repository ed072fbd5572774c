// Command daodian runs the in-store voucher gateway and administers its ledger.
//
// Every flag can also come from an environment variable DAODIAN_<FLAG> (upper case,
// dashes as underscores), e.g. DAODIAN_DB; a flag on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
)

// errUsage marks an error already explained to the user by the flag package.
var errUsage = errors.New("usage")

// exitError carries a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch: its streams and the process environment.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
}

func commands() []command {
	return []command{
		{"serve", "run the gateway (/router/rest, /healthz, /readyz, /metrics)", runServe},
		{"app", "apps: app create --name N --merchant M [--json] | app rotate-secret --app-key K [--grace 24h]", runApp},
		{"shop", "register shops: shop add --merchant M --shop-id S [--name N]", runShop},
		{"ticket", "tickets: ticket issue --merchant M … | ticket import FILE.csv | ticket show (--code C | --id T)", runTicket},
		{"call", "a signed call: call METHOD [name=value …] --app-key K --app-secret S", runCall},
		{"reverse", "a reversal that retries while retry=true: reverse --ticket-id T …", runReverse},
		{"audit", "check every ledger invariant; exit 1 on any violation", runAudit},
		{"records", "a merchant's records, a page at a time: records --merchant M [--from T] [--to T] [--kind …] [--cursor C]", runRecords},
		{"statement", "a merchant's day per shop and in total: statement --merchant M --date YYYY-MM-DD", runStatement},
		{"reconcile", "a POS's list of a day against the ledger; exit 1 on a difference: reconcile --merchant M --date D POS.csv", runReconcile},
		{"backup", "copy the embedded database while it serves: backup --to FILE [--db …]", runBackup},
		{"fault", "inject faults for integration tests: fault add|list|clear …", runFault},
		{"webhook", "webhooks of SPEC §9: webhook add|list|remove|deliveries|redeliver", runWebhook},
		{"admin", "tokens of the admin API (/admin/v1/): admin token create|list|revoke", runAdmin},
		{"bench", "the load generator of SPEC §6: ledger vs bare net/http baseline", runBench},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first SIGINT/SIGTERM asks for a graceful stop (serve finishes its
	// in-flight requests); restoring the default action then lets a second one
	// end the process at once, as an impatient operator expects.
	go func() {
		<-ctx.Done()
		stop()
	}()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv}
	os.Exit(run(ctx, e, os.Args[1:]))
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		var ee *exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.As(err, &ee):
			if ee.msg != "" {
				fmt.Fprintln(e.stderr, "daodian "+c.name+": "+ee.msg)
			}
			return ee.code
		default:
			fmt.Fprintln(e.stderr, "daodian "+c.name+": "+oneLine(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(e.stderr, "daodian: unknown command %q; run 'daodian help' for the list\n", args[0])
	return 2
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func usage(w io.Writer) {
	fmt.Fprintln(w, "daodian — the in-store voucher service (TOP gateway, ledger, reversal)")
	fmt.Fprintln(w, "\nusage: daodian COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery flag may also be set as DAODIAN_<FLAG>, e.g. DAODIAN_DB=daodian.db.")
}

// newFlags returns a flag set that reports errors to e.stderr.
func newFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("daodian "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parse parses flags that may be interleaved with positional arguments, then fills
// every flag not given on the command line from its DAODIAN_* environment variable.
func parse(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || bad != nil {
			return
		}
		name := "DAODIAN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := e.getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				bad = fmt.Errorf("environment variable %s: %v", name, err)
			}
		}
	})
	return pos, bad
}

// subcommand dispatches "daodian GROUP SUB …".
func subcommand(ctx context.Context, e *env, group string, args []string, subs map[string]func(context.Context, *env, []string) error) error {
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 {
		return &exitError{2, "missing subcommand; one of: " + strings.Join(names, ", ")}
	}
	f, ok := subs[args[0]]
	if !ok {
		return &exitError{2, fmt.Sprintf("unknown subcommand %q; one of: %s", args[0], strings.Join(names, ", "))}
	}
	return f(ctx, e, args[1:])
}

// startCPUProfile writes a pprof CPU profile to path ("" for none) until the
// returned stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

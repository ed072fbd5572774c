package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
)

// `daodian fault` manages the fault rules of a store (daodian/faults.go). The
// rules live in the store, so a rule added here applies to every gateway serving
// it, within gateway.DefaultFaultReload, without a restart.

func runFault(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "fault", args, map[string]func(context.Context, *env, []string) error{
		"add":   runFaultAdd,
		"list":  runFaultList,
		"clear": runFaultClear,
	})
}

// faultMethods are the short names `fault add --method` accepts besides the full
// method names.
var faultMethods = map[string]string{
	"time":    alsc.MethodTimeGet,
	"consult": alsc.MethodConsult,
	"use":     alsc.MethodUse,
	"reserve": alsc.MethodReserve,
	"reverse": alsc.MethodReserve,
	"refund":  alsc.MethodRefund,
}

func runFaultAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "fault add")
	appKey := fs.String("app-key", "", "app whose requests get the fault (required)")
	kind := fs.String("kind", "", "error, lose_response, delay or hold (required)")
	method := fs.String("method", "", "only this method: a full name or use, reserve (reverse), consult, refund, time (default: every method; hold: use)")
	ticketCode := fs.String("ticket-code", "", "only requests naming this ticket (by code; a reversal naming it by id matches too)")
	ticketID := fs.String("ticket-id", "", "only requests naming this ticket (by id; a use naming it by code matches too)")
	count := fs.Int("count", -1, "inject this many times in all, then the rule is gone; 0: no limit (default 1, or no limit with --probability)")
	probability := fs.Float64("probability", 0, "chance that a matching request gets the fault, in (0, 1] (default 1)")
	code := fs.Int("code", 0, "error: answer this platform error code instead of the method's transient failure (7, 11, 15, …)")
	delay := fs.Duration("delay", 0, "delay: how long the answer waits (at most 60s)")
	maxHold := fs.Duration("max-hold", 0, "hold: the longest a use is held when no later request of the app releases it (default 30s, at most 60s)")
	asJSON := fs.Bool("json", false, "print the rule as a JSON object")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *appKey == "" || *kind == "" {
		return &exitError{2, "--app-key and --kind are required"}
	}
	r := daodian.FaultRule{
		AppKey: *appKey, Kind: daodian.FaultKind(*kind), TicketID: *ticketID, TicketCode: *ticketCode,
		Count: *count, Probability: *probability, Code: *code,
	}
	if m, ok := faultMethods[*method]; ok {
		r.Method = m
	} else {
		r.Method = *method
	}
	if r.Kind == daodian.FaultHold && r.Method == "" {
		r.Method = alsc.MethodUse
	}
	if r.Count < 0 {
		r.Count = 1
		if r.Probability > 0 {
			r.Count = 0
		}
	}
	switch r.Kind {
	case daodian.FaultDelay:
		r.Wait = *delay
		if *maxHold != 0 {
			return &exitError{2, "--max-hold applies to hold rules; a delay rule takes --delay"}
		}
	case daodian.FaultHold:
		r.Wait = *maxHold
		if *delay != 0 {
			return &exitError{2, "--delay applies to delay rules; a hold rule takes --max-hold"}
		}
	default:
		if *delay != 0 || *maxHold != 0 {
			return &exitError{2, "--delay and --max-hold apply to delay and hold rules only"}
		}
	}
	if err := r.Validate(); err != nil {
		return &exitError{2, flagError(err)}
	}
	if err := gateway.CheckFaultRule(&r); err != nil {
		return &exitError{2, flagError(err)}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		added, err := l.AddFaultRule(ctx, r)
		if err != nil {
			return fmt.Errorf("%s", flagError(err))
		}
		if *asJSON {
			return printJSON(e.stdout, faultRuleJSON(added))
		}
		fmt.Fprintf(e.stdout, "fault rule %s added: %s\n", added.ID, describeFault(added))
		fmt.Fprintf(e.stdout, "gateways on this store apply it within %v (not those started with --no-faults); undo with: daodian fault clear --id %s\n",
			gateway.DefaultFaultReload, added.ID)
		return nil
	})
}

// flagError phrases a rule's invalid field as the flag that sets it.
func flagError(err error) string {
	if ip, ok := err.(*daodian.InvalidParameter); ok {
		name := strings.ReplaceAll(ip.Field, "_", "-")
		if name == "wait" {
			name = "delay / --max-hold"
		}
		return "--" + name + " " + ip.Reason
	}
	return err.Error()
}

// describeFault says in one line what a rule does.
func describeFault(r *daodian.FaultRule) string {
	var b strings.Builder
	b.WriteString(string(r.Kind))
	switch r.Kind {
	case daodian.FaultError:
		if r.Code != 0 {
			fmt.Fprintf(&b, " (code %d)", r.Code)
		}
	case daodian.FaultDelay:
		fmt.Fprintf(&b, " of %v", r.Wait)
	case daodian.FaultHold:
		fmt.Fprintf(&b, " (at most %v)", r.Wait)
	}
	method := r.Method
	if method == "" {
		method = "every method"
	}
	fmt.Fprintf(&b, " on %s of app %s", method, r.AppKey)
	if r.TicketID != "" {
		fmt.Fprintf(&b, ", ticket %s (code %s)", r.TicketID, r.TicketCode)
	}
	if r.Count > 0 {
		fmt.Fprintf(&b, ", %d more time", r.Count)
		if r.Count > 1 {
			b.WriteString("s")
		}
	} else {
		b.WriteString(", no limit")
	}
	if r.Probability < 1 {
		fmt.Fprintf(&b, ", probability %s", strconv.FormatFloat(r.Probability, 'g', -1, 64))
	}
	return b.String()
}

// faultJSON is the --json shape of a rule.
type faultJSON struct {
	ID         string `json:"id"`
	AppKey     string `json:"app_key"`
	Kind       string `json:"kind"`
	Method     string `json:"method,omitempty"`
	TicketID   string `json:"ticket_id,omitempty"`
	TicketCode string `json:"ticket_code,omitempty"`
	// Count is the injections left; 0 means no limit.
	Count       int     `json:"count"`
	Probability float64 `json:"probability"`
	Code        int     `json:"code,omitempty"`
	Delay       string  `json:"delay,omitempty"`
	MaxHold     string  `json:"max_hold,omitempty"`
	CreatedAt   string  `json:"created_at"`
}

func faultRuleJSON(r *daodian.FaultRule) faultJSON {
	j := faultJSON{
		ID: r.ID, AppKey: r.AppKey, Kind: string(r.Kind), Method: r.Method, TicketID: r.TicketID,
		TicketCode: r.TicketCode, Count: r.Count, Probability: r.Probability, Code: r.Code,
		CreatedAt: r.CreatedAt.UTC().Format(time.RFC3339),
	}
	switch r.Kind {
	case daodian.FaultDelay:
		j.Delay = r.Wait.String()
	case daodian.FaultHold:
		j.MaxHold = r.Wait.String()
	}
	return j
}

func runFaultList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "fault list")
	appKey := fs.String("app-key", "", "only the rules of this app")
	asJSON := fs.Bool("json", false, "print a JSON array")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		rules, err := l.FaultRules(ctx)
		if err != nil {
			return err
		}
		out := make([]faultJSON, 0, len(rules))
		for i := range rules {
			if *appKey == "" || rules[i].AppKey == *appKey {
				out = append(out, faultRuleJSON(&rules[i]))
			}
		}
		if *asJSON {
			return printJSON(e.stdout, out)
		}
		if len(out) == 0 {
			fmt.Fprintln(e.stdout, "no fault rules")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAPP_KEY\tKIND\tMETHOD\tTICKET_ID\tCOUNT\tPROBABILITY\tDETAIL")
		for _, j := range out {
			count := "no limit"
			if j.Count > 0 {
				count = strconv.Itoa(j.Count)
			}
			detail := j.Delay + j.MaxHold
			if j.Code != 0 {
				detail = "code " + strconv.Itoa(j.Code)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.AppKey, j.Kind, dash(j.Method), dash(j.TicketID),
				count, strconv.FormatFloat(j.Probability, 'g', -1, 64), dash(detail))
		}
		return tw.Flush()
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runFaultClear(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "fault clear")
	appKey := fs.String("app-key", "", "only the rules of this app (default: every app)")
	id := fs.String("id", "", "only this rule")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		n, err := l.ClearFaultRules(ctx, *appKey, *id)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%d fault rules cleared\n", n)
		return nil
	})
}

// announceFaults says at start whether this server injects faults and how many
// rules are armed, so that nobody mistakes an injected fault for a bug, nor takes
// a server for one that cannot inject. A store it cannot read is not fatal here:
// serving will report it.
func announceFaults(ctx context.Context, w io.Writer, l *daodian.Ledger, disabled bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rules, err := l.FaultRules(ctx)
	switch {
	case disabled && err == nil && len(rules) > 0:
		fmt.Fprintf(w, "daodian: fault injection is disabled (--no-faults): the %d fault rules in the store are ignored\n", len(rules))
	case disabled:
		fmt.Fprintln(w, "daodian: fault injection is disabled (--no-faults)")
	case err == nil && len(rules) > 0:
		fmt.Fprintf(w, "daodian: fault injection is ON: %d fault rules armed (daodian fault list); every injected fault is logged at WARN\n", len(rules))
	}
}

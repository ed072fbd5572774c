package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/webhook"
)

// `daodian webhook` manages the webhooks of a store (SPEC §9); `serve`
// delivers to them (package webhook). A webhook added here is picked up by
// every server of the store within a poll (webhook.DefaultPoll).

func runWebhook(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "webhook", args, map[string]func(context.Context, *env, []string) error{
		"add":        runWebhookAdd,
		"list":       runWebhookList,
		"remove":     runWebhookRemove,
		"deliveries": runWebhookDeliveries,
		"redeliver":  runWebhookRedeliver,
	})
}

func runWebhookAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "webhook add")
	merchant := fs.String("merchant", "", "the merchant whose events to deliver, which must exist (required)")
	url := fs.String("url", "", "the endpoint: http:// or https://, no user or password (required)")
	types := fs.String("types", "", "comma-separated event types to deliver (default: every type): "+eventTypes())
	asJSON := fs.Bool("json", false, `print {"webhook_id", "secret", "merchant_id", "url", "types", …}`)
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *merchant == "" || *url == "" {
		return &exitError{2, "--merchant and --url are required"}
	}
	ts, err := daodian.ParseEventTypes(*types)
	if err != nil {
		return &exitError{2, flagError(err)}
	}
	if _, err := daodian.CheckWebhookURL(*url); err != nil {
		return &exitError{2, flagError(err)}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		wh, err := l.AddWebhook(ctx, daodian.WebhookSpec{MerchantID: *merchant, URL: *url, Types: ts})
		if errors.Is(err, daodian.ErrNotFound) {
			return fmt.Errorf("no merchant %q in this store (a merchant exists once an app, a shop or a ticket names it)", *merchant)
		}
		if err != nil {
			return fmt.Errorf("%s", flagError(err))
		}
		if *asJSON {
			return printJSON(e.stdout, admin.WebhookWithSecret{Webhook: admin.WebhookOf(wh), Secret: wh.Secret})
		}
		fmt.Fprintf(e.stdout, "webhook_id %s\nsecret     %s\nmerchant   %s\nurl        %s\ntypes      %s\n",
			wh.ID, wh.Secret, wh.MerchantID, wh.URL, typesText(admin.WebhookOf(wh).Types))
		fmt.Fprintln(e.stdout, "This is the only time the secret is shown: it signs every delivery (X-Daodian-Signature), and the store keeps it sealed.")
		fmt.Fprintf(e.stdout, "The webhook receives the events committed from now on (after event %s); every server of this store delivers them within %s.\n",
			dash(wh.Cursor), webhook.DefaultPoll)
		return nil
	})
}

func eventTypes() string {
	names := make([]string, len(daodian.EventTypes))
	for i, t := range daodian.EventTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func typesText(ts []string) string {
	if len(ts) == 0 {
		return "all"
	}
	return strings.Join(ts, ",")
}

func runWebhookList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "webhook list")
	merchant := fs.String("merchant", "", "only this merchant's webhooks (default: every merchant's)")
	asJSON := fs.Bool("json", false, "print a JSON array")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		hooks, err := l.Webhooks(ctx, *merchant)
		if err != nil {
			return fmt.Errorf("%s", flagError(err))
		}
		out := make([]admin.Webhook, len(hooks))
		for i := range hooks {
			out[i] = admin.WebhookOf(&hooks[i])
		}
		if *asJSON {
			return printJSON(e.stdout, out)
		}
		if len(out) == 0 {
			fmt.Fprintln(e.stdout, "no webhooks (daodian webhook add --merchant M --url U)")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WEBHOOK_ID\tMERCHANT\tURL\tTYPES\tDONE THROUGH EVENT\tRETRYING\tCREATED")
		for _, w := range out {
			retrying := "-"
			if r := w.Retrying; r != nil {
				retrying = fmt.Sprintf("event %s, %d attempts, next %s", r.EventID, r.Attempts, r.NextAttemptAt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w.WebhookID, w.MerchantID, w.URL, typesText(w.Types), dash(w.Cursor), retrying, w.CreatedAt)
		}
		return tw.Flush()
	})
}

func runWebhookRemove(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "webhook remove")
	id := fs.String("webhook", "", "the webhook_id of the webhook to remove (required)")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *id == "" {
		return &exitError{2, "--webhook is required (the webhook_id that webhook list shows)"}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		err := l.RemoveWebhook(ctx, *id)
		if errors.Is(err, daodian.ErrNotFound) {
			return fmt.Errorf("no webhook has the id %q (daodian webhook list shows them)", *id)
		}
		if err != nil {
			return fmt.Errorf("%s", flagError(err))
		}
		fmt.Fprintf(e.stdout, "webhook %s removed, with its delivery attempts; servers stop delivering to it within %s\n", *id, webhook.DefaultPoll)
		return nil
	})
}

func runWebhookDeliveries(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "webhook deliveries")
	id := fs.String("webhook", "", "the webhook whose delivery attempts to show (required)")
	failed := fs.Bool("failed", false, "only the attempts that marked their event failed (retried for 24 h without success)")
	limit := fs.Int("limit", daodian.DefaultAttemptsPage, "the most attempts shown, newest first (at most "+strconv.Itoa(daodian.MaxAttemptsPage)+")")
	before := fs.String("before", "", "only attempts older than this attempt_id (the next page)")
	asJSON := fs.Bool("json", false, "print a JSON array")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *id == "" {
		return &exitError{2, "--webhook is required (the webhook_id that webhook list shows)"}
	}
	if *limit < 1 || *limit > daodian.MaxAttemptsPage {
		return &exitError{2, fmt.Sprintf("--limit must be between 1 and %d", daodian.MaxAttemptsPage)}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		as, err := l.DeliveryAttempts(ctx, daodian.AttemptQuery{WebhookID: *id, FailedOnly: *failed, BeforeID: *before, Limit: *limit})
		if errors.Is(err, daodian.ErrNotFound) {
			return fmt.Errorf("no webhook has the id %q (daodian webhook list shows them)", *id)
		}
		if err != nil {
			return fmt.Errorf("%s", flagError(err))
		}
		out := make([]admin.DeliveryAttempt, len(as))
		for i := range as {
			out[i] = admin.DeliveryAttemptOf(&as[i])
		}
		if *asJSON {
			return printJSON(e.stdout, out)
		}
		if len(out) == 0 {
			fmt.Fprintln(e.stdout, "no delivery attempts")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ATTEMPT_ID\tAT\tEVENT_ID\tTYPE\tATTEMPT\tOUTCOME\tHTTP\tLATENCY_MS\tERROR")
		for _, a := range out {
			attempt := strconv.Itoa(a.Attempt)
			if a.Redelivery {
				attempt += " (redelivery)"
			}
			status := "-"
			if a.HTTPStatus != 0 {
				status = strconv.Itoa(a.HTTPStatus)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\n", a.AttemptID, a.At, a.EventID, a.Type, attempt, a.Outcome, status, a.LatencyMS, dash(a.Error))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(out) == *limit {
			fmt.Fprintf(e.stdout, "older attempts: --before %s\n", out[len(out)-1].AttemptID)
		}
		return nil
	})
}

func runWebhookRedeliver(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "webhook redeliver")
	event := fs.String("event", "", "the event_id to send again (required)")
	id := fs.String("webhook", "", "only to this webhook (default: every webhook of the event's merchant that receives its type and has gone past it)")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *event == "" {
		return &exitError{2, "--event is required (an event_id: deliveries and GET /admin/v1/events show them)"}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		queued, err := l.Redeliver(ctx, *event, *id)
		if err != nil {
			return fmt.Errorf("%s", flagError(err))
		}
		fmt.Fprintf(e.stdout, "event %s queued for redelivery to webhook %s; servers send it within %s, before the webhook's next events\n",
			*event, strings.Join(queued, ", "), webhook.DefaultPoll)
		return nil
	})
}

// webhookServeFlags are the flags of serve's deliverer.
type webhookServeFlags struct {
	concurrency   *int
	allowMetadata *bool
}

// addWebhookFlags registers serve's webhook flags.
func addWebhookFlags(fs *flag.FlagSet) webhookServeFlags {
	return webhookServeFlags{
		concurrency: fs.Int("webhook-concurrency", webhook.DefaultMaxConcurrent, "most webhook deliveries in flight at once, across webhooks"),
		allowMetadata: fs.Bool("webhook-allow-metadata", false,
			"let webhooks reach link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, 100.100.100.200, fd00:ec2::254), refused by default"),
	}
}

// startWebhooks starts serve's deliverer and returns its stop, which may be
// called more than once.
func startWebhooks(l *daodian.Ledger, f webhookServeFlags, reg prometheus.Registerer, logger *slog.Logger) func() {
	d := webhook.Start(l, webhook.Config{MaxConcurrent: max(*f.concurrency, 1), AllowMetadata: *f.allowMetadata, Logger: logger, Registerer: reg})
	return sync.OnceFunc(d.Stop)
}

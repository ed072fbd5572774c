package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/top"
)

// withLedger opens the store named by ref, runs fn on a ledger over it, and closes it.
func withLedger(ctx context.Context, ref storeRef, fn func(*daodian.Ledger) error) error {
	s, err := openStore(ctx, ref, false)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(daodian.NewLedger(s, daodian.Config{}))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func runApp(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "app", args, map[string]func(context.Context, *env, []string) error{
		"create":        runAppCreate,
		"rotate-secret": runAppRotateSecret,
	})
}

// appCacheTTL is how long a gateway trusts an app it has read (the default
// gateway.Config.AppCacheTTL, which serve keeps): a rotated secret reaches every
// gateway within it.
const appCacheTTL = 2 * time.Second

func runAppRotateSecret(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "app rotate-secret")
	appKey := fs.String("app-key", "", "the app whose secret to replace (required)")
	grace := fs.Duration("grace", 24*time.Hour, "how long the replaced secret keeps working, so running terminals can be updated (0: it stops at once; at most 720h)")
	asJSON := fs.Bool("json", false, "print a JSON object")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *appKey == "" {
		return &exitError{2, "--app-key is required"}
	}
	if *grace < 0 || *grace > daodian.MaxSecretGrace {
		return &exitError{2, fmt.Sprintf("--grace must be between 0 and %s", daodian.MaxSecretGrace)}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		app, err := l.RotateAppSecret(ctx, *appKey, *grace)
		if errors.Is(err, daodian.ErrNotFound) {
			return fmt.Errorf("no app has the key %q", *appKey)
		}
		if err != nil {
			return err
		}
		until := app.PreviousSecretUntil
		if *grace == 0 {
			until = l.Now() // the previous secret stopped now
		}
		if *asJSON {
			return printJSON(e.stdout, map[string]any{
				"app_key": app.Key, "app_secret": app.Secret, "previous_secret_valid_until": top.FormatTime(until),
			})
		}
		fmt.Fprintf(e.stdout, "app_key    %s\napp_secret %s\n", app.Key, app.Secret)
		if *grace == 0 {
			fmt.Fprintf(e.stdout, "every gateway accepts the new secret, and refuses the previous one, within %s\n", appCacheTTL)
		} else {
			fmt.Fprintf(e.stdout, "every gateway accepts the new secret within %s, and the previous one until %s (GMT+8)\n", appCacheTTL, top.FormatTime(until))
		}
		return nil
	})
}

func runAppCreate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "app create")
	name := fs.String("name", "", "app name (required)")
	merchant := fs.String("merchant", "", "merchant id the app is bound to; created if new (required)")
	methods := fs.String("methods", "", "comma-separated methods the app may call (default: all)")
	rateLimit := fs.Int("rate-limit", 0, "calls per second per gateway process (0: unlimited)")
	asJSON := fs.Bool("json", false, "print a JSON object")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *name == "" || *merchant == "" {
		return &exitError{2, "--name and --merchant are required"}
	}
	var ms []string
	for _, m := range strings.Split(*methods, ",") {
		if m = strings.TrimSpace(m); m != "" {
			ms = append(ms, m)
		}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		app, err := l.CreateApp(ctx, daodian.AppSpec{Name: *name, MerchantID: *merchant, Methods: ms, RateLimitPerS: *rateLimit})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, map[string]any{
				"app_key": app.Key, "app_secret": app.Secret, "name": app.Name, "merchants": app.Merchants,
				"methods": app.Methods, "rate_limit_per_s": app.RateLimitPerS,
			})
		}
		fmt.Fprintf(e.stdout, "app_key    %s\napp_secret %s\nmerchant   %s\n", app.Key, app.Secret, *merchant)
		return nil
	})
}

func runShop(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "shop", args, map[string]func(context.Context, *env, []string) error{
		"add": runShopAdd,
	})
}

func runShopAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "shop add")
	merchant := fs.String("merchant", "", "merchant id; created if new (required)")
	shopID := fs.String("shop-id", "", "shop id (required)")
	name := fs.String("name", "", "shop name (default: the shop id)")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *merchant == "" || *shopID == "" {
		return &exitError{2, "--merchant and --shop-id are required"}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		if err := l.AddShop(ctx, daodian.Shop{MerchantID: *merchant, ID: *shopID, Name: *name}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "shop %s added to merchant %s\n", *shopID, *merchant)
		return nil
	})
}

func runTicket(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "ticket", args, map[string]func(context.Context, *env, []string) error{
		"issue":  runTicketIssue,
		"import": runTicketImport,
		"show":   runTicketShow,
	})
}

// issuedJSON is the --json shape of an issued order.
type issuedJSON struct {
	AlscOrderNo    string       `json:"alsc_order_no"`
	AlscSubOrderNo string       `json:"alsc_sub_order_no"`
	MerchantID     string       `json:"merchant_id"`
	ItemID         string       `json:"item_id"`
	ItemName       string       `json:"item_name"`
	Tickets        []ticketJSON `json:"tickets"`
}

type ticketJSON struct {
	TicketID    string `json:"ticket_id"`
	TicketCode  string `json:"ticket_code"`
	Quantity    int    `json:"quantity"`
	AmountCents int64  `json:"amount_cents"`
	ValidTo     string `json:"valid_to"`
}

func toIssuedJSON(o *daodian.Issued) issuedJSON {
	out := issuedJSON{
		AlscOrderNo: o.Order.OrderNo, AlscSubOrderNo: o.Order.SubOrderNo, MerchantID: o.Order.MerchantID,
		ItemID: o.Order.ItemID, ItemName: o.Order.ItemName, Tickets: []ticketJSON{},
	}
	for _, t := range o.Tickets {
		out.Tickets = append(out.Tickets, ticketJSON{
			TicketID: t.ID, TicketCode: t.Code, Quantity: t.Quantity, AmountCents: t.TotalAmountCents,
			ValidTo: top.FormatTime(t.ValidTo),
		})
	}
	return out
}

func runTicketIssue(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ticket issue")
	merchant := fs.String("merchant", "", "merchant id; created if new (required)")
	count := fs.Int("count", 1, "tickets in the order (a group-buy of K vouchers)")
	quantity := fs.Int("quantity", 1, "units per ticket (N for an N-times card)")
	item := fs.String("item-name", "到店券", "item name")
	amount := fs.Int64("amount-cents", 0, "price of one ticket in cents")
	days := fs.Int("valid-days", 30, "days the tickets stay valid")
	phone := fs.String("phone", "", "buyer phone (stored masked)")
	asJSON := fs.Bool("json", false, "print a JSON object")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *merchant == "" {
		return &exitError{2, "--merchant is required"}
	}
	if *days < 1 || *days > 3650 {
		return &exitError{2, "--valid-days must be between 1 and 3650"}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		now := l.Now()
		o, err := l.Issue(ctx, daodian.IssueRequest{
			MerchantID: *merchant, Count: *count, Quantity: *quantity, ItemName: *item,
			TotalAmountCents: *amount, ValidFrom: now, ValidTo: now.Add(time.Duration(*days) * 24 * time.Hour),
			UserPhone: *phone,
		})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, toIssuedJSON(o))
		}
		fmt.Fprintf(e.stdout, "order %s sub-order %s (%s)\n", o.Order.OrderNo, o.Order.SubOrderNo, o.Order.ItemName)
		for _, t := range o.Tickets {
			fmt.Fprintf(e.stdout, "  ticket_id %s  ticket_code %s  quantity %d\n", t.ID, t.Code, t.Quantity)
		}
		return nil
	})
}

func runAudit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	asJSON := fs.Bool("json", false, "print a JSON object")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		rep, err := l.Audit(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			vs := make([]string, 0, len(rep.Violations))
			for _, v := range rep.Violations {
				vs = append(vs, v.String())
			}
			if err := printJSON(e.stdout, map[string]any{
				"tickets": rep.Tickets, "uses": rep.Uses, "reversed": rep.Reversed, "refunded": rep.Refunded,
				"idempotency_records": rep.Idem, "violations": vs, "truncated": rep.Truncated, "ok": len(vs) == 0,
			}); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(e.stdout, "audited %d tickets, %d uses (%d reversed, %d refunded), %d idempotency records\n",
				rep.Tickets, rep.Uses, rep.Reversed, rep.Refunded, rep.Idem)
			for _, v := range rep.Violations {
				fmt.Fprintln(e.stdout, "VIOLATION "+v.String())
			}
		}
		if len(rep.Violations) > 0 {
			return &exitError{1, fmt.Sprintf("%d invariant violations", len(rep.Violations))}
		}
		if !*asJSON {
			fmt.Fprintln(e.stdout, "ok: every invariant holds")
		}
		return nil
	})
}

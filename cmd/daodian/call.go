package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/top"
)

const defaultURL = "http://127.0.0.1:8080/router/rest"

// clientFlags are the flags of every command that calls a gateway.
type clientFlags struct {
	url, appKey, secret, format, signMethod string
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	c := &clientFlags{}
	fs.StringVar(&c.url, "url", defaultURL, "gateway URL")
	fs.StringVar(&c.appKey, "app-key", "", "app key (required)")
	fs.StringVar(&c.secret, "app-secret", "", "app secret (required)")
	fs.StringVar(&c.format, "format", "json", "answer format: json or xml")
	fs.StringVar(&c.signMethod, "sign-method", top.SignHMACSHA256, "md5, hmac or hmac-sha256")
	return c
}

func (c *clientFlags) client() (*client.Client, top.Format, error) {
	if c.appKey == "" || c.secret == "" {
		return nil, 0, &exitError{2, "--app-key and --app-secret are required (or DAODIAN_APP_KEY / DAODIAN_APP_SECRET)"}
	}
	f, ok := top.ParseFormat(c.format)
	if !ok {
		return nil, 0, &exitError{2, "--format must be json or xml"}
	}
	switch c.signMethod {
	case top.SignMD5, top.SignHMAC, top.SignHMACSHA256:
	default:
		return nil, 0, &exitError{2, "--sign-method must be md5, hmac or hmac-sha256"}
	}
	return client.New(c.url, c.appKey, c.secret, client.WithFormat(f, false), client.WithSignMethod(c.signMethod)), f, nil
}

func runCall(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "call")
	cf := addClientFlags(fs)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return &exitError{2, "usage: daodian call METHOD [name=value …] --app-key K --app-secret S"}
	}
	c, f, err := cf.client()
	if err != nil {
		return err
	}
	params := map[string]string{}
	for _, kv := range pos[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return &exitError{2, fmt.Sprintf("argument %q is not name=value", kv)}
		}
		if _, dup := params[k]; dup {
			return &exitError{2, fmt.Sprintf("parameter %q given twice", k)}
		}
		params[k] = v
	}
	body, err := c.Call(ctx, pos[0], params)
	if err != nil {
		return explainNoAnswer(err)
	}
	if f == top.JSON {
		var out bytes.Buffer
		if json.Indent(&out, body, "", "  ") == nil {
			body = out.Bytes()
		}
	}
	fmt.Fprintln(e.stdout, strings.TrimRight(string(body), "\n"))
	// The answer is printed either way; the exit code tells a script whether it was
	// an error_response.
	if bytes.Contains(body, []byte("error_response")) {
		var pe *client.Error
		if errors.As(client.Decode(body, f, false, pos[0], &struct{}{}), &pe) {
			return &exitError{1, ""}
		}
	}
	return nil
}

func runReverse(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "reverse")
	cf := addClientFlags(fs)
	ticketID := fs.String("ticket-id", "", "ticket id (required)")
	transID := fs.String("trans-id", "", "use transaction id (default: the latest use by this app)")
	requestID := fs.String("request-id", "", "idempotency key, kept across retries (default: a fresh one)")
	bizDate := fs.String("biz-date", "", "business time yyyy-MM-dd HH:mm:ss GMT+8 (default: now)")
	attempts := fs.Int("max-attempts", 8, "most calls before giving up")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *ticketID == "" {
		return &exitError{2, "--ticket-id is required"}
	}
	c, _, err := cf.client()
	if err != nil {
		return err
	}
	if *requestID == "" {
		*requestID = client.NewRequestID()
	}
	req := alsc.TicketReverseTopRequest{TicketID: *ticketID, TicketUseTransID: *transID, RequestID: *requestID, BizDate: *bizDate}
	res, err := c.ReverseWithRetry(ctx, req, client.RetryPolicy{
		MaxAttempts: *attempts,
		OnRetry: func(attempt int, why error) {
			fmt.Fprintf(e.stderr, "attempt %d: %v; retrying with request_id %s\n", attempt, oneLine(why.Error()), *requestID)
		},
	})
	if res != nil {
		if perr := printJSON(e.stdout, map[string]any{"request_id": *requestID, "result": res.Result, "trace_id": res.RequestID}); perr != nil {
			return perr
		}
	}
	if err != nil {
		if errors.Is(err, client.ErrNotDefinitive) {
			last := "the answer said retry=true"
			var te *client.TransportError
			var pe *client.Error
			switch {
			case errors.As(err, &te):
				last = explainNoAnswer(te).Error()
			case errors.As(err, &pe):
				last = pe.Error()
			}
			return &exitError{3, fmt.Sprintf("no definitive answer after %d attempts; last: %s; retry later with --request-id %s", *attempts, oneLine(last), *requestID)}
		}
		return explainNoAnswer(err)
	}
	if !res.Result.Success {
		return &exitError{1, fmt.Sprintf("reversal refused: %s (%s)", res.Result.ErrorCode, res.Result.ErrorMsg)}
	}
	return nil
}

// explainNoAnswer adds what to check to a call that found nothing listening. The
// SDK's error already names the endpoint (scheme, host and path: never the signed
// query) and the cause.
func explainNoAnswer(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return fmt.Errorf("%w (is daodian serve running there? see --url or DAODIAN_URL)", err)
	}
	return err
}

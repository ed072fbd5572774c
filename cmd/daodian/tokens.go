package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/top"
)

// `daodian admin token` manages the admin tokens of a store (SPEC §10): the
// bearer tokens of the admin API that `serve` mounts under /admin/v1/. A token
// is printed once, when it is created; the store keeps only its hash.

func runAdmin(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "admin", args, map[string]func(context.Context, *env, []string) error{
		"token": runAdminToken,
	})
}

func runAdminToken(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "admin token", args, map[string]func(context.Context, *env, []string) error{
		"create": runTokenCreate,
		"list":   runTokenList,
		"revoke": runTokenRevoke,
	})
}

// tokenJSON is the --json shape of a token in lists: never the token, nor its
// hash.
type tokenJSON struct {
	TokenID string `json:"token_id"`
	Name    string `json:"name"`
	// MerchantID is the one merchant the token sees; "" for every merchant.
	MerchantID string `json:"merchant_id"`
	CreatedAt  string `json:"created_at"`
	// RevokedAt is "" while the token is valid.
	RevokedAt string `json:"revoked_at"`
}

// createdTokenJSON is the --json shape of a created token: the one place the
// token itself is shown.
type createdTokenJSON struct {
	TokenID    string `json:"token_id"`
	Token      string `json:"token"`
	Name       string `json:"name"`
	MerchantID string `json:"merchant_id"`
}

func toTokenJSON(t *daodian.AdminToken) tokenJSON {
	j := tokenJSON{TokenID: t.ID, Name: t.Name, MerchantID: t.MerchantID, CreatedAt: top.FormatTime(t.CreatedAt)}
	if t.Revoked() {
		j.RevokedAt = top.FormatTime(t.RevokedAt)
	}
	return j
}

// scope says in words what a token sees.
func scope(t *daodian.AdminToken) string {
	if t.MerchantID == "" {
		return "all merchants"
	}
	return "merchant " + t.MerchantID
}

func runTokenCreate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "admin token create")
	name := fs.String("name", "", "what the token is for, shown by list (required)")
	merchant := fs.String("merchant", "", "scope the token to this merchant, which must exist (default: every merchant)")
	asJSON := fs.Bool("json", false, `print {"token_id", "token", "name", "merchant_id"}`)
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *name == "" {
		return &exitError{2, "--name is required"}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		tok, token, err := l.CreateAdminToken(ctx, *name, *merchant)
		if err != nil {
			return fmt.Errorf("%s", flagError(err))
		}
		if *asJSON {
			return printJSON(e.stdout, createdTokenJSON{TokenID: tok.ID, Token: token, Name: tok.Name, MerchantID: tok.MerchantID})
		}
		fmt.Fprintf(e.stdout, "token_id %s\ntoken    %s\nscope    %s\n", tok.ID, token, scope(tok))
		fmt.Fprintln(e.stdout, "This is the only time the token is shown: the store keeps its hash only. Send it as")
		fmt.Fprintf(e.stdout, "  Authorization: Bearer %s\n", token)
		fmt.Fprintf(e.stdout, "to %s on any server of this store. Revoke it with: daodian admin token revoke --id %s\n", admin.Prefix, tok.ID)
		return nil
	})
}

func runTokenList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "admin token list")
	asJSON := fs.Bool("json", false, "print a JSON array")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		tokens, err := l.AdminTokens(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			out := make([]tokenJSON, len(tokens))
			for i := range tokens {
				out[i] = toTokenJSON(&tokens[i])
			}
			return printJSON(e.stdout, out)
		}
		if len(tokens) == 0 {
			fmt.Fprintln(e.stdout, "no admin tokens (daodian admin token create --name N [--merchant M])")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOKEN_ID\tNAME\tSCOPE\tCREATED\tREVOKED")
		for i := range tokens {
			j := toTokenJSON(&tokens[i])
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.TokenID, j.Name, scope(&tokens[i]), j.CreatedAt, dash(j.RevokedAt))
		}
		return tw.Flush()
	})
}

func runTokenRevoke(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "admin token revoke")
	id := fs.String("id", "", "the token_id of the token to revoke (daodian admin token list) (required)")
	ref := storeFlags(fs, defaultDB, "embedded database file, or a postgres:// URL")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *id == "" {
		return &exitError{2, "--id is required (the token_id that admin token list shows)"}
	}
	return withLedger(ctx, *ref, func(l *daodian.Ledger) error {
		tok, err := l.RevokeAdminToken(ctx, *id)
		if errors.Is(err, daodian.ErrNotFound) {
			return fmt.Errorf("no admin token has the id %q (daodian admin token list shows them)", *id)
		}
		if err != nil {
			return fmt.Errorf("%s", flagError(err))
		}
		fmt.Fprintf(e.stdout, "admin token %s (%s, %s) revoked at %s (GMT+8); every server of this store refuses it within %s\n",
			tok.ID, tok.Name, scope(tok), top.FormatTime(tok.RevokedAt), admin.DefaultTokenCacheTTL)
		return nil
	})
}

// announceAdmin says at start where the admin API is and whether any token can
// use it, so that an operator is not left guessing at a 401.
func announceAdmin(ctx context.Context, w io.Writer, l *daodian.Ledger, base string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tokens, err := l.AdminTokens(ctx)
	if err != nil {
		return // serving will report a store it cannot read
	}
	valid := 0
	for i := range tokens {
		if !tokens[i].Revoked() {
			valid++
		}
	}
	if valid == 0 {
		fmt.Fprintf(w, "daodian: admin API on %s%s: no valid admin token yet (daodian admin token create --name N)\n", base, admin.Prefix)
		return
	}
	fmt.Fprintf(w, "daodian: admin API on %s%s (%d valid admin tokens)\n", base, admin.Prefix, valid)
}

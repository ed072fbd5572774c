package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// RunAdminTokens runs the contract of the admin-token methods of Store
// (daodian/tokens.go, SPEC §10) and the Ledger's token rules as subtests of t.
// Stores call it beside Run.
func RunAdminTokens(t *testing.T, f Factory) {
	if f.Open == nil {
		t.Fatal("storetest: Factory.Open is nil")
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"RoundTrip", testTokenRoundTrip},
		{"Duplicate", testTokenDuplicate},
		{"Revoke", testTokenRevoke},
		{"ConcurrentRevoke", testTokenConcurrentRevoke},
		{"Durable", testTokenDurable},
		{"LedgerCreate", testTokenLedgerCreate},
		{"LedgerRevoke", testTokenLedgerRevoke},
		{"LedgerBound", testTokenLedgerBound},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

// adminToken returns a token with every field set, distinct for each n; odd n
// are scoped to a merchant.
func adminToken(n int) *daodian.AdminToken {
	tok := &daodian.AdminToken{
		ID: tid(800000 + n), Name: fmt.Sprintf("ops-%d 运维", n),
		Hash: daodian.HashAdminToken(fmt.Sprintf("dd_token-%d", n)), CreatedAt: at(n),
	}
	if n%2 == 1 {
		tok.MerchantID = fmt.Sprintf("M%03d", n)
	}
	return tok
}

func putTokens(t *testing.T, s daodian.Store, tokens ...*daodian.AdminToken) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, tok := range tokens {
			if err := tx.InsertAdminToken(ctx, tok); err != nil {
				return err
			}
		}
		return nil
	})
}

func readTokens(t *testing.T, s daodian.Store) []daodian.AdminToken {
	t.Helper()
	var tokens []daodian.AdminToken
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		var err error
		tokens, err = tx.AdminTokens(ctx)
		return err
	})
	return tokens
}

// readToken reads a token by id and by hash, and checks both find the same.
func readToken(t *testing.T, s daodian.Store, id, hash string) *daodian.AdminToken {
	t.Helper()
	var byID, byHash *daodian.AdminToken
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		var err error
		if byID, err = tx.AdminToken(ctx, id); err != nil {
			return err
		}
		byHash, err = tx.AdminTokenByHash(ctx, hash)
		return err
	})
	same(t, "AdminTokenByHash against AdminToken", byID, byHash)
	return byID
}

func testTokenRoundTrip(t *testing.T, f Factory) {
	s := f.Open(t)
	if got := readTokens(t, s); len(got) != 0 {
		t.Fatalf("a new store has tokens: %+v", got)
	}
	// Inserted out of order, listed in id order.
	putTokens(t, s, adminToken(3), adminToken(1), adminToken(2))
	got := readTokens(t, s)
	same(t, "AdminTokens", []daodian.AdminToken{*adminToken(1), *adminToken(2), *adminToken(3)}, got)
	for n := 1; n <= 3; n++ {
		want := adminToken(n)
		same(t, "AdminToken", want, readToken(t, s, want.ID, want.Hash))
	}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		_, err := tx.AdminToken(ctx, tid(800009))
		wantErr(t, "AdminToken(missing)", err, daodian.ErrNotFound)
		_, err = tx.AdminTokenByHash(ctx, daodian.HashAdminToken("dd_unknown"))
		wantErr(t, "AdminTokenByHash(missing)", err, daodian.ErrNotFound)
		// A hash is matched exactly: not by prefix, nor in another case.
		_, err = tx.AdminTokenByHash(ctx, adminToken(1).Hash[:32])
		wantErr(t, "AdminTokenByHash(a prefix)", err, daodian.ErrNotFound)
		_, err = tx.AdminTokenByHash(ctx, strings.ToUpper(adminToken(1).Hash))
		wantErr(t, "AdminTokenByHash(upper case)", err, daodian.ErrNotFound)
		return nil
	})
}

func testTokenDuplicate(t *testing.T, f Factory) {
	s := f.Open(t)
	putTokens(t, s, adminToken(1))
	sameID := adminToken(2)
	sameID.ID = adminToken(1).ID
	sameHash := adminToken(3)
	sameHash.Hash = adminToken(1).Hash
	for what, tok := range map[string]*daodian.AdminToken{"a repeated id": sameID, "a repeated hash": sameHash} {
		err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
			if err := tx.InsertAdminToken(ctx, adminToken(4)); err != nil {
				return err
			}
			return tx.InsertAdminToken(ctx, tok)
		})
		wantErr(t, "InsertAdminToken with "+what, err, daodian.ErrDuplicate)
	}
	// Neither the duplicate nor the token inserted before it in the same
	// Update was kept.
	same(t, "AdminTokens after refused inserts", []daodian.AdminToken{*adminToken(1)}, readTokens(t, s))
}

func testTokenRevoke(t *testing.T, f Factory) {
	s := f.Open(t)
	tok := adminToken(1)
	putTokens(t, s, tok, adminToken(2))
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.RevokeAdminToken(ctx, tok.ID, at(5)) })
	want := *tok
	want.RevokedAt = at(5)
	same(t, "revoked token", &want, readToken(t, s, tok.ID, tok.Hash))
	if got := readToken(t, s, tok.ID, tok.Hash); !got.Revoked() {
		t.Error("a revoked token does not say so")
	}
	// Revoking again keeps the first revocation's time.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.RevokeAdminToken(ctx, tok.ID, at(7)) })
	same(t, "token revoked twice", &want, readToken(t, s, tok.ID, tok.Hash))
	// The other token is untouched.
	same(t, "another token", adminToken(2), readToken(t, s, adminToken(2).ID, adminToken(2).Hash))
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.RevokeAdminToken(ctx, tid(800009), at(5)) })
	wantErr(t, "RevokeAdminToken(missing)", err, daodian.ErrNotFound)
	// A revocation in an Update that fails is not kept.
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.RevokeAdminToken(ctx, adminToken(2).ID, at(6)); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "Update failing after a revocation", err, errBoom)
	same(t, "token after a failed revocation", adminToken(2), readToken(t, s, adminToken(2).ID, adminToken(2).Hash))
}

// testTokenConcurrentRevoke: concurrent revocations of one token, each with its
// own time, agree on one revocation time: the first one committed.
func testTokenConcurrentRevoke(t *testing.T, f Factory) {
	s := f.Open(t)
	tok := adminToken(1)
	putTokens(t, s, tok)
	const n = 16
	seen := make([]time.Time, n)
	errs := make([]error, n)
	Parallel(n, func(i int) {
		ctx := context.Background()
		errs[i] = s.Update(ctx, func(tx daodian.Tx) error {
			if err := tx.RevokeAdminToken(ctx, tok.ID, at(10+i)); err != nil {
				return err
			}
			got, err := tx.AdminToken(ctx, tok.ID)
			if err == nil {
				seen[i] = got.RevokedAt
			}
			return err
		})
	})
	final := readToken(t, s, tok.ID, tok.Hash).RevokedAt
	if final.IsZero() {
		t.Fatal("no revocation was kept")
	}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("revocation %d: %v", i, errs[i])
		} else if !seen[i].Equal(final) {
			t.Errorf("revocation %d saw the token revoked at %v; it stayed revoked at %v", i, seen[i], final)
		}
	}
}

func testTokenDurable(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("the factory cannot reopen a store")
	}
	s := f.Open(t)
	putTokens(t, s, adminToken(1), adminToken(2))
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.RevokeAdminToken(ctx, adminToken(2).ID, at(5))
	})
	s = f.Reopen(t, s)
	revoked := *adminToken(2)
	revoked.RevokedAt = at(5)
	same(t, "AdminTokens after reopening", []daodian.AdminToken{*adminToken(1), revoked}, readTokens(t, s))
}

func testTokenLedgerCreate(t *testing.T, f Factory) {
	w := NewWorld(t, f.Open(t))
	all, secretAll, err := w.Ledger.CreateAdminToken(w.Ctx, "ops", "")
	must(t, err)
	scoped, secretM1, err := w.Ledger.CreateAdminToken(w.Ctx, "m1 back office", M1)
	must(t, err)
	for _, c := range []struct {
		tok      *daodian.AdminToken
		secret   string
		merchant string
	}{{all, secretAll, ""}, {scoped, secretM1, M1}} {
		if !daodian.WellFormedAdminToken(c.secret) || !strings.HasPrefix(c.secret, "dd_") || len(c.secret) != daodian.AdminTokenLen {
			t.Errorf("token %q is not dd_ and %d characters of base64url", c.secret, daodian.AdminTokenLen-3)
		}
		if c.tok.Hash != daodian.HashAdminToken(c.secret) || c.tok.MerchantID != c.merchant || c.tok.Revoked() ||
			!c.tok.CreatedAt.Equal(w.Clock.Now()) || len(c.tok.ID) != 19 {
			t.Errorf("created %+v: want the hash of its token, merchant %q, created now, not revoked", c.tok, c.merchant)
		}
		got, err := w.Ledger.AdminTokenByHash(w.Ctx, daodian.HashAdminToken(c.secret))
		must(t, err)
		same(t, "AdminTokenByHash of a created token", c.tok, got)
	}
	if secretAll == secretM1 {
		t.Error("two tokens are equal")
	}
	if !all.Sees(M1) || !all.Sees(M2) || !scoped.Sees(M1) || scoped.Sees(M2) {
		t.Error("Sees: an all-merchants token sees every merchant, a scoped one only its own")
	}
	// The store keeps the hash, never the token.
	for _, tok := range readTokens(t, w.Store) {
		if s := fmt.Sprintf("%+v", tok); strings.Contains(s, secretAll) || strings.Contains(s, secretM1) {
			t.Errorf("a stored token holds the token itself: %s", s)
		}
	}

	before := readTokens(t, w.Store)
	for _, c := range []struct{ name, merchant, field string }{
		{"", "", "name"},
		{strings.Repeat("n", daodian.MaxNameLen+1), "", "name"},
		{"ops\n", "", "name"},
		{"ops", "no-such-merchant", "merchant"},
		{"ops", "m\x00", "merchant"},
	} {
		_, secret, err := w.Ledger.CreateAdminToken(w.Ctx, c.name, c.merchant)
		var ip *daodian.InvalidParameter
		if !errors.As(err, &ip) || ip.Field != c.field || secret != "" {
			t.Errorf("CreateAdminToken(%q, %q): %v, %q; want an invalid %s", c.name, c.merchant, err, secret, c.field)
		}
	}
	same(t, "tokens after refused creations", before, readTokens(t, w.Store))
}

func testTokenLedgerRevoke(t *testing.T, f Factory) {
	w := NewWorld(t, f.Open(t))
	tok, _, err := w.Ledger.CreateAdminToken(w.Ctx, "ops", M2)
	must(t, err)
	other, _, err := w.Ledger.CreateAdminToken(w.Ctx, "other", "")
	must(t, err)
	w.Clock.Advance(time.Hour)
	revokedAt := w.Clock.Now()
	got, err := w.Ledger.RevokeAdminToken(w.Ctx, tok.ID)
	must(t, err)
	want := *tok
	want.RevokedAt = revokedAt
	same(t, "RevokeAdminToken", &want, got)
	// Idempotent: the first revocation's time stands.
	w.Clock.Advance(time.Hour)
	got, err = w.Ledger.RevokeAdminToken(w.Ctx, tok.ID)
	must(t, err)
	same(t, "RevokeAdminToken again", &want, got)
	stored, err := w.Ledger.AdminTokenByHash(w.Ctx, tok.Hash)
	must(t, err)
	same(t, "a revoked token as stored", &want, stored)
	if got, _ := w.Ledger.AdminTokenByHash(w.Ctx, other.Hash); got == nil || got.Revoked() {
		t.Errorf("revoking one token touched another: %+v", got)
	}

	_, err = w.Ledger.RevokeAdminToken(w.Ctx, tid(800009))
	wantErr(t, "RevokeAdminToken(unknown id)", err, daodian.ErrNotFound)
	for _, id := range []string{"", "12ab", strings.Repeat("1", 40)} {
		_, err := w.Ledger.RevokeAdminToken(w.Ctx, id)
		var ip *daodian.InvalidParameter
		if !errors.As(err, &ip) || ip.Field != "id" {
			t.Errorf("RevokeAdminToken(%q): %v, want an invalid id", id, err)
		}
	}
}

func testTokenLedgerBound(t *testing.T, f Factory) {
	w := NewWorld(t, f.Open(t))
	// The store at the bound, written directly: MaxAdminTokens creations
	// would each read the whole list.
	update(t, w.Store, func(ctx context.Context, tx daodian.Tx) error {
		for n := range daodian.MaxAdminTokens - 1 {
			tok := adminToken(n)
			tok.MerchantID = ""
			if err := tx.InsertAdminToken(ctx, tok); err != nil {
				return err
			}
		}
		return nil
	})
	_, _, err := w.Ledger.CreateAdminToken(w.Ctx, "the last one", "")
	must(t, err)
	if got := readTokens(t, w.Store); len(got) != daodian.MaxAdminTokens {
		t.Fatalf("AdminTokens lists %d tokens, want %d", len(got), daodian.MaxAdminTokens)
	}
	_, secret, err := w.Ledger.CreateAdminToken(w.Ctx, "one too many", "")
	if !errors.Is(err, daodian.ErrTooManyAdminTokens) || secret != "" {
		t.Fatalf("creating token %d: %v, want ErrTooManyAdminTokens", daodian.MaxAdminTokens+1, err)
	}
}

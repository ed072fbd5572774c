package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/seal"
)

// Secrets at rest (SPEC §5.4): both stores keep an app's current and previous
// secrets and the end of the previous one's grace, sealed.

func testAppSecrets(t *testing.T, f Factory) {
	s := f.Open(t)
	a := &daodian.App{
		Key: "app-1", Secret: "s3cr3t-current-0123456789", PreviousSecret: "s3cr3t-previous-0123456789",
		PreviousSecretUntil: at(5), Name: "pos", Merchants: []string{"M001"}, Enabled: true, CreatedAt: at(1),
	}
	plain := &daodian.App{Key: "app-2", Secret: "s3cr3t-other-0123456789", Name: "no previous"}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertApp(ctx, a); err != nil {
			return err
		}
		return tx.InsertApp(ctx, plain)
	})
	readApp := func(s daodian.Store, key string) *daodian.App {
		t.Helper()
		var got *daodian.App
		view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
			var err error
			got, err = tx.App(ctx, key)
			return err
		})
		return got
	}
	same(t, "App with a previous secret", a, readApp(s, "app-1"))
	same(t, "App without a previous secret", plain, readApp(s, "app-2"))
	if got := readApp(s, "app-2"); !got.PreviousSecretUntil.IsZero() || got.PreviousSecretValid(at(1)) {
		t.Errorf("an app without a previous secret: %+v", got)
	}

	// SetAppSecrets replaces the three secret fields and nothing else.
	rotated := *a
	rotated.Secret, rotated.PreviousSecret, rotated.PreviousSecretUntil = "s3cr3t-next-0123456789", a.Secret, at(9)
	rotated.Name, rotated.Enabled, rotated.CreatedAt = "ignored", false, at(99)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAppSecrets(ctx, &rotated) })
	want := *a
	want.Secret, want.PreviousSecret, want.PreviousSecretUntil = rotated.Secret, rotated.PreviousSecret, rotated.PreviousSecretUntil
	same(t, "App after SetAppSecrets", &want, readApp(s, "app-1"))
	// UpdateApp leaves them alone.
	renamed := want
	renamed.Name, renamed.Secret, renamed.PreviousSecret, renamed.PreviousSecretUntil = "renamed", "ignored", "ignored", at(77)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.UpdateApp(ctx, &renamed) })
	want.Name = "renamed"
	same(t, "App after UpdateApp", &want, readApp(s, "app-1"))
	// Clearing the previous secret (a rotation with no grace).
	cleared := want
	cleared.Secret, cleared.PreviousSecret, cleared.PreviousSecretUntil = "s3cr3t-last-0123456789", "", time.Time{}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAppSecrets(ctx, &cleared) })
	same(t, "App after clearing its previous secret", &cleared, readApp(s, "app-1"))
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.SetAppSecrets(ctx, &daodian.App{Key: "app-9", Secret: "x"})
	})
	wantErr(t, "SetAppSecrets(missing)", err, daodian.ErrNotFound)

	if f.StoredSecrets != nil {
		// At rest, every secret is sealed: no stored value shows it, and the
		// empty previous secret is stored empty.
		for _, c := range []struct {
			key      string
			plain    []string
			previous bool
		}{
			{"app-1", []string{cleared.Secret, a.Secret, a.PreviousSecret, rotated.Secret}, false},
			{"app-2", []string{plain.Secret}, false},
		} {
			secret, previous := f.StoredSecrets(t, s, c.key)
			if !seal.IsSealed(secret) || previous != "" {
				t.Errorf("%s stored as %q, %q: want a sealed secret and no previous one", c.key, secret, previous)
			}
			for _, p := range c.plain {
				if strings.Contains(secret+previous, p) {
					t.Errorf("%s: the stored values show the secret %q", c.key, p)
				}
			}
		}
	}
	// Back to a previous secret, to see both sealed and both kept across a
	// reopen.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAppSecrets(ctx, &want) })
	if f.StoredSecrets != nil {
		secret, previous := f.StoredSecrets(t, s, "app-1")
		if !seal.IsSealed(secret) || !seal.IsSealed(previous) || strings.Contains(secret+previous, want.PreviousSecret) {
			t.Errorf("app-1 stored as %q, %q: want both sealed", secret, previous)
		}
	}
	if f.Reopen != nil {
		s = f.Reopen(t, s)
		same(t, "App after reopening", &want, readApp(s, "app-1"))
	}
}

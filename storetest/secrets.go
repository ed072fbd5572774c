package storetest

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
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
	same(t, "App with a previous secret", a, readApp(t, s, "app-1"))
	same(t, "App without a previous secret", plain, readApp(t, s, "app-2"))
	if got := readApp(t, s, "app-2"); !got.PreviousSecretUntil.IsZero() || got.PreviousSecretValid(at(1)) {
		t.Errorf("an app without a previous secret: %+v", got)
	}

	// SetAppSecrets replaces the three secret fields and nothing else.
	rotated := *a
	rotated.Secret, rotated.PreviousSecret, rotated.PreviousSecretUntil = "s3cr3t-next-0123456789", a.Secret, at(9)
	rotated.Name, rotated.Enabled, rotated.CreatedAt = "ignored", false, at(99)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAppSecrets(ctx, &rotated) })
	want := *a
	want.Secret, want.PreviousSecret, want.PreviousSecretUntil = rotated.Secret, rotated.PreviousSecret, rotated.PreviousSecretUntil
	same(t, "App after SetAppSecrets", &want, readApp(t, s, "app-1"))
	// UpdateApp leaves them alone.
	renamed := want
	renamed.Name, renamed.Secret, renamed.PreviousSecret, renamed.PreviousSecretUntil = "renamed", "ignored", "ignored", at(77)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.UpdateApp(ctx, &renamed) })
	want.Name = "renamed"
	same(t, "App after UpdateApp", &want, readApp(t, s, "app-1"))
	// Clearing the previous secret (a rotation with no grace).
	cleared := want
	cleared.Secret, cleared.PreviousSecret, cleared.PreviousSecretUntil = "s3cr3t-last-0123456789", "", time.Time{}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAppSecrets(ctx, &cleared) })
	same(t, "App after clearing its previous secret", &cleared, readApp(t, s, "app-1"))
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
		same(t, "App after reopening", &want, readApp(t, s, "app-1"))
	}
}

func readApp(t *testing.T, s daodian.Store, key string) *daodian.App {
	t.Helper()
	var a *daodian.App
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		var err error
		a, err = tx.App(ctx, key)
		return err
	})
	return a
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// testRotateAppSecret: Ledger.RotateAppSecret on the store. Rotations of one
// app are serialised (ReadTx.App locks inside Update), so none is lost: each
// replaces the secret the one before it issued.
func testRotateAppSecret(t *testing.T, f Factory) {
	s := f.Open(t)
	ctx := ctxT(t)
	clock := NewClock(at(0))
	l := daodian.NewLedger(s, daodian.Config{Clock: clock.Now})
	app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "pos", MerchantID: "M001"})
	if err != nil {
		t.Fatal(err)
	}

	r1, err := l.RotateAppSecret(ctx, app.Key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !hex32.MatchString(r1.Secret) || r1.Secret == app.Secret || r1.PreviousSecret != app.Secret ||
		!r1.PreviousSecretUntil.Equal(at(0).Add(time.Hour)) {
		t.Fatalf("rotation: %+v, app before %+v", r1, app)
	}
	same(t, "stored app after a rotation", r1, readApp(t, s, app.Key))
	if !r1.PreviousSecretValid(at(0).Add(time.Hour-time.Microsecond)) || r1.PreviousSecretValid(at(0).Add(time.Hour)) {
		t.Error("the previous secret's grace is not exactly one hour")
	}
	// Within the grace, a second rotation: the newest previous secret wins, the
	// oldest stops at once.
	clock.Advance(10 * time.Minute)
	r2, err := l.RotateAppSecret(ctx, app.Key, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r2.PreviousSecret != r1.Secret || !r2.PreviousSecretUntil.Equal(clock.Now().Add(2*time.Hour)) {
		t.Fatalf("second rotation: %+v", r2)
	}
	same(t, "stored app after a second rotation", r2, readApp(t, s, app.Key))
	// Grace 0: the previous secret stops at once.
	r3, err := l.RotateAppSecret(ctx, app.Key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r3.PreviousSecret != "" || !r3.PreviousSecretUntil.IsZero() || r3.Secret == r2.Secret {
		t.Fatalf("rotation without grace: %+v", r3)
	}
	same(t, "stored app after a rotation without grace", r3, readApp(t, s, app.Key))

	// Refusals change nothing.
	for _, c := range []struct {
		name  string
		key   string
		grace time.Duration
		want  func(error) bool
	}{
		{"unknown app", "nope", time.Hour, func(err error) bool { return errors.Is(err, daodian.ErrNotFound) }},
		{"empty key", "", time.Hour, isInvalid},
		{"negative grace", app.Key, -time.Second, isInvalid},
		{"grace too long", app.Key, daodian.MaxSecretGrace + time.Second, isInvalid},
	} {
		if got, err := l.RotateAppSecret(ctx, c.key, c.grace); got != nil || !c.want(err) {
			t.Errorf("%s: %+v, %v", c.name, got, err)
		}
	}
	same(t, "stored app after refused rotations", r3, readApp(t, s, app.Key))

	// Concurrent rotations: each replaces a different secret.
	const n = 8
	var (
		mu      sync.Mutex
		secrets = map[string]bool{r3.Secret: true}
		errs    []error
		prevs   = map[string]int{}
	)
	Parallel(n, func(int) {
		r, err := l.RotateAppSecret(ctx, app.Key, time.Hour)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		secrets[r.Secret] = true
		prevs[r.PreviousSecret]++
	})
	if len(errs) > 0 {
		t.Fatalf("concurrent rotations failed: %v", errs)
	}
	final := readApp(t, s, app.Key)
	for p, k := range prevs {
		if k != 1 || !secrets[p] || p == final.Secret {
			t.Fatalf("concurrent rotations lost an update: previous secrets %v, final %s", prevs, final.Secret)
		}
	}
	if !secrets[final.Secret] || prevs[final.PreviousSecret] != 1 {
		t.Fatalf("final app %+v is not the last rotation", final)
	}
}

func isInvalid(err error) bool {
	var ip *daodian.InvalidParameter
	return errors.As(err, &ip)
}

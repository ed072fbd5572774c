package e2e

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/storetest"
)

// TestRotatedSecretThroughGateway (SPEC §5.4): after a rotation the new secret
// signs on the gateway once its app cache has expired, the old one keeps
// signing until the grace ends and is refused (code 25) after it; a rotation
// without grace refuses the replaced secret as soon as the cache expires.
func TestRotatedSecretThroughGateway(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "rotate.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := storetest.NewWorld(t, s)
	const cacheTTL = 2 * time.Second
	gw := gateway.New(w.Ledger, gateway.Config{Clock: w.Clock.Now, Logger: discardLogger(), AppCacheTTL: cacheTTL})
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	call := func(secret string) error {
		_, err := client.New(srv.URL, w.A.Key, secret, client.WithClock(w.Clock.Now)).TimeGet(w.Ctx)
		return err
	}
	accepted := func(t *testing.T, what, secret string) {
		t.Helper()
		if err := call(secret); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	refused := func(t *testing.T, what, secret string) {
		t.Helper()
		var pe *client.Error
		if err := call(secret); !errors.As(err, &pe) || pe.Code != 25 {
			t.Fatalf("%s: %v, want code 25 Invalid Signature", what, err)
		}
	}

	old := w.A.Secret
	accepted(t, "the secret before rotation", old) // the gateway caches the app
	r1, err := w.Ledger.RotateAppSecret(w.Ctx, w.A.Key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w.Clock.Advance(cacheTTL + time.Second)
	accepted(t, "the new secret", r1.Secret)
	t.Run("OldSecretDuringGrace", func(t *testing.T) {
		accepted(t, "the old secret within the grace", old)
	})
	w.Clock.Advance(time.Hour)
	refused(t, "the old secret after the grace", old)
	accepted(t, "the new secret after the grace", r1.Secret)

	r2, err := w.Ledger.RotateAppSecret(w.Ctx, w.A.Key, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Clock.Advance(cacheTTL + time.Second)
	refused(t, "a secret replaced without grace", r1.Secret)
	accepted(t, "the newest secret", r2.Secret)
}

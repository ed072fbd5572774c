package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/storetest"
)

// TestRotatedSecretThroughGateway (SPEC §5.4): after a rotation the new secret
// signs on the gateway once its app cache has expired, the old one keeps
// signing until the grace ends and is refused (code 25) after it; a rotation
// without grace refuses the replaced secret as soon as the cache expires.
func TestRotatedSecretThroughGateway(t *testing.T) {
	w := storetest.NewWorld(t, testenv.NewDB(t, testenv.Embedded).Open(t))
	const cacheTTL = 2 * time.Second
	g := testenv.NewGateway(t, testenv.Options{Ledger: w.Ledger, Clock: w.Clock, Config: gateway.Config{AppCacheTTL: cacheTTL}})
	call := func(secret string) error {
		_, err := client.New(g.Server.URL, w.A.Key, secret, client.WithClock(w.Clock.Now)).TimeGet(w.Ctx)
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

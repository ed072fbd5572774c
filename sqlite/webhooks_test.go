package sqlite

import (
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// TestWebhooks runs the events and webhooks contract of SPEC §9 on the
// embedded store.
func TestWebhooks(t *testing.T) {
	storetest.RunWebhooks(t, factory(Options{}), func(t *testing.T, s daodian.Store, id string) string {
		var secret string
		if err := rawDB(t, s.(*Store).Path()).QueryRow(`SELECT secret FROM webhooks WHERE id = ?`, id).Scan(&secret); err != nil {
			t.Fatal(err)
		}
		return secret
	})
}

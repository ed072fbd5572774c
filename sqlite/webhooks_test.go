package sqlite

import (
	"testing"
	"time"

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

// TestWebhookCursorInABatch: a webhook added in the same batch as a use, after
// it, starts after the use's event: the use's record, still pending in the
// writer's memory when the webhook's Update reads the last event, is read.
func TestWebhookCursorInABatch(t *testing.T) {
	s := openAt(t, tempPath(t), Options{Linger: 300 * time.Millisecond})
	w := storetest.NewWorld(t, s)
	tk := w.Issue(1, 1).Tickets[0]
	done := make(chan daodian.UseResult)
	go func() { done <- w.MustUse(w.A, tk.Code, 1, "u1") }()
	time.Sleep(50 * time.Millisecond) // the use is queued, its batch lingers
	wh, err := w.Ledger.AddWebhook(w.Ctx, daodian.WebhookSpec{MerchantID: storetest.M1, URL: "http://127.0.0.1:9/"})
	if err != nil {
		t.Fatal(err)
	}
	u := <-done
	h, err := w.Ledger.TicketHistory(w.Ctx, tk.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	last := h.Timeline[len(h.Timeline)-1]
	if last.TransID != u.Details[0].TransID || wh.Cursor != last.ID {
		t.Fatalf("the webhook starts after event %s; the use committed before it is event %s", wh.Cursor, last.ID)
	}
}

package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/webhooksig"
)

// ExampleVerifyWebhook is a webhook receiver: it reads the body whole (bounded),
// checks the signature and its timestamp, and dedupes on event_id before acting.
func ExampleVerifyWebhook() {
	const secret = "whsec_…"  // printed once by: daodian webhook add --merchant M --url U
	seen := map[string]bool{} // in a real receiver: a unique key in its own database
	handler := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := client.VerifyWebhook(secret, r.Header.Get("X-Daodian-Signature"), body, 5*time.Minute, time.Now()); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev struct {
			EventID string `json:"event_id"`
			Type    string `json:"type"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		if !seen[ev.EventID] { // at least once: a retry may bring it again
			seen[ev.EventID] = true
			fmt.Println("event", ev.EventID, ev.Type)
		}
		w.WriteHeader(http.StatusNoContent) // any 2xx within 10 s: delivered
	}
	// What daodian sends, twice (a retry), and a forgery.
	body := `{"event_id":"42","type":"ticket.used","occurred_at":"2026-11-01 10:00:00","merchant_id":"m1","data":{}}`
	for _, sig := range []string{webhooksig.Sign(secret, time.Now(), []byte(body)), webhooksig.Sign(secret, time.Now(), []byte(body)), "t=1,v1=00"} {
		r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
		r.Header.Set("X-Daodian-Signature", sig)
		w := httptest.NewRecorder()
		handler(w, r)
		fmt.Println(w.Code)
	}
	// Output:
	// event 42 ticket.used
	// 204
	// 204
	// 401
}

// TestVerifyWebhookErrors: each kind of bad delivery is its error.
func TestVerifyWebhookErrors(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event_id":"1"}`)
	sig := webhooksig.Sign("whsec_a", now, body)
	for _, c := range []struct {
		name, secret, header string
		body                 []byte
		now                  time.Time
		want                 error
	}{
		{"valid", "whsec_a", sig, body, now, nil},
		{"wrong secret", "whsec_b", sig, body, now, client.ErrWebhookSignature},
		{"altered body", "whsec_a", sig, []byte(`{"event_id":"2"}`), now, client.ErrWebhookSignature},
		{"stale", "whsec_a", sig, body, now.Add(6 * time.Minute), client.ErrWebhookTimestamp},
		{"no header", "whsec_a", "", body, now, client.ErrWebhookMalformed},
	} {
		err := client.VerifyWebhook(c.secret, c.header, c.body, 0, c.now)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

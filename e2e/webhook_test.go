package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/testenv"
)

// hookReceiver is a webhook endpoint of the tests: it verifies every
// delivery with the SDK's client.VerifyWebhook, dedupes on event_id as a
// receiver must, and counts deliveries that overlap (two deliverers of one
// webhook at once).
type hookReceiver struct {
	t     *testing.T
	srv   *httptest.Server
	delay time.Duration // each answer waits this long

	mu       sync.Mutex
	secret   string
	all      []delivery // every receipt, in order
	first    []string   // event ids in the order first received
	seen     map[string]int
	inFlight int
	overlaps int
	counting bool // overlaps are counted only while set
}

type delivery struct {
	header http.Header
	body   []byte
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{t: t, seen: map[string]int{}, counting: true}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	secret := r.secret
	r.inFlight++
	if r.inFlight > 1 && r.counting {
		r.overlaps++
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.mu.Unlock()
	}()
	if err := client.VerifyWebhook(secret, req.Header.Get("X-Daodian-Signature"), body, time.Minute, time.Now()); err != nil {
		r.t.Errorf("a delivery does not verify: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev admin.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.EventID == "" || ev.EventID != req.Header.Get("X-Daodian-Event-Id") ||
		ev.Type != req.Header.Get("X-Daodian-Event-Type") {
		r.t.Errorf("a delivery's body %s does not match its headers %v (%v)", body, req.Header, err)
	}
	time.Sleep(r.delay)
	r.mu.Lock()
	r.all = append(r.all, delivery{req.Header.Clone(), body})
	if r.seen[ev.EventID] == 0 {
		r.first = append(r.first, ev.EventID)
	}
	r.seen[ev.EventID]++
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *hookReceiver) unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.first)
}

// addHook runs the real `daodian webhook add --json` for the receiver and
// gives it the secret.
func addHook(t *testing.T, db testenv.DB, r *hookReceiver, args ...string) addedHook {
	t.Helper()
	out, err := db.Command(t, append([]string{"webhook", "add", "--merchant", testenv.Merchant, "--url", r.srv.URL + "/daodian?x=1", "--json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("daodian webhook add: %v (%s)", err, stderrOf(err))
	}
	var h addedHook
	if err := json.Unmarshal(out, &h); err != nil || !strings.HasPrefix(h.Secret, daodian.WebhookSecretPrefix) || h.WebhookID == "" {
		t.Fatalf("daodian webhook add --json: %v\n%s", err, out)
	}
	r.mu.Lock()
	r.secret = h.Secret
	r.mu.Unlock()
	return h
}

type addedHook struct {
	admin.Webhook
	Secret string `json:"secret"`
}

// waitFor waits up to d for cond.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// commandJSON runs a daodian command that prints JSON into v.
func commandJSON(t *testing.T, db testenv.DB, v any, args ...string) {
	t.Helper()
	out, err := db.Command(t, args...).Output()
	if err != nil {
		t.Fatalf("daodian %v: %v (%s)", args, err, stderrOf(err))
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("daodian %v: %v\n%s", args, err, out)
	}
}

// TestWebhookThroughServe (SPEC §9): a webhook added by the real CLI, a real
// `daodian serve`, uses, a reversal and a refund through the SDK; the
// receiver gets each event once, in order, signed (verified by the SDK's
// VerifyWebhook), with the body the events pull serves for it; the CLI shows
// the cursor and the attempts; a redelivery sends an event again; a removed
// webhook gets nothing more; the secret is in no log line.
func TestWebhookThroughServe(t *testing.T) {
	testenv.Run(t, func(t *testing.T, kind testenv.Kind) {
		db := testenv.NewDB(t, kind)
		seed := testenv.SeedDB(t, db, daodian.IssueRequest{Quantity: 3})
		tk := seed.Tickets[0]
		r := newHookReceiver(t)
		hook := addHook(t, db, r)
		_, token := adminToken(t, db, "--name", "pull")
		p := testenv.StartServe(t, db.Args()...)
		ctx := context.Background()
		c := client.New(p.URL, seed.App.Key, seed.App.Secret)
		u1, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: testenv.Shop, TicketRequestID: "u1"})
		if err != nil {
			t.Fatal(err)
		}
		u2, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: testenv.Shop, TicketRequestID: "u2"})
		if err != nil {
			t.Fatal(err)
		}
		if rev, err := c.Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: "r1", TicketID: tk.ID, TicketUseTransID: u1.TicketTransID}); err != nil || !rev.Result.Success {
			t.Fatalf("reversal: %+v %v", rev, err)
		}
		if _, err := c.Refund(ctx, alsc.RefundRequest{TransID: u2.TicketTransID, TicketCode: tk.Code, TicketRequestID: "f1"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "four events delivered", func() bool { return r.unique() == 4 })

		// The pull serves the same events, and the bodies are them byte for byte.
		page := admin.EventPage{Events: pullEvents(t, p.Base, token, hook.Cursor)}
		if len(page.Events) != 4 {
			t.Fatalf("GET /admin/v1/events: %+v", page)
		}
		r.mu.Lock()
		got := slices.Clone(r.all)
		r.mu.Unlock()
		var types []string
		for i, d := range got {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(page.Events[i]); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(d.body, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
				t.Errorf("delivery %d:\n%s\nthe pull serves\n%s", i, d.body, want.Bytes())
			}
			types = append(types, d.header.Get("X-Daodian-Event-Type"))
			if d.header.Get("Content-Type") != "application/json" || d.header.Get("User-Agent") != "daodian-webhook/1" {
				t.Errorf("delivery %d's headers: %v", i, d.header)
			}
			// The SDK refuses the delivery under another secret, or altered.
			sig := d.header.Get("X-Daodian-Signature")
			if err := client.VerifyWebhook("whsec_other", sig, d.body, time.Minute, time.Now()); !errors.Is(err, client.ErrWebhookSignature) {
				t.Errorf("a delivery verified under another secret: %v", err)
			}
			if err := client.VerifyWebhook(hook.Secret, sig, append(slices.Clone(d.body), ' '), time.Minute, time.Now()); !errors.Is(err, client.ErrWebhookSignature) {
				t.Errorf("an altered delivery verified: %v", err)
			}
			if err := client.VerifyWebhook(hook.Secret, sig, d.body, time.Minute, time.Now().Add(2*time.Minute)); !errors.Is(err, client.ErrWebhookTimestamp) {
				t.Errorf("a two-minute-old delivery verified with a minute's tolerance: %v", err)
			}
		}
		if s := strings.Join(types, ","); s != "ticket.used,ticket.used,ticket.use_reversed,ticket.refunded" {
			t.Errorf("types delivered: %s", s)
		}

		// The CLI: the cursor, the attempts, a redelivery.
		last := page.Events[3].EventID
		waitFor(t, 10*time.Second, "the cursor stored", func() bool {
			var hooks []admin.Webhook
			commandJSON(t, db, &hooks, "webhook", "list", "--json")
			return len(hooks) == 1 && hooks[0].Cursor == last && hooks[0].Retrying == nil
		})
		var as []admin.DeliveryAttempt
		commandJSON(t, db, &as, "webhook", "deliveries", "--webhook", hook.WebhookID, "--json")
		if len(as) != 4 || as[0].EventID != last || as[0].Outcome != "delivered" || as[0].HTTPStatus != 204 || as[3].EventID != page.Events[0].EventID {
			t.Fatalf("deliveries: %+v", as)
		}
		if out, err := db.Command(t, "webhook", "redeliver", "--event", page.Events[0].EventID).CombinedOutput(); err != nil {
			t.Fatalf("webhook redeliver: %v\n%s", err, out)
		}
		waitFor(t, 10*time.Second, "the redelivery", func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.seen[page.Events[0].EventID] == 2
		})
		waitFor(t, 10*time.Second, "the redelivery's attempt", func() bool {
			commandJSON(t, db, &as, "webhook", "deliveries", "--webhook", hook.WebhookID, "--json")
			return len(as) == 5 && as[0].Redelivery && as[0].EventID == page.Events[0].EventID
		})

		// Removed: nothing more.
		if out, err := db.Command(t, "webhook", "remove", "--webhook", hook.WebhookID).CombinedOutput(); err != nil {
			t.Fatalf("webhook remove: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond) // more than a poll
		if _, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: testenv.Shop, TicketRequestID: "u3"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if n := r.unique(); n != 4 {
			t.Errorf("a removed webhook got %d events", n)
		}
		p.Stop(t)
		if strings.Contains(p.Stderr(), hook.Secret) {
			t.Error("the webhook secret is in serve's output")
		}
	})
}

// TestWebhookCommandErrors: bad input exits 2 with a one-line message naming
// the flag; what does not exist exits 1; nothing is written either way.
func TestWebhookCommandErrors(t *testing.T) {
	db := testenv.NewDB(t, testenv.Embedded)
	testenv.SeedDB(t, db)
	r := newHookReceiver(t)
	hook := addHook(t, db, r)
	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"add without url", []string{"webhook", "add", "--merchant", "m1"}, 2, "--url"},
		{"add ftp", []string{"webhook", "add", "--merchant", "m1", "--url", "ftp://x.example/"}, 2, "--url must be http:// or https://"},
		{"add with a password", []string{"webhook", "add", "--merchant", "m1", "--url", "https://u:hunter2@x.example/"}, 2, "--url must not hold a user or password"},
		{"add a bad type", []string{"webhook", "add", "--merchant", "m1", "--url", "https://x.example/", "--types", "ticket.used,ticket.lost"}, 2, "--types"},
		{"add for an unknown merchant", []string{"webhook", "add", "--merchant", "nobody", "--url", "https://x.example/"}, 1, "no merchant"},
		{"remove an unknown webhook", []string{"webhook", "remove", "--webhook", "2100000000000999999"}, 1, "no webhook"},
		{"remove without --webhook", []string{"webhook", "remove"}, 2, "--webhook"},
		{"deliveries of an unknown webhook", []string{"webhook", "deliveries", "--webhook", "2100000000000999999"}, 1, "no webhook"},
		{"deliveries with a bad limit", []string{"webhook", "deliveries", "--webhook", hook.WebhookID, "--limit", "0"}, 2, "--limit"},
		{"redeliver an unknown event", []string{"webhook", "redeliver", "--event", "999999"}, 1, "not found"},
		{"redeliver a malformed event id", []string{"webhook", "redeliver", "--event", "x"}, 1, "--event"},
		{"an unknown subcommand", []string{"webhook", "update"}, 2, "unknown subcommand"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := db.Command(t, c.args...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code || !strings.Contains(string(out), c.msg) ||
				strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || strings.Contains(string(out), "hunter2") {
				t.Fatalf("exit %v, output %q; want exit %d, one line with %q", err, out, c.code, c.msg)
			}
		})
	}
	var hooks []admin.Webhook
	commandJSON(t, db, &hooks, "webhook", "list", "--json")
	if len(hooks) != 1 || hooks[0].WebhookID != hook.WebhookID {
		t.Fatalf("webhooks after refused commands: %+v", hooks)
	}
	out, err := db.Command(t, "webhook", "list").Output()
	if err != nil || strings.Contains(string(out), hook.Secret) || !strings.Contains(string(out), hook.WebhookID) {
		t.Fatalf("webhook list: %v\n%s", err, out)
	}
}

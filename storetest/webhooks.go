package storetest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/seal"
)

// RunWebhooks runs the events and webhooks contract of SPEC §9 against the
// stores of f: every record is an event, committed with its change (the
// records are the outbox); events are followed in order by a pull consumer
// while they are written; webhooks, their sealed secrets, delivery state,
// attempts and redeliveries round-trip. storedSecret, if not nil, returns a
// webhook's secret as the store keeps it, read past the store.
func RunWebhooks(t *testing.T, f Factory, storedSecret func(t *testing.T, s daodian.Store, webhookID string) string) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"EventsOfEveryChange", testEventsOfEveryChange},
		{"EventAtomicWithItsChange", testEventAtomic},
		{"EventsPulledWhileWriting", testEventsPulledWhileWriting},
		{"EventsQuery", testEventsQuery},
		{"WebhookRoundTrip", func(t *testing.T, f Factory) { testWebhookRoundTrip(t, f, storedSecret) }},
		{"AddWebhook", testAddWebhook},
		{"SaveDelivery", testSaveDelivery},
		{"PruneAttempts", testPruneAttempts},
		{"Redeliver", testRedeliver},
		{"RedeliverForOneMerchant", testRedeliverFor},
		{"WebhookStatuses", testWebhookStatuses},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, f) })
	}
}

// events pulls every event of M1 after after, a page of n at a time.
func (w *World) events(after string, n int) []daodian.Record {
	w.T.Helper()
	var all []daodian.Record
	for {
		p, err := w.Ledger.Events(w.Ctx, M1, after, n)
		must(w.T, err)
		all = append(all, p.Events...)
		if len(p.Events) == 0 {
			if p.NextAfter != after {
				w.T.Fatalf("an empty page moved the position from %q to %q", after, p.NextAfter)
			}
			return all
		}
		if p.NextAfter != p.Events[len(p.Events)-1].ID {
			w.T.Fatalf("next_after %q is not the page's last event %q", p.NextAfter, p.Events[len(p.Events)-1].ID)
		}
		after = p.NextAfter
	}
}

// lastRecordID returns the last event_id, once every record committed is
// numbered (on a store that numbers them after their commit).
func (w *World) lastRecordID() string {
	w.T.Helper()
	must(w.T, w.Ledger.NumberRecords(w.Ctx))
	return viewOf(w.T, w.Store, func(ctx context.Context, tx daodian.ReadTx) (string, error) { return tx.LastRecordID(ctx) })
}

// testEventsOfEveryChange: each change is one event of the type of its
// record, in commit order, and the event is the record (event_id = record_id).
func testEventsOfEveryChange(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	if id := w.lastRecordID(); id != "" {
		t.Fatalf("LastRecordID of an empty ledger = %q", id)
	}
	tk := w.Issue(1, 2).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, u.TransID))
	wantSuccess(t, w.Reverse(w.A, "r2", tk.ID, "")) // nothing left to reverse: a fence
	w.Clock.Advance(time.Second)
	u2 := w.MustUse(w.A, tk.Code, 1, "u2")
	_, err := w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: u2.TransID, TicketCode: tk.Code, RequestID: "f1"})
	must(t, err)
	// Another merchant's change is an event of that merchant only.
	_, err = w.Ledger.Issue(w.Ctx, daodian.IssueRequest{MerchantID: M2, Quantity: 1, ItemName: "x",
		ValidFrom: w.Clock.Now().Add(-time.Hour), ValidTo: w.Clock.Now().Add(time.Hour)})
	must(t, err)
	evs := w.events("", 2)
	var types []string
	for _, e := range evs {
		types = append(types, string(daodian.EventTypeOf(e.Kind)))
	}
	want := "ticket.issued,ticket.used,ticket.use_reversed,ticket.reversal_fenced,ticket.used,ticket.refunded"
	if got := strings.Join(types, ","); got != want {
		t.Fatalf("event types %s\nwant %s", got, want)
	}
	recs := w.records(daodian.RecordQuery{MerchantID: M1})
	same(t, "events and records", recs, evs)
	var all []daodian.Record
	must(t, w.Store.View(w.Ctx, func(tx daodian.ReadTx) error {
		return tx.EachRecord(w.Ctx, func(r *daodian.Record) error { all = append(all, *r); return nil })
	}))
	if last := w.lastRecordID(); last != all[len(all)-1].ID {
		t.Fatalf("LastRecordID = %s, the last record is %s", last, all[len(all)-1].ID)
	}
	for _, r := range all {
		got := viewOf(t, w.Store, func(ctx context.Context, tx daodian.ReadTx) (*daodian.Record, error) { return tx.RecordByID(ctx, r.ID) })
		same(t, "RecordByID "+r.ID, &r, got)
	}
	err = w.Store.View(w.Ctx, func(tx daodian.ReadTx) error {
		_, err := tx.RecordByID(w.Ctx, "9"+all[len(all)-1].ID)
		return err
	})
	wantErr(t, "RecordByID of an unknown id", err, daodian.ErrNotFound)
}

// testEventAtomic: an event exists exactly when its change committed. An
// Update that appends a record and then fails leaves no event; a refusal
// (recorded under its key, no change) and a replay are no event; the next
// event committed is the next in order.
func testEventAtomic(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	w.MustUse(w.A, tk.Code, 1, "u1")
	before := w.events("", 100)
	last := before[len(before)-1].ID
	boom := errors.New("boom")
	err := w.Store.Update(w.Ctx, func(tx daodian.Tx) error {
		if err := tx.SetAvailable(w.Ctx, tk.ID, 1); err != nil {
			return err
		}
		r := daodian.Record{At: w.Clock.Now(), Kind: daodian.RecordReversal, MerchantID: M1, TicketID: tk.ID, AppKey: w.A.Key, RequestID: "x", Units: 1}
		if err := tx.AppendRecord(w.Ctx, &r); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "a failing Update", err, boom)
	if _, err := w.Use(w.A, tk.Code, 1, "u2"); err == nil { // no units left: refused, and recorded
		t.Fatal("a use of a used-up ticket succeeded")
	}
	w.MustUse(w.A, tk.Code, 1, "u1") // a replay
	if got := w.events(last, 100); len(got) != 0 {
		t.Fatalf("events after a failed Update, a refusal and a replay: %+v", got)
	}
	if w.lastRecordID() != last {
		t.Fatalf("LastRecordID moved to %s without a change", w.lastRecordID())
	}
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, ""))
	got := w.events(last, 100)
	if len(got) != 1 || got[0].Kind != daodian.RecordReversal || !daodian.IDAfter(got[0].ID, last) {
		t.Fatalf("after a reversal: %+v, want its one event after %s", got, last)
	}
}

// testEventsPulledWhileWriting: a consumer following the events with
// next_after while four writers commit uses and reversals receives every
// event exactly once and in order: no event ever appears behind a position
// already returned (what a webhook's cursor relies on).
func testEventsPulledWhileWriting(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	o := w.Issue(daodian.MaxTicketsPerOrder, 1)
	ctx, cancel := context.WithCancel(w.Ctx)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(o.Tickets) && ctx.Err() == nil; i += 4 {
				tk := o.Tickets[i]
				_, _ = w.Use(w.A, tk.Code, 1, fmt.Sprintf("w-%d", i))
				_, _ = w.Ledger.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: fmt.Sprintf("wr-%d", i), TicketID: tk.ID})
			}
		}()
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()
	var got []daodian.Record
	after := ""
	for done := false; !done; {
		select {
		case <-writing:
			done = true // one more pull after the last commit
		default:
		}
		p, err := w.Ledger.Events(w.Ctx, M1, after, 7)
		if err != nil {
			cancel()
			wg.Wait()
			t.Fatal(err)
		}
		got = append(got, p.Events...)
		after = p.NextAfter
		if len(p.Events) == 7 {
			done = false
		}
	}
	cancel()
	all := w.events("", daodian.MaxEventsPage)
	for i, r := range got {
		if i > 0 && !daodian.IDAfter(r.ID, got[i-1].ID) {
			t.Fatalf("event %s pulled after %s", r.ID, got[i-1].ID)
		}
	}
	same(t, "events pulled while writing, and all events", all, got)
	t.Logf("%d events pulled while writing", len(got))
}

func testEventsQuery(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	w.Issue(1, 1)
	for _, c := range []struct {
		name     string
		merchant string
		after    string
		limit    int
		want     func(error) bool
	}{
		{"unknown merchant", "nobody", "", 0, func(err error) bool { return errors.Is(err, daodian.ErrNotFound) }},
		{"no merchant", "", "", 0, isInvalid},
		{"after not digits", M1, "12a", 0, isInvalid},
		{"limit 0 is the default", M1, "", 0, func(err error) bool { return err == nil }},
		{"limit negative", M1, "", -1, isInvalid},
		{"limit too large", M1, "", daodian.MaxEventsPage + 1, isInvalid},
		{"limit at most", M1, "", daodian.MaxEventsPage, func(err error) bool { return err == nil }},
	} {
		if _, err := w.Ledger.Events(w.Ctx, c.merchant, c.after, c.limit); !c.want(err) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	p, err := w.Ledger.Events(w.Ctx, M2, "", 0)
	if err != nil || len(p.Events) != 0 || p.NextAfter != "" {
		t.Fatalf("events of a merchant without any: %+v %v", p, err)
	}
}

var webhookSecretRE = regexp.MustCompile(`^whsec_[0-9a-f]{64}$`)

// viewOf returns what get reads in a View of s, failing the test on error.
func viewOf[T any](t testing.TB, s daodian.Store, get func(ctx context.Context, tx daodian.ReadTx) (T, error)) T {
	t.Helper()
	var v T
	ctx := context.Background()
	must(t, s.View(ctx, func(tx daodian.ReadTx) error {
		var err error
		v, err = get(ctx, tx)
		return err
	}))
	return v
}

func readWebhook(t *testing.T, s daodian.Store, id string) *daodian.Webhook {
	t.Helper()
	return viewOf(t, s, func(ctx context.Context, tx daodian.ReadTx) (*daodian.Webhook, error) { return tx.Webhook(ctx, id) })
}

// StoredWebhooks returns the store's webhooks as it keeps them (secrets in
// plain), for tests that check what an API or a page stored.
func (w *World) StoredWebhooks() []daodian.Webhook {
	w.T.Helper()
	return viewOf(w.T, w.Store, func(ctx context.Context, tx daodian.ReadTx) ([]daodian.Webhook, error) { return tx.Webhooks(ctx) })
}

// StoredRedeliveries returns the redeliveries waiting in the store.
func (w *World) StoredRedeliveries() []daodian.Redelivery {
	w.T.Helper()
	return readRedeliveries(w.T, w.Store)
}

// SaveDelivery writes a deliverer's batch about a webhook, which must exist.
func (w *World) SaveDelivery(u daodian.DeliveryUpdate) {
	w.T.Helper()
	if err := w.Store.Update(w.Ctx, func(tx daodian.Tx) error {
		ok, err := tx.SaveDelivery(w.Ctx, &u)
		if err == nil && !ok {
			err = fmt.Errorf("webhook %s is gone", u.WebhookID)
		}
		return err
	}); err != nil {
		w.T.Fatal(err)
	}
}

// moveCursors moves the cursors of the webhooks to cursor, as their
// deliverer does once it is done with the events up to it.
func (w *World) moveCursors(cursor string, ids ...string) {
	w.T.Helper()
	for _, id := range ids {
		w.SaveDelivery(daodian.DeliveryUpdate{WebhookID: id, Cursor: cursor})
	}
}

func readRedeliveries(t testing.TB, s daodian.Store) []daodian.Redelivery {
	t.Helper()
	return viewOf(t, s, func(ctx context.Context, tx daodian.ReadTx) ([]daodian.Redelivery, error) {
		return tx.Redeliveries(ctx)
	})
}

func readAttempts(t *testing.T, s daodian.Store, q daodian.AttemptQuery) []daodian.DeliveryAttempt {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = daodian.MaxAttemptsPage
	}
	return viewOf(t, s, func(ctx context.Context, tx daodian.ReadTx) ([]daodian.DeliveryAttempt, error) {
		return tx.DeliveryAttempts(ctx, q)
	})
}

func testWebhookRoundTrip(t *testing.T, f Factory, storedSecret func(*testing.T, daodian.Store, string) string) {
	s := f.Open(t)
	wh := &daodian.Webhook{
		ID: tid(1), MerchantID: "M001", URL: "https://pos.example/hooks?x=1", Types: []daodian.EventType{daodian.EventUsed, daodian.EventUseReversed},
		Secret: "whsec_" + strings.Repeat("ab", 32), CreatedAt: at(1), Cursor: "41",
		Head: daodian.HeadState{EventID: "42", Attempts: 3, FirstAt: at(2), NextAt: at(3)},
	}
	all := &daodian.Webhook{ID: tid(2), MerchantID: "M002", URL: "http://10.0.0.7:8080/", Secret: "whsec_2", CreatedAt: at(4)}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertWebhook(ctx, wh); err != nil {
			return err
		}
		return tx.InsertWebhook(ctx, all)
	})
	same(t, "webhook", wh, readWebhook(t, s, wh.ID))
	same(t, "webhook of every type", all, readWebhook(t, s, all.ID))
	list := viewOf(t, s, func(ctx context.Context, tx daodian.ReadTx) ([]daodian.Webhook, error) { return tx.Webhooks(ctx) })
	same(t, "Webhooks", []daodian.Webhook{*wh, *all}, list)
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertWebhook(ctx, wh) })
	wantErr(t, "InsertWebhook of an existing id", err, daodian.ErrDuplicate)
	err = s.View(ctxT(t), func(tx daodian.ReadTx) error { _, err := tx.Webhook(ctxT(t), tid(3)); return err })
	wantErr(t, "Webhook(missing)", err, daodian.ErrNotFound)
	if storedSecret != nil {
		stored := storedSecret(t, s, wh.ID)
		if !seal.IsSealed(stored) || strings.Contains(stored, wh.Secret) || strings.Contains(stored, "abababab") {
			t.Fatalf("the webhook secret is stored as %q: want it sealed", stored)
		}
	}
	if f.Reopen != nil {
		s = f.Reopen(t, s)
		same(t, "webhook after reopening", wh, readWebhook(t, s, wh.ID))
	}
	// Deleting a webhook deletes its attempts and redeliveries, not another's.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, id := range []string{wh.ID, all.ID} {
			if ok, err := tx.SaveDelivery(ctx, &daodian.DeliveryUpdate{WebhookID: id, Attempts: []daodian.DeliveryAttempt{
				{EventID: "50", EventType: daodian.EventUsed, Attempt: 1, At: at(5), HTTPStatus: 200, Outcome: daodian.Delivered},
			}}); err != nil || !ok {
				return fmt.Errorf("SaveDelivery: %v %v", ok, err)
			}
			if err := tx.PutRedelivery(ctx, &daodian.Redelivery{WebhookID: id, EventID: "7", RequestedAt: at(6)}); err != nil {
				return err
			}
		}
		return tx.DeleteWebhook(ctx, wh.ID)
	})
	err = s.View(ctxT(t), func(tx daodian.ReadTx) error { _, err := tx.Webhook(ctxT(t), wh.ID); return err })
	wantErr(t, "Webhook(deleted)", err, daodian.ErrNotFound)
	if a := readAttempts(t, s, daodian.AttemptQuery{WebhookID: wh.ID}); len(a) != 0 {
		t.Errorf("attempts of a deleted webhook: %+v", a)
	}
	if a := readAttempts(t, s, daodian.AttemptQuery{WebhookID: all.ID}); len(a) != 1 {
		t.Errorf("attempts of the other webhook: %+v", a)
	}
	rs := readRedeliveries(t, s)
	same(t, "redeliveries after a delete", []daodian.Redelivery{{WebhookID: all.ID, EventID: "7", RequestedAt: at(6)}}, rs)
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.DeleteWebhook(ctx, wh.ID) })
	wantErr(t, "DeleteWebhook(missing)", err, daodian.ErrNotFound)
}

func testAddWebhook(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	w.Issue(1, 1)
	last := w.lastRecordID()
	wh, err := w.Ledger.AddWebhook(w.Ctx, daodian.WebhookSpec{MerchantID: M1, URL: "https://pos.example/hook",
		Types: []daodian.EventType{daodian.EventRefunded, daodian.EventUsed, daodian.EventUsed}})
	must(t, err)
	if !webhookSecretRE.MatchString(wh.Secret) || wh.Cursor != last || len(wh.ID) != 19 ||
		strings.Join([]string{string(wh.Types[0]), string(wh.Types[1])}, ",") != "ticket.used,ticket.refunded" || len(wh.Types) != 2 {
		t.Fatalf("AddWebhook: %+v (the last event is %s)", wh, last)
	}
	stored := readWebhook(t, w.Store, wh.ID)
	same(t, "the stored webhook", wh, stored)
	listed, err := w.Ledger.Webhooks(w.Ctx, M1)
	must(t, err)
	got, err := w.Ledger.Webhook(w.Ctx, wh.ID)
	must(t, err)
	if len(listed) != 1 || listed[0].Secret != "" || got.Secret != "" || got.URL != wh.URL {
		t.Fatalf("the ledger shows a webhook's secret, or not the webhook: %+v, %+v", listed, got)
	}
	if other, err := w.Ledger.Webhooks(w.Ctx, M2); err != nil || len(other) != 0 {
		t.Fatalf("webhooks of another merchant: %+v %v", other, err)
	}
	second, err := w.Ledger.AddWebhook(w.Ctx, daodian.WebhookSpec{MerchantID: M1, URL: "http://127.0.0.1:9/"})
	must(t, err)
	if second.Secret == wh.Secret || second.Types != nil {
		t.Fatalf("a second webhook: %+v", second)
	}

	before, err := w.Ledger.Webhooks(w.Ctx, "")
	must(t, err)
	for _, c := range []struct {
		name string
		spec daodian.WebhookSpec
		want func(error) bool
	}{
		{"unknown merchant", daodian.WebhookSpec{MerchantID: "nobody", URL: "https://x.example/"}, func(err error) bool { return errors.Is(err, daodian.ErrNotFound) }},
		{"no merchant", daodian.WebhookSpec{URL: "https://x.example/"}, isInvalid},
		{"no url", daodian.WebhookSpec{MerchantID: M1}, isInvalid},
		{"ftp", daodian.WebhookSpec{MerchantID: M1, URL: "ftp://x.example/"}, isInvalid},
		{"javascript", daodian.WebhookSpec{MerchantID: M1, URL: "javascript:alert(1)"}, isInvalid},
		{"relative", daodian.WebhookSpec{MerchantID: M1, URL: "/hook"}, isInvalid},
		{"no host", daodian.WebhookSpec{MerchantID: M1, URL: "https:///hook"}, isInvalid},
		{"user and password", daodian.WebhookSpec{MerchantID: M1, URL: "https://u:p@x.example/"}, isInvalid},
		{"fragment", daodian.WebhookSpec{MerchantID: M1, URL: "https://x.example/#f"}, isInvalid},
		{"space", daodian.WebhookSpec{MerchantID: M1, URL: "https://x.example/a b"}, isInvalid},
		{"non-ASCII", daodian.WebhookSpec{MerchantID: M1, URL: "https://x.example/门店"}, isInvalid},
		{"port 0", daodian.WebhookSpec{MerchantID: M1, URL: "https://x.example:0/"}, isInvalid},
		{"port too large", daodian.WebhookSpec{MerchantID: M1, URL: "https://x.example:65536/"}, isInvalid},
		{"too long", daodian.WebhookSpec{MerchantID: M1, URL: "https://x.example/" + strings.Repeat("a", daodian.MaxWebhookURLLen)}, isInvalid},
		{"unknown type", daodian.WebhookSpec{MerchantID: M1, URL: "https://x.example/", Types: []daodian.EventType{"ticket.lost"}}, isInvalid},
	} {
		if got, err := w.Ledger.AddWebhook(w.Ctx, c.spec); got != nil || !c.want(err) {
			t.Errorf("%s: %+v, %v", c.name, got, err)
		}
	}
	after, err := w.Ledger.Webhooks(w.Ctx, "")
	must(t, err)
	same(t, "webhooks after refused adds", before, after)

	// The bound on webhooks.
	update(t, w.Store, func(ctx context.Context, tx daodian.Tx) error {
		for i := len(before); i < daodian.MaxWebhooks; i++ {
			if err := tx.InsertWebhook(ctx, &daodian.Webhook{ID: tid(9000 + i), MerchantID: M2, URL: "http://x.example/", Secret: "s", CreatedAt: at(1)}); err != nil {
				return err
			}
		}
		return nil
	})
	_, err = w.Ledger.AddWebhook(w.Ctx, daodian.WebhookSpec{MerchantID: M1, URL: "https://x.example/"})
	wantErr(t, "AddWebhook beyond MaxWebhooks", err, daodian.ErrTooManyWebhooks)

	must(t, w.Ledger.RemoveWebhook(w.Ctx, wh.ID))
	wantErr(t, "RemoveWebhook twice", w.Ledger.RemoveWebhook(w.Ctx, wh.ID), daodian.ErrNotFound)
	if err := w.Ledger.RemoveWebhook(w.Ctx, "x"); !isInvalid(err) {
		t.Errorf("RemoveWebhook(x): %v", err)
	}
}

// testSaveDelivery: a deliverer's batch. The cursor only goes forward; a head
// state whose event the cursor has passed is ignored (a late batch of a
// deliverer that lost its lease); attempts list newest first and page; a batch
// for a webhook that is gone writes nothing.
func testSaveDelivery(t *testing.T, f Factory) {
	s := f.Open(t)
	wh := &daodian.Webhook{ID: tid(1), MerchantID: "M001", URL: "http://x.example/", Secret: "whsec_1", CreatedAt: at(1), Cursor: "10"}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertWebhook(ctx, wh) })
	save := func(u daodian.DeliveryUpdate) bool {
		t.Helper()
		var ok bool
		update(t, s, func(ctx context.Context, tx daodian.Tx) error {
			var err error
			ok, err = tx.SaveDelivery(ctx, &u)
			return err
		})
		return ok
	}
	attempt := func(ev string, n int, out daodian.DeliveryOutcome, i int) daodian.DeliveryAttempt {
		a := daodian.DeliveryAttempt{WebhookID: wh.ID, EventID: ev, EventType: daodian.EventUsed, Attempt: n, At: at(i), HTTPStatus: 500,
			Latency: 1500 * time.Microsecond, Error: "HTTP 500", Outcome: out}
		if out == daodian.Delivered {
			a.HTTPStatus, a.Error = 204, ""
		}
		return a
	}
	head := daodian.HeadState{EventID: "12", Attempts: 2, FirstAt: at(2), NextAt: at(3)}
	if !save(daodian.DeliveryUpdate{WebhookID: wh.ID, Cursor: "11", Head: &head,
		Attempts: []daodian.DeliveryAttempt{attempt("11", 1, daodian.Delivered, 1), attempt("12", 1, daodian.Retrying, 2), attempt("12", 2, daodian.Retrying, 3)}}) {
		t.Fatal("SaveDelivery of an existing webhook reported it missing")
	}
	got := readWebhook(t, s, wh.ID)
	if got.Cursor != "11" {
		t.Fatalf("after a batch: cursor %s", got.Cursor)
	}
	same(t, "head after a batch", head, got.Head)
	// A late batch: the cursor does not go back, a head the cursor has passed
	// is ignored; a head after the cursor is kept.
	save(daodian.DeliveryUpdate{WebhookID: wh.ID, Cursor: "100"})
	save(daodian.DeliveryUpdate{WebhookID: wh.ID, Cursor: "99", Head: &daodian.HeadState{EventID: "50", Attempts: 9}})
	got = readWebhook(t, s, wh.ID)
	if got.Cursor != "100" {
		t.Fatalf("after a late batch: cursor %s", got.Cursor)
	}
	same(t, "head after a late batch", head, got.Head)
	save(daodian.DeliveryUpdate{WebhookID: wh.ID, Head: &daodian.HeadState{}})
	same(t, "a cleared head state", daodian.HeadState{}, readWebhook(t, s, wh.ID).Head)
	save(daodian.DeliveryUpdate{WebhookID: wh.ID, Attempts: []daodian.DeliveryAttempt{attempt("12", 3, daodian.Failed, 4), attempt("101", 1, daodian.Delivered, 5)}})
	all := readAttempts(t, s, daodian.AttemptQuery{WebhookID: wh.ID})
	var seq []string
	for i, a := range all {
		seq = append(seq, a.EventID+"/"+string(a.Outcome))
		if i > 0 && !daodian.IDAfter(all[i-1].ID, a.ID) {
			t.Fatalf("attempts not newest first: %+v", all)
		}
	}
	if strings.Join(seq, " ") != "101/delivered 12/failed 12/retry 12/retry 11/delivered" {
		t.Fatalf("attempts %v", seq)
	}
	want := attempt("12", 3, daodian.Failed, 4)
	want.ID = all[1].ID
	same(t, "a stored attempt", want, all[1])
	failed := readAttempts(t, s, daodian.AttemptQuery{WebhookID: wh.ID, FailedOnly: true})
	if len(failed) != 1 || failed[0].ID != all[1].ID {
		t.Fatalf("failed attempts: %+v", failed)
	}
	page := readAttempts(t, s, daodian.AttemptQuery{WebhookID: wh.ID, BeforeID: all[1].ID, Limit: 2})
	same(t, "a page of attempts", all[2:4], page)
	// A redelivery done is deleted; a webhook gone takes nothing.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, ev := range []string{"7", "8"} {
			if err := tx.PutRedelivery(ctx, &daodian.Redelivery{WebhookID: wh.ID, EventID: ev, RequestedAt: at(7)}); err != nil {
				return err
			}
		}
		return nil
	})
	redelivery := attempt("7", 1, daodian.Delivered, 8)
	redelivery.Redelivery = true
	save(daodian.DeliveryUpdate{WebhookID: wh.ID, Redelivered: []string{"7"}, Attempts: []daodian.DeliveryAttempt{redelivery}})
	rs := readRedeliveries(t, s)
	same(t, "redeliveries left", []daodian.Redelivery{{WebhookID: wh.ID, EventID: "8", RequestedAt: at(7)}}, rs)
	if a := readAttempts(t, s, daodian.AttemptQuery{WebhookID: wh.ID, Limit: 1}); len(a) != 1 || !a[0].Redelivery {
		t.Fatalf("the redelivery's attempt: %+v", a)
	}
	if save(daodian.DeliveryUpdate{WebhookID: tid(2), Cursor: "5", Attempts: []daodian.DeliveryAttempt{attempt("5", 1, daodian.Delivered, 9)}}) {
		t.Fatal("SaveDelivery of a missing webhook reported it there")
	}
	if a := readAttempts(t, s, daodian.AttemptQuery{WebhookID: tid(2)}); len(a) != 0 {
		t.Fatalf("SaveDelivery of a missing webhook wrote attempts: %+v", a)
	}
}

// testPruneAttempts: the newest keep attempts that did not fail an event are
// kept, and every failed one since failedBefore, per webhook.
func testPruneAttempts(t *testing.T, f Factory) {
	s := f.Open(t)
	ids := []string{tid(1), tid(2)}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, id := range ids {
			if err := tx.InsertWebhook(ctx, &daodian.Webhook{ID: id, MerchantID: "M", URL: "http://x.example/", Secret: "s", CreatedAt: at(0)}); err != nil {
				return err
			}
			var as []daodian.DeliveryAttempt
			for i := range 10 {
				out := daodian.Delivered
				switch i {
				case 2, 7:
					out = daodian.Failed
				case 3:
					out = daodian.Retrying
				}
				as = append(as, daodian.DeliveryAttempt{EventID: fmt.Sprint(i + 1), EventType: daodian.EventUsed, Attempt: 1, At: at(i), Outcome: out})
			}
			if _, err := tx.SaveDelivery(ctx, &daodian.DeliveryUpdate{WebhookID: id, Attempts: as}); err != nil {
				return err
			}
		}
		return nil
	})
	var n int
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		var err error
		n, err = tx.PruneAttempts(ctx, ids[0], 3, at(5))
		return err
	})
	var left []string
	for _, a := range readAttempts(t, s, daodian.AttemptQuery{WebhookID: ids[0]}) {
		left = append(left, a.EventID)
	}
	// Non-failed: 10 9 7 6 5 4 2 1 → keep 10 9 7; failed: 8 (at 7) kept, 3 (at 2) dropped.
	if strings.Join(left, ",") != "10,9,8,7" || n != 6 {
		t.Fatalf("after pruning: %v (%d deleted)", left, n)
	}
	if a := readAttempts(t, s, daodian.AttemptQuery{WebhookID: ids[1]}); len(a) != 10 {
		t.Fatalf("pruning one webhook touched another's attempts: %d left", len(a))
	}
}

// threeWebhooks adds webhooks of every type of M1, of refunds of M1, and of
// every type of M2.
func (w *World) threeWebhooks() (all, refunds, other *daodian.Webhook) {
	w.T.Helper()
	add := func(spec daodian.WebhookSpec) *daodian.Webhook {
		wh, err := w.Ledger.AddWebhook(w.Ctx, spec)
		must(w.T, err)
		return wh
	}
	return add(daodian.WebhookSpec{MerchantID: M1, URL: "https://a.example/"}),
		add(daodian.WebhookSpec{MerchantID: M1, URL: "https://b.example/", Types: []daodian.EventType{daodian.EventRefunded}}),
		add(daodian.WebhookSpec{MerchantID: M2, URL: "https://c.example/"})
}

// testRedeliver: Ledger.Redeliver queues an event for the webhooks that have
// gone past it, of its merchant and receiving its type, and refuses the rest.
func testRedeliver(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	tk := w.Issue(1, 2).Tickets[0]
	all, refunds, other := w.threeWebhooks()
	w.MustUse(w.A, tk.Code, 1, "u1")
	use := w.events(all.Cursor, 10)[0]
	// Not reached yet: nothing to redeliver.
	if _, err := w.Ledger.Redeliver(w.Ctx, use.ID, ""); !errors.Is(err, daodian.ErrNotRedeliverable) {
		t.Fatalf("redeliver before any webhook went past it: %v", err)
	}
	w.moveCursors(use.ID, all.ID, refunds.ID, other.ID)
	queued, err := w.Ledger.Redeliver(w.Ctx, use.ID, "")
	must(t, err)
	same(t, "queued for", []string{all.ID}, queued)
	if _, err := w.Ledger.Redeliver(w.Ctx, use.ID, all.ID); err != nil { // again: replaces, never doubles
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, event, webhook string
		want                 error
	}{
		{"a webhook of another merchant", use.ID, other.ID, daodian.ErrNotRedeliverable},
		{"a webhook not receiving the type", use.ID, refunds.ID, daodian.ErrNotRedeliverable},
		{"an unknown event", "9" + use.ID, "", daodian.ErrNotFound},
		{"an unknown webhook", use.ID, tid(77), daodian.ErrNotFound},
	} {
		if q, err := w.Ledger.Redeliver(w.Ctx, c.event, c.webhook); !errors.Is(err, c.want) || q != nil {
			t.Errorf("%s: %v %v, want %v", c.name, q, err, c.want)
		}
	}
	if _, err := w.Ledger.Redeliver(w.Ctx, "x", ""); !isInvalid(err) {
		t.Errorf("redeliver of event x: %v", err)
	}
	rs := readRedeliveries(t, w.Store)
	if len(rs) != 1 || rs[0].WebhookID != all.ID || rs[0].EventID != use.ID {
		t.Fatalf("redeliveries: %+v", rs)
	}
	if _, err := w.Ledger.DeliveryAttempts(w.Ctx, daodian.AttemptQuery{WebhookID: tid(77)}); !errors.Is(err, daodian.ErrNotFound) {
		t.Errorf("attempts of an unknown webhook: %v", err)
	}
	if _, err := w.Ledger.DeliveryAttempts(w.Ctx, daodian.AttemptQuery{WebhookID: all.ID, Limit: daodian.MaxAttemptsPage + 1}); !isInvalid(err) {
		t.Errorf("attempts with too large a limit: %v", err)
	}
}

// testRedeliverFor: on behalf of one merchant, an event or a webhook of
// another merchant is refused exactly as one that does not exist, and nothing
// is queued; the merchant's own are redelivered as by Redeliver.
func testRedeliverFor(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	mine, err := w.Ledger.AddWebhook(w.Ctx, daodian.WebhookSpec{MerchantID: M1, URL: "https://a.example/"})
	must(t, err)
	theirs, err := w.Ledger.AddWebhook(w.Ctx, daodian.WebhookSpec{MerchantID: M2, URL: "https://c.example/"})
	must(t, err)
	w.MustUse(w.A, w.Issue(1, 1).Tickets[0].Code, 1, "u1")
	_, err = w.Ledger.Issue(w.Ctx, daodian.IssueRequest{MerchantID: M2, Quantity: 1, ItemName: "x",
		ValidFrom: w.Clock.Now().Add(-time.Hour), ValidTo: w.Clock.Now().Add(time.Hour)})
	must(t, err)
	last := w.lastRecordID()
	w.moveCursors(last, mine.ID, theirs.ID)
	use := w.events(mine.Cursor, 10)
	var m2Event string
	must(t, w.Store.View(w.Ctx, func(tx daodian.ReadTx) error {
		return tx.EachRecord(w.Ctx, func(r *daodian.Record) error {
			if r.MerchantID == M2 {
				m2Event = r.ID
			}
			return nil
		})
	}))
	missing := "9" + last
	for _, c := range []struct {
		name, event, webhook string
		want                 string
	}{
		{"another merchant's event", m2Event, "", "event " + m2Event + ": not found"},
		{"another merchant's event, to my webhook", m2Event, mine.ID, "event " + m2Event + ": not found"},
		{"an unknown event", missing, "", "event " + missing + ": not found"},
		{"another merchant's webhook", use[len(use)-1].ID, theirs.ID, "webhook " + theirs.ID + ": not found"},
		{"an unknown webhook", use[len(use)-1].ID, tid(77), "webhook " + tid(77) + ": not found"},
	} {
		q, err := w.Ledger.RedeliverFor(w.Ctx, M1, c.event, c.webhook)
		var nf *daodian.NotFoundError
		if q != nil || !errors.Is(err, daodian.ErrNotFound) || !errors.As(err, &nf) || err.Error() != c.want {
			t.Errorf("%s: %v %v, want %q", c.name, q, err, c.want)
		}
	}
	if rs := w.StoredRedeliveries(); len(rs) != 0 {
		t.Fatalf("refused redeliveries queued %+v", rs)
	}
	queued, err := w.Ledger.RedeliverFor(w.Ctx, M1, use[len(use)-1].ID, "")
	must(t, err)
	same(t, "queued for", []string{mine.ID}, queued)
	// For every merchant, another merchant's event is theirs to redeliver.
	queued, err = w.Ledger.RedeliverFor(w.Ctx, "", m2Event, "")
	must(t, err)
	same(t, "queued for", []string{theirs.ID}, queued)
}

// testWebhookStatuses: each webhook's oldest pending event is the first event
// after its cursor of a type it receives, of its merchant; nil once it is past
// every one; a merchant's or one webhook's alone.
func testWebhookStatuses(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	all, refunds, other := w.threeWebhooks()
	statuses := func(merchant, webhook string) map[string]string {
		t.Helper()
		sts, err := w.Ledger.WebhookStatuses(w.Ctx, merchant, webhook)
		must(t, err)
		out := map[string]string{}
		for _, st := range sts {
			if st.Secret != "" {
				t.Fatalf("webhook %s listed with its secret", st.ID)
			}
			out[st.ID] = "-"
			if st.Pending != nil {
				out[st.ID] = st.Pending.ID
			}
		}
		return out
	}
	same(t, "statuses of a quiet ledger", map[string]string{all.ID: "-", refunds.ID: "-", other.ID: "-"}, statuses("", ""))
	tk := w.Issue(1, 2).Tickets[0] // an issue of M1, then a use
	w.Clock.Advance(time.Minute)
	w.MustUse(w.A, tk.Code, 1, "u1")
	evs := w.events(all.Cursor, 10)
	if len(evs) != 2 {
		t.Fatalf("events after the webhook: %+v", evs)
	}
	same(t, "M1's statuses", map[string]string{all.ID: evs[0].ID, refunds.ID: "-"}, statuses(M1, ""))
	sts, err := w.Ledger.WebhookStatuses(w.Ctx, M1, all.ID)
	must(t, err)
	if len(sts) != 1 || sts[0].Pending == nil || !sts[0].Pending.At.Equal(evs[0].At) || sts[0].URL != all.URL {
		t.Fatalf("one webhook's status: %+v", sts)
	}
	// Past the issue: the use is pending; past the use: nothing.
	for i, want := range []string{evs[1].ID, "-"} {
		w.moveCursors(evs[i].ID, all.ID)
		same(t, "after a delivery", map[string]string{all.ID: want}, statuses("", all.ID))
	}
	for _, c := range []struct{ merchant, webhook string }{{M2, all.ID}, {"", tid(77)}} {
		_, err := w.Ledger.WebhookStatuses(w.Ctx, c.merchant, c.webhook)
		var nf *daodian.NotFoundError
		if !errors.As(err, &nf) || nf.What != "webhook" {
			t.Errorf("status of webhook %s of merchant %q: %v, want not found", c.webhook, c.merchant, err)
		}
	}
	if _, err := w.Ledger.WebhookStatuses(w.Ctx, "", "x"); !isInvalid(err) {
		t.Errorf("status of webhook x: %v", err)
	}
}

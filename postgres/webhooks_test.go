package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// TestWebhooks runs the events and webhooks contract of SPEC §9 on PostgreSQL.
func TestWebhooks(t *testing.T) {
	needDB(t)
	storetest.RunWebhooks(t, factory(), func(t *testing.T, s daodian.Store, id string) string {
		// The store's own pool, past its unsealing.
		var secret string
		if err := s.(*Store).pool.QueryRow(context.Background(), "SELECT secret FROM webhooks WHERE id = $1", id).Scan(&secret); err != nil {
			t.Fatal(err)
		}
		return secret
	})
}

// TestWebhookLeases: a webhook's lease has one holder at a time across
// stores (processes); it is free again once released, and at once when its
// holder's session ends, which the holder learns (Lost) within leasePing.
func TestWebhookLeases(t *testing.T) {
	ctx := context.Background()
	s1, u := newStoreURL(t, Options{})
	s2, err := openTest(ctx, u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	open := func(s *Store) *leases {
		t.Helper()
		l, err := s.WebhookLeases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return l.(*leases)
	}
	a, b := open(s1), open(s2)
	// Ids of this test's own, so that tests sharing the database (one schema
	// each, but advisory locks are per database) never meet.
	base := 2_900_000_000_000_000_000 + time.Now().UnixNano()%1_000_000_000*100
	w1, w2 := fmt.Sprint(base+1), fmt.Sprint(base+2)
	try := func(l *leases, id string, want bool) {
		t.Helper()
		ok, err := l.Acquire(ctx, id)
		if err != nil || ok != want {
			t.Fatalf("Acquire(%s) = %v, %v; want %v", id, ok, err, want)
		}
	}
	try(a, w1, true)
	try(a, w1, true) // held already
	try(b, w1, false)
	try(b, w2, true)
	try(a, w2, false)
	if err := a.Release(ctx, w1); err != nil {
		t.Fatal(err)
	}
	try(b, w1, true) // one release frees it, although a asked twice
	try(a, w1, false)
	if _, err := a.Acquire(ctx, "not-an-id"); err == nil {
		t.Fatal("a lease keyed by a non-numeric id was taken")
	}

	// b's session ends (a gateway killed, a server restart): its leases are
	// free at once, and b learns it was lost.
	terminate(t, adminPool(t), b.c.PgConn().PID())
	try(a, w1, true)
	try(a, w2, true)
	select {
	case <-b.Lost():
	case <-time.After(3 * leasePing):
		t.Fatal("the holder of leases whose session ended was not told within 3 pings")
	}
	if _, err := b.Acquire(ctx, w1); err == nil {
		t.Fatal("Acquire on lost leases succeeded")
	}
	// Close frees every lease before it returns.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	c := open(s2)
	try(c, w1, true)
	try(c, w2, true)
}

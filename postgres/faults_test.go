package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// TestFaults runs the fault-rule contract on PostgreSQL.
func TestFaults(t *testing.T) {
	needDB(t)
	storetest.RunFaults(t, factory())
}

// TestFaultConsumeAcrossProcesses: two stores on one database (two gateway
// processes) share a counted rule: exactly its count of injections in all.
func TestFaultConsumeAcrossProcesses(t *testing.T) {
	needDB(t)
	s1, u := newStoreURL(t, Options{})
	s2, err := Open(context.Background(), u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	ctx := context.Background()
	rule := &daodian.FaultRule{ID: "2100000000000000001", AppKey: "a", Kind: daodian.FaultError, Count: 30, Probability: 1}
	if err := s1.Update(ctx, func(tx daodian.Tx) error { return tx.PutFaultRule(ctx, rule) }); err != nil {
		t.Fatal(err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		s := s1
		if g%2 == 0 {
			s = s2
		}
		wg.Go(func() {
			for range 6 {
				var ok bool
				err := s.Update(ctx, func(tx daodian.Tx) error {
					var err error
					ok, err = tx.ConsumeFaultRule(ctx, rule.ID)
					return err
				})
				if err != nil {
					t.Errorf("consume: %v", err)
					return
				}
				if ok {
					won.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := won.Load(); n != 30 {
		t.Fatalf("%d injections from a rule of count 30", n)
	}
}

package postgres

import (
	"context"
	"testing"

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
	s2, err := openTest(context.Background(), u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	storetest.FaultConsumeAcrossStores(t, s1, s2)
}

package sqlite

import (
	"context"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// TestFaults runs the fault-rule contract on the embedded store.
func TestFaults(t *testing.T) {
	storetest.RunFaults(t, factory(Options{}))
}

// TestFaultRulesAcrossProcesses: a rule added by an admin command (a Shared
// store) is seen by the serving store's next read, and a counted rule gives
// exactly its count across both writers.
func TestFaultRulesAcrossProcesses(t *testing.T) {
	path := tempPath(t)
	serving := openAt(t, path, Options{})
	admin := openAt(t, path, Options{Shared: true})
	storetest.FaultConsumeAcrossStores(t, admin, serving)
}

// TestFaultMigration: a database of schema version 1 gains the fault_rules
// table when opened.
func TestFaultMigration(t *testing.T) {
	path := oldDatabase(t, 1, `DROP TABLE fault_rules`)
	s2 := openAt(t, path, Options{})
	ctx := context.Background()
	if err := s2.Update(ctx, func(tx daodian.Tx) error {
		return tx.PutFaultRule(ctx, &daodian.FaultRule{ID: "2100000000000000001", AppKey: "a", Kind: daodian.FaultError, Probability: 1})
	}); err != nil {
		t.Fatalf("fault rule after migrating from version 1: %v", err)
	}
}

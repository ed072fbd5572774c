package postgres

import (
	"testing"

	"github.com/daodian/daodian/storetest"
)

// TestLedgerRules runs the business rules of SPEC §4 on PostgreSQL, both ways
// the store can apply them: its server-side functions (Decide, the default)
// and the Go rules through Update (Options.RulesInGo).
func TestLedgerRules(t *testing.T) {
	needDB(t)
	t.Run("functions", func(t *testing.T) { storetest.RunLedger(t, factory()) })
	t.Run("go", func(t *testing.T) { storetest.RunLedger(t, factoryWith(Options{RulesInGo: true})) })
}

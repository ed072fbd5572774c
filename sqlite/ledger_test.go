package sqlite

import (
	"testing"

	"github.com/daodian/daodian/storetest"
)

// TestLedgerRules runs the business rules of SPEC §4 on the embedded store.
func TestLedgerRules(t *testing.T) {
	storetest.RunLedger(t, factory(Options{}))
}

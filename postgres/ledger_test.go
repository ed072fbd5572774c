package postgres

import (
	"testing"

	"github.com/daodian/daodian/storetest"
)

// TestLedgerRules runs the business rules of SPEC §4 on PostgreSQL.
func TestLedgerRules(t *testing.T) {
	needDB(t)
	storetest.RunLedger(t, factory())
}

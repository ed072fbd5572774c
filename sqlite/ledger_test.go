package sqlite

import (
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// TestLedgerRules runs the business rules of SPEC §4 on the embedded store.
func TestLedgerRules(t *testing.T) {
	storetest.RunLedger(t, storetest.Factory{
		Open: func(t *testing.T) daodian.Store { return openAt(t, tempPath(t), Options{}) },
	})
}

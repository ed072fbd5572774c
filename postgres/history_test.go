package postgres

import (
	"testing"

	"github.com/daodian/daodian/storetest"
)

// TestHistory runs the history contract of SPEC §8 on PostgreSQL, with the
// operations decided by the server-side functions and by the Go rules.
func TestHistory(t *testing.T) {
	needDB(t)
	t.Run("functions", func(t *testing.T) { storetest.RunHistory(t, factory()) })
	t.Run("go", func(t *testing.T) { storetest.RunHistory(t, factoryWith(Options{RulesInGo: true})) })
}

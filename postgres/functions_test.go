package postgres

import (
	"testing"

	"github.com/daodian/daodian/storetest"
)

// TestDecideDifferential holds the server-side functions to the Go rules: one
// long randomized sequence of operations through both, on two fresh
// databases, every answer and the resulting rows, recorded answers (byte for
// byte) and records equal.
func TestDecideDifferential(t *testing.T) {
	needDB(t)
	for _, seed := range []uint64{1, 2, 3} {
		goRules := newStore(t, Options{RulesInGo: true})
		functions := newStore(t, Options{})
		storetest.Differential(t, goRules, functions, seed, 1500)
	}
}

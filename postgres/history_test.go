package postgres

import (
	"testing"

	"github.com/daodian/daodian/storetest"
)

// TestHistory runs the history contract of SPEC §8 on PostgreSQL.
func TestHistory(t *testing.T) {
	needDB(t)
	storetest.RunHistory(t, factory())
}

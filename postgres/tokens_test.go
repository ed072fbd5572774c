package postgres

import (
	"testing"

	"github.com/daodian/daodian/storetest"
)

// TestAdminTokens runs the admin-token contract on PostgreSQL.
func TestAdminTokens(t *testing.T) {
	needDB(t)
	storetest.RunAdminTokens(t, factory())
}

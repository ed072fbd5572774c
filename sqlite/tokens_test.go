package sqlite

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/storetest"
)

// TestAdminTokens runs the admin-token contract on the embedded store.
func TestAdminTokens(t *testing.T) {
	storetest.RunAdminTokens(t, factory(Options{}))
}

// TestAdminTokenMigration: a database of schema version 4 gains the
// admin_tokens table when opened, and its file never holds a token, only the
// token's hash.
func TestAdminTokenMigration(t *testing.T) {
	path := oldDatabase(t, 4, `DROP TABLE admin_tokens`)
	s2 := openAt(t, path, Options{})
	ctx := context.Background()
	l := daodian.NewLedger(s2, daodian.Config{})
	tok, token, err := l.CreateAdminToken(ctx, "ops", "")
	if err != nil {
		t.Fatalf("admin token after migrating from version 4: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	testio.WantNotInFiles(t, []string{token, token[len(daodian.AdminTokenPrefix):]}, path, path+"-wal")
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(file, []byte(tok.Hash)) {
		t.Error("the database file does not hold the token's hash: is this test reading the right file?")
	}
}

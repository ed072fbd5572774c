package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// idemV6 returns the statements that give a database the idempotency table
// schema version 6 left: version 1's, WITHOUT ROWID and keyed by (app_key, op,
// request_id), with no separate index.
func idemV6(t *testing.T) []string {
	t.Helper()
	const created = "CREATE TABLE IF NOT EXISTS idem ("
	for _, stmt := range migrations[0] {
		if strings.HasPrefix(stmt, created) {
			return []string{
				"CREATE TABLE idem_v6 (" + strings.TrimPrefix(stmt, created),
				`INSERT INTO idem_v6 SELECT ` + idemCols + ` FROM idem`,
				`DROP TABLE idem`,
				`ALTER TABLE idem_v6 RENAME TO idem`,
			}
		}
	}
	t.Fatal("no idem table among version 1's statements")
	return nil
}

// idemShape reports how the file keeps the idempotency records: the table's
// definition and the definitions of its indexes.
func idemShape(t *testing.T, path string) (table string, indexes []string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'idem'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'idem' AND sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		indexes = append(indexes, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return table, indexes
}

// wantIdemV7 fails unless idem is a rowid table with a unique index on its key.
func wantIdemV7(t *testing.T, path string) {
	t.Helper()
	table, indexes := idemShape(t, path)
	if strings.Contains(strings.ToUpper(table), "WITHOUT ROWID") {
		t.Errorf("idem is still WITHOUT ROWID: %s", table)
	}
	if len(indexes) != 1 || !strings.Contains(indexes[0], "UNIQUE INDEX idem_key ON idem (app_key, op, request_id)") {
		t.Errorf("idem's indexes %q, want the one unique index on its key", indexes)
	}
}

// TestIdemRowidTable: a new database keeps the idempotency records in a rowid
// table with a unique index on the key (schema version 7), and a key already
// recorded is refused as a duplicate by that index.
func TestIdemRowidTable(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path, Options{})
	wantIdemV7(t, path)
	ctx := context.Background()
	rec := &daodian.IdemRecord{IdemKey: daodian.IdemKey{AppKey: "a", Op: daodian.OpUse, RequestID: "r1"},
		Fingerprint: "f", TicketID: "t", Answer: []byte(`{"x":1}`)}
	if err := s.Update(ctx, func(tx daodian.Tx) error { return tx.PutIdem(ctx, rec) }); err != nil {
		t.Fatal(err)
	}
	again := *rec
	again.Answer = []byte(`{"x":2}`)
	err := s.Update(ctx, func(tx daodian.Tx) error { return tx.PutIdem(ctx, &again) })
	if !errors.Is(err, daodian.ErrDuplicate) {
		t.Fatalf("a second record under one key: %v, want ErrDuplicate", err)
	}
	var got *daodian.IdemRecord
	if err := s.View(ctx, func(tx daodian.ReadTx) error {
		var err error
		got, err = tx.Idem(ctx, rec.IdemKey)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if string(got.Answer) != `{"x":1}` {
		t.Errorf("recorded answer %s, want the first", got.Answer)
	}
}

// TestIdemMigration: a ledger written by schema version 6 (idem WITHOUT ROWID)
// is rebuilt on open into version 7's table with every record kept: the whole
// ledger reads the same, every key is found with its answer, a replay of a
// recorded use answers as before, a conflicting one is refused, and a new one
// is recorded under its key.
func TestIdemMigration(t *testing.T) {
	w := newMemWorld(t, Options{})
	path := w.s.path
	r := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		answerOf(w, r.IntN(100), r.Uint64())
	}
	ctx := context.Background()
	app := w.apps[0]
	o, err := w.l.Issue(ctx, daodian.IssueRequest{MerchantID: "m1", Count: 1, Quantity: 3, TotalAmountCents: 900,
		ValidFrom: w.clock.Now().Add(-time.Hour), ValidTo: w.clock.Now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	tk := o.Tickets[0]
	req := daodian.UseRequest{TicketCode: tk.Code, ShopID: "s1", Quantity: 1, RequestID: "migration-use"}
	first, err := w.l.Use(ctx, app, req)
	if err != nil {
		t.Fatal(err)
	}
	before := ledgerState(t, w.s)
	var records []*daodian.IdemRecord
	if err := w.s.View(ctx, func(tx daodian.ReadTx) error {
		return tx.EachIdem(ctx, func(rec *daodian.IdemRecord) error { records = append(records, rec); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(records) < 50 {
		t.Fatalf("only %d idempotency records: too few to test the copy", len(records))
	}
	if err := w.s.Close(); err != nil {
		t.Fatal(err)
	}

	schemaAt(t, path, 6, idemV6(t)...)
	if table, _ := idemShape(t, path); !strings.Contains(table, "WITHOUT ROWID") {
		t.Fatalf("the setup did not make a version 6 table: %s", table)
	}
	s := openAt(t, path, Options{})
	wantIdemV7(t, path)
	if after := ledgerState(t, s); after != before {
		t.Fatalf("the ledger reads differently after the migration:\nbefore %s\nafter  %s", before, after)
	}
	if err := s.View(ctx, func(tx daodian.ReadTx) error {
		for _, want := range records {
			got, err := tx.Idem(ctx, want.IdemKey)
			if err != nil {
				return err
			}
			if got.Fingerprint != want.Fingerprint || got.TicketID != want.TicketID || string(got.Answer) != string(want.Answer) ||
				!got.CreatedAt.Equal(want.CreatedAt) {
				t.Errorf("key %v: got %+v, want %+v", want.IdemKey, got, want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	l := daodian.NewLedger(s, daodian.Config{Clock: w.clock.Now, ReverseWindow: time.Hour})
	replay, err := l.Use(ctx, app, req)
	if err != nil || replay.TransID != first.TransID {
		t.Errorf("replay after the migration: %+v, %v; want the first answer %+v", replay, err, first)
	}
	conflict := req
	conflict.Quantity = 2
	var refusal *daodian.Refusal
	if _, err := l.Use(ctx, app, conflict); !errors.As(err, &refusal) || refusal.SubCode != daodian.SubRequestIDConflict {
		t.Errorf("a use reusing the key with other parameters after the migration: %v, want %s", err, daodian.SubRequestIDConflict)
	}
	fresh := req
	fresh.RequestID = "after-migration"
	if _, err := l.Use(ctx, app, fresh); err != nil {
		t.Fatalf("a new use after the migration: %v", err)
	}
	if err := s.View(ctx, func(tx daodian.ReadTx) error {
		_, err := tx.Idem(ctx, daodian.IdemKey{AppKey: app.Key, Op: daodian.OpUse, RequestID: "after-migration"})
		return err
	}); err != nil {
		t.Errorf("the new use's answer is not recorded: %v", err)
	}
	rep, err := l.Audit(ctx)
	if err != nil || len(rep.Violations) > 0 {
		t.Fatalf("audit after the migration: %v %v", err, rep.Violations)
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// groupIndexSQL returns the definition of the index uses_group.
func groupIndexSQL(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ddl string
	if err := db.QueryRow(`SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = 'uses_group'`).Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	return ddl
}

// wantPartialGroupIndex fails unless uses_group holds only the uses that are
// not their group's first (schema version 8).
func wantPartialGroupIndex(t *testing.T, path string) {
	t.Helper()
	if ddl := groupIndexSQL(t, path); !strings.HasSuffix(ddl, "WHERE group_trans_id <> trans_id") {
		t.Errorf("uses_group is %q, want the partial index of version 8", ddl)
	}
}

// TestGroupUsePlan: a new database's uses_group is the partial index, and
// GroupUse's query reaches its rows by the primary key and that index, never
// by scanning the uses.
func TestGroupUsePlan(t *testing.T) {
	path := tempPath(t)
	openAt(t, path, Options{})
	wantPartialGroupIndex(t, path)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`EXPLAIN QUERY PLAN `+sqlGroupUse, "2100000000000000001", "2100000000000000002")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(plan, "\n")
	for _, want := range []string{"SEARCH uses USING PRIMARY KEY (trans_id=?)", "SEARCH uses USING COVERING INDEX uses_group (group_trans_id=? AND ticket_id=?)"} {
		if !strings.Contains(all, want) {
			t.Errorf("plan lacks %q:\n%s", want, all)
		}
	}
	for _, line := range plan {
		if strings.HasPrefix(line, "SCAN uses") {
			t.Errorf("plan scans the uses:\n%s", all)
		}
	}
}

// TestGroupUseMigration: a ledger written by schema version 7, whose
// uses_group indexed every use, opens with the partial index, and each ticket
// of a group-buy use made before is reversed by the group's id.
func TestGroupUseMigration(t *testing.T) {
	w := newMemWorld(t, Options{})
	path := w.s.path
	ctx := context.Background()
	app := w.apps[0]
	o, err := w.l.Issue(ctx, daodian.IssueRequest{MerchantID: "m1", Count: 3, Quantity: 1, TotalAmountCents: 900,
		ValidFrom: w.clock.Now().Add(-time.Hour), ValidTo: w.clock.Now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	group, err := w.l.Use(ctx, app, daodian.UseRequest{TicketCode: o.Tickets[0].Code, ShopID: "s1", Quantity: 3, RequestID: "group"})
	if err != nil || len(group.Details) != 3 {
		t.Fatalf("group-buy use: %+v, %v; want 3 tickets used", group, err)
	}
	if err := w.s.Close(); err != nil {
		t.Fatal(err)
	}
	schemaAt(t, path, 7, `DROP INDEX uses_group`, `CREATE INDEX uses_group ON uses (group_trans_id, ticket_id)`)
	if ddl := groupIndexSQL(t, path); strings.Contains(ddl, "WHERE") {
		t.Fatalf("the setup did not make version 7's index: %s", ddl)
	}

	s := openAt(t, path, Options{})
	wantPartialGroupIndex(t, path)
	l := daodian.NewLedger(s, daodian.Config{Clock: w.clock.Now, ReverseWindow: time.Hour})
	for i, d := range group.Details {
		res, err := l.Reverse(ctx, app, daodian.ReverseRequest{RequestID: "rev-" + d.TicketID, TicketID: d.TicketID, TransID: group.TransID})
		if err != nil || !res.Success {
			t.Fatalf("reversing ticket %d of the group by the group's id: %+v, %v", i, res, err)
		}
	}
	if err := s.View(ctx, func(tx daodian.ReadTx) error {
		for _, d := range group.Details {
			u, err := tx.Use(ctx, d.TransID)
			if err != nil {
				return err
			}
			if !u.Reversed {
				t.Errorf("use %s of ticket %s is not reversed", d.TransID, d.TicketID)
			}
			tk, err := tx.Ticket(ctx, d.TicketID)
			if err != nil {
				return err
			}
			if tk.Available != tk.Quantity {
				t.Errorf("ticket %s: %d of %d available after the reversal", tk.ID, tk.Available, tk.Quantity)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := l.Audit(ctx)
	if err != nil || len(rep.Violations) > 0 {
		t.Fatalf("audit after the migration: %v %v", err, rep.Violations)
	}
}

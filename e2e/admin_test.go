package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/testenv"
)

// adminToken runs the real `daodian admin token create --json` and returns the
// token's id and the token.
func adminToken(t *testing.T, db testenv.DB, args ...string) (id, token string) {
	t.Helper()
	out, err := db.Command(t, append([]string{"admin", "token", "create", "--json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("daodian admin token create: %v (%s)", err, stderrOf(err))
	}
	var c struct {
		ID    string `json:"token_id"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal(out, &c); err != nil || c.Token == "" {
		t.Fatalf("daodian admin token create --json: %v\n%s", err, out)
	}
	return c.ID, c.Token
}

// TestAdminAPIThroughServe (SPEC §8, §10): a real `daodian serve`, tokens made
// by the real CLI, a use and a reversal through the gateway, then the admin
// API on the same listener: the ticket's timeline, records, the statement, a
// reconciliation; the scopes; and a revocation by the CLI that takes effect
// within 2 s.
func TestAdminAPIThroughServe(t *testing.T) {
	db := testenv.FileDB(filepath.Join(t.TempDir(), "d.db"))
	seed := testenv.SeedDB(t, db, daodian.IssueRequest{Quantity: 3})
	app, tk := seed.App, seed.Tickets[0]
	scopedID, scoped := adminToken(t, db, "--name", "m1 office", "--merchant", "m1")
	_, all := adminToken(t, db, "--name", "ops")
	p := testenv.StartServe(t, db.Args()...)
	base := p.Base

	ctx := context.Background()
	c := client.New(p.URL, app.Key, app.Secret)
	used, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: "s1", TicketRequestID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Use(ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: "s1", TicketRequestID: "u2"}); err != nil {
		t.Fatal(err)
	}
	rev, err := c.Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: "r1", TicketID: tk.ID, TicketUseTransID: used.TicketTransID})
	if err != nil || !rev.Result.Success {
		t.Fatalf("reversal: %+v %v", rev, err)
	}
	do := func(method, path, token, body string) (int, string) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+path, r)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "text/csv")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	getJSON := func(path, token string, v any) {
		t.Helper()
		status, body := do(http.MethodGet, path, token, "")
		if status != 200 {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}

	var h admin.TicketHistory
	getJSON("/admin/v1/tickets?code="+tk.Code, scoped, &h)
	var kinds []string
	for _, r := range h.Timeline {
		kinds = append(kinds, r.Kind)
	}
	if h.Ticket.TicketCode != tk.Code || h.Ticket.Available != 2 || strings.Join(kinds, ",") != "issue,use,use,reversal" {
		t.Fatalf("the ticket by code: %+v", h)
	}
	today := h.Timeline[1].At[:len("2006-01-02")] // the uses' day, GMT+8
	var page admin.RecordPage
	getJSON("/admin/v1/records?merchant=m1&kind=use&limit=1", all, &page)
	if len(page.Records) != 1 || page.Records[0].TransID != used.TicketTransID || page.NextCursor == "" {
		t.Errorf("the first page of uses: %+v", page)
	}
	getJSON("/admin/v1/records?merchant=m1&kind=use&limit=1&cursor="+page.NextCursor, all, &page)
	if len(page.Records) != 1 || page.Records[0].RequestID != "u2" || page.NextCursor != "" {
		t.Errorf("the last page of uses: %+v", page)
	}
	var st admin.Statement
	getJSON("/admin/v1/statements?date="+today, scoped, &st)
	if st.Total.Uses != 2 || st.Total.Reversals != 1 || st.Total.NetUnits != 1 {
		t.Errorf("the statement: %+v", st)
	}
	status, body := do(http.MethodPost, "/admin/v1/reconciliations?date="+today, scoped,
		"ticket_request_id,status\nu1,reversed\nu2,used\n")
	var rec admin.Reconciliation
	if err := json.Unmarshal([]byte(body), &rec); err != nil || status != 200 || rec.Matched != 2 || len(rec.Differences) != 0 {
		t.Errorf("the reconciliation: %d %s", status, body)
	}

	for _, c := range []struct {
		method, path, token, body string
		status                    int
	}{
		{"GET", "/admin/v1/tickets/" + tk.ID, "", "", 401},
		{"GET", "/admin/v1/records?merchant=m2", scoped, "", 403},
		{"GET", "/admin/v1/tickets/2100000000000999999", scoped, "", 404},
		{"DELETE", "/admin/v1/tickets/" + tk.ID, all, "", 405},
		{"GET", "/admin/v1/records", all, "", 400},
		{"POST", "/admin/v1/reconciliations?merchant=m1&date=" + today, all, "ticket_request_id\nu1\n", 400},
	} {
		if status, body := do(c.method, c.path, c.token, c.body); status != c.status || !strings.HasPrefix(body, `{"error":{"code":"`) {
			t.Errorf("%s %s: %d %s, want %d and a JSON error", c.method, c.path, status, body, c.status)
		}
	}

	out, err := db.Command(t, "admin", "token", "revoke", "--id", scopedID).CombinedOutput()
	if err != nil {
		t.Fatalf("daodian admin token revoke: %v\n%s", err, out)
	}
	revoked := time.Now()
	for {
		status, _ := do(http.MethodGet, "/admin/v1/records", scoped, "")
		if status == 401 {
			break
		}
		if time.Since(revoked) > 2500*time.Millisecond {
			t.Fatalf("a token revoked %v ago still answers %d", time.Since(revoked), status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, _ := do(http.MethodGet, "/admin/v1/records?merchant=m1", all, ""); status != 200 {
		t.Errorf("the other token after the revocation: %d", status)
	}
	p.Stop(t)
}

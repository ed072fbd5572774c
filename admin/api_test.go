package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/storetest"
)

// trapStore is a store whose reads can be counted, held, failed or made to
// panic, to see what the admin API does with them.
type trapStore struct {
	daodian.Store
	views atomic.Int32
	hold  atomic.Pointer[chan struct{}]
	fail  atomic.Pointer[error]
	panic atomic.Bool
}

func (s *trapStore) View(ctx context.Context, fn func(daodian.ReadTx) error) error {
	s.views.Add(1)
	if s.panic.Load() {
		panic("trapStore: deliberate panic")
	}
	if e := s.fail.Load(); e != nil {
		return *e
	}
	if h := s.hold.Load(); h != nil {
		<-*h
	}
	return s.Store.View(ctx, fn)
}

// env is a ledger with tickets, uses and reversals of two merchants, the admin
// API over it, and tokens of every kind.
type env struct {
	t     *testing.T
	w     *storetest.World
	store *trapStore
	api   *admin.API
	srv   *httptest.Server
	logs  *testio.Buffer
	// bodyRead counts the bytes of request bodies the API has read.
	bodyRead atomic.Int64
	// Tokens: every merchant, merchant m1 only, merchant m2 only, revoked.
	all, m1, m2, revoked string
	allTok               *daodian.AdminToken
	// t1 is a ticket of m1 used twice and reversed once; t2 a ticket of m2.
	t1, t2 daodian.Ticket
}

func newEnv(t *testing.T, cfg admin.Config) *env {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "admin.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ts := &trapStore{Store: s}
	e := &env{t: t, w: storetest.NewWorld(t, ts), store: ts, logs: &testio.Buffer{}}
	w := e.w
	e.t1 = w.Issue(1, 3).Tickets[0]
	u := w.MustUse(w.A, e.t1.Code, 1, "u1")
	w.MustUse(w.A, e.t1.Code, 1, "u2")
	w.Reverse(w.A, "r1", e.t1.ID, u.TransID)
	o, err := w.Ledger.Issue(w.Ctx, daodian.IssueRequest{MerchantID: storetest.M2, Quantity: 2, TotalAmountCents: 500})
	if err != nil {
		t.Fatal(err)
	}
	e.t2 = o.Tickets[0]
	if _, err := w.Ledger.Use(w.Ctx, w.B, daodian.UseRequest{TicketCode: e.t2.Code, ShopID: storetest.S2, RequestID: "u1"}); err != nil {
		t.Fatal(err)
	}
	e.allTok, e.all = e.token("ops", "")
	_, e.m1 = e.token("m1 office", storetest.M1)
	_, e.m2 = e.token("m2 office", storetest.M2)
	var revoked *daodian.AdminToken
	revoked, e.revoked = e.token("gone", "")
	if _, err := w.Ledger.RevokeAdminToken(w.Ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	}
	if cfg.Clock == nil {
		cfg.Clock = w.Clock.Now
	}
	e.api = admin.New(w.Ledger, cfg)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &countingBody{r.Body, &e.bodyRead}
		e.api.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) token(name, merchant string) (*daodian.AdminToken, string) {
	e.t.Helper()
	tok, token, err := e.w.Ledger.CreateAdminToken(e.w.Ctx, name, merchant)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok, token
}

// answer is an HTTP answer.
type answer struct {
	status int
	header http.Header
	body   string
}

// errorCode returns the code of an error answer, failing the test if the body
// is not {"error": {"code", "message"}} with both set.
func (a answer) errorCode(t *testing.T) string {
	t.Helper()
	var b struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(a.body), &b); err != nil || b.Error == nil || b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("answer %d %q is not a JSON error (%v)", a.status, a.body, err)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("error answer of type %q", ct)
	}
	return b.Error.Code
}

// req sends a request with Authorization: Bearer token; token "" sends no
// Authorization header, and "raw:X" sends X as the header.
func (e *env) req(method, path, token string, body io.Reader, header ...string) answer {
	e.t.Helper()
	r, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	switch {
	case token == "":
	case strings.HasPrefix(token, "raw:"):
		r.Header.Set("Authorization", token[len("raw:"):])
	default:
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (e *env) get(path, token string) answer {
	e.t.Helper()
	return e.req(http.MethodGet, path, token, nil)
}

func (e *env) getJSON(path, token string, v any) {
	e.t.Helper()
	a := e.get(path, token)
	if a.status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, a.status, a.body)
	}
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		e.t.Fatalf("GET %s: %v in %s", path, err, a.body)
	}
}

const day = "2026-11-01" // the World's day, GMT+8

// TestErrors: every error path answers its status and its code, as JSON.
func TestErrors(t *testing.T) {
	e := newEnv(t, admin.Config{MaxReconcileBytes: 1 << 20, MaxDifferences: 2})
	t1, t2 := e.t1, e.t2
	posOK := "ticket_request_id,status\nu1,used\n"
	for _, c := range []struct {
		name         string
		method, path string
		token        string
		body         string
		header       []string
		status       int
		code         string
	}{
		// 401: no token, or not a valid one; before anything else.
		{"no token", "GET", "/admin/v1/records?merchant=m1", "", "", nil, 401, "unauthorized"},
		{"no token, unknown path", "GET", "/admin/v1/nowhere", "", "", nil, 401, "unauthorized"},
		{"no token, wrong method", "DELETE", "/admin/v1/records", "", "", nil, 401, "unauthorized"},
		{"no token, a body", "POST", "/admin/v1/reconciliations?merchant=m1&date=" + day, "", posOK, nil, 401, "unauthorized"},
		{"unknown token", "GET", "/admin/v1/records?merchant=m1", "dd_" + strings.Repeat("A", 43), "", nil, 401, "unauthorized"},
		{"revoked token", "GET", "/admin/v1/records?merchant=m1", "REVOKED", "", nil, 401, "unauthorized"},
		{"token too short", "GET", "/admin/v1/records?merchant=m1", "dd_abc", "", nil, 401, "unauthorized"},
		{"token not base64url", "GET", "/admin/v1/records?merchant=m1", "dd_" + strings.Repeat("+", 43), "", nil, 401, "unauthorized"},
		{"another scheme", "GET", "/admin/v1/records?merchant=m1", "raw:Basic ALL", "", nil, 401, "unauthorized"},
		{"no scheme", "GET", "/admin/v1/records?merchant=m1", "raw:ALL", "", nil, 401, "unauthorized"},
		{"two headers", "GET", "/admin/v1/records?merchant=m1", "ALL", "", []string{"Authorization", "Bearer ALL"}, 401, "unauthorized"},
		// 404: what does not exist.
		{"unknown path", "GET", "/admin/v1/nowhere", "ALL", "", nil, 404, "not_found"},
		{"the root", "GET", "/admin/v1/", "ALL", "", nil, 404, "not_found"},
		{"a ticket's sub-path", "GET", "/admin/v1/tickets/" + t1.ID + "/x", "ALL", "", nil, 404, "not_found"},
		{"empty ticket id", "GET", "/admin/v1/tickets/", "ALL", "", nil, 404, "not_found"},
		{"unknown ticket", "GET", "/admin/v1/tickets/2100000000000999999", "ALL", "", nil, 404, "not_found"},
		{"unknown code", "GET", "/admin/v1/tickets?code=999999999999", "ALL", "", nil, 404, "not_found"},
		{"ticket of another merchant", "GET", "/admin/v1/tickets/" + t2.ID, "M1", "", nil, 404, "not_found"},
		{"code of another merchant", "GET", "/admin/v1/tickets?code=" + t2.Code, "M1", "", nil, 404, "not_found"},
		{"ticket outside the named merchant", "GET", "/admin/v1/tickets/" + t2.ID + "?merchant=m1", "ALL", "", nil, 404, "not_found"},
		{"unknown merchant, records", "GET", "/admin/v1/records?merchant=nope", "ALL", "", nil, 404, "not_found"},
		{"unknown merchant, statement", "GET", "/admin/v1/statements?merchant=nope&date=" + day, "ALL", "", nil, 404, "not_found"},
		{"unknown shop, records", "GET", "/admin/v1/records?merchant=m1&shop=nope", "ALL", "", nil, 404, "not_found"},
		{"unknown shop, statement", "GET", "/admin/v1/statements?merchant=m1&shop=nope&date=" + day, "ALL", "", nil, 404, "not_found"},
		{"unknown merchant, reconciliation", "POST", "/admin/v1/reconciliations?merchant=nope&date=" + day, "ALL", posOK, nil, 404, "not_found"},
		// 403: a merchant outside the token's scope, even one that does not exist.
		{"records of another merchant", "GET", "/admin/v1/records?merchant=m2", "M1", "", nil, 403, "forbidden"},
		{"records of an unknown merchant", "GET", "/admin/v1/records?merchant=nope", "M1", "", nil, 403, "forbidden"},
		{"statement of another merchant", "GET", "/admin/v1/statements?merchant=m2&date=" + day, "M1", "", nil, 403, "forbidden"},
		{"reconciliation of another merchant", "POST", "/admin/v1/reconciliations?merchant=m2&date=" + day, "M1", posOK, nil, 403, "forbidden"},
		{"ticket, naming another merchant", "GET", "/admin/v1/tickets/" + t1.ID + "?merchant=m2", "M1", "", nil, 403, "forbidden"},
		// 405: only GET and POST, as listed.
		{"POST records", "POST", "/admin/v1/records?merchant=m1", "ALL", "", nil, 405, "method_not_allowed"},
		{"DELETE a ticket", "DELETE", "/admin/v1/tickets/" + t1.ID, "ALL", "", nil, 405, "method_not_allowed"},
		{"PUT statements", "PUT", "/admin/v1/statements", "ALL", "", nil, 405, "method_not_allowed"},
		{"GET reconciliations", "GET", "/admin/v1/reconciliations?merchant=m1&date=" + day, "ALL", "", nil, 405, "method_not_allowed"},
		// 400: parameters.
		{"records without a merchant, all merchants", "GET", "/admin/v1/records", "ALL", "", nil, 400, "invalid_parameter"},
		{"statement without a merchant, all merchants", "GET", "/admin/v1/statements?date=" + day, "ALL", "", nil, 400, "invalid_parameter"},
		{"reconciliation without a merchant", "POST", "/admin/v1/reconciliations?date=" + day, "ALL", posOK, nil, 400, "invalid_parameter"},
		{"ticket id not digits", "GET", "/admin/v1/tickets/12ab", "ALL", "", nil, 400, "invalid_parameter"},
		{"code missing", "GET", "/admin/v1/tickets", "ALL", "", nil, 400, "invalid_parameter"},
		{"code not digits", "GET", "/admin/v1/tickets?code=abc", "ALL", "", nil, 400, "invalid_parameter"},
		{"unknown parameter", "GET", "/admin/v1/records?merchant_id=m1", "M1", "", nil, 400, "invalid_parameter"},
		{"repeated parameter", "GET", "/admin/v1/records?merchant=m1&merchant=m1", "ALL", "", nil, 400, "invalid_parameter"},
		{"query does not parse", "GET", "/admin/v1/records?merchant=%zz", "ALL", "", nil, 400, "invalid_parameter"},
		{"limit 0", "GET", "/admin/v1/records?limit=0", "M1", "", nil, 400, "invalid_parameter"},
		{"limit too large", "GET", "/admin/v1/records?limit=10001", "M1", "", nil, 400, "invalid_parameter"},
		{"limit not a number", "GET", "/admin/v1/records?limit=ten", "M1", "", nil, 400, "invalid_parameter"},
		{"bad kind", "GET", "/admin/v1/records?kind=use,bogus", "M1", "", nil, 400, "invalid_parameter"},
		{"bad from", "GET", "/admin/v1/records?from=yesterday", "M1", "", nil, 400, "invalid_parameter"},
		{"to before from", "GET", "/admin/v1/records?from=2026-11-02&to=2026-11-01", "M1", "", nil, 400, "invalid_parameter"},
		{"bad format", "GET", "/admin/v1/records?format=xml", "M1", "", nil, 400, "invalid_parameter"},
		{"bad cursor", "GET", "/admin/v1/records?cursor=garbage", "M1", "", nil, 400, "bad_cursor"},
		{"statement without a date", "GET", "/admin/v1/statements", "M1", "", nil, 400, "invalid_parameter"},
		{"statement with a bad date", "GET", "/admin/v1/statements?date=2026-02-30", "M1", "", nil, 400, "invalid_parameter"},
		{"reconciliation with a bad date", "POST", "/admin/v1/reconciliations?date=11/01/2026", "M1", posOK, nil, 400, "invalid_parameter"},
		// The POS file.
		{"POS file without status", "POST", "/admin/v1/reconciliations?date=" + day, "M1", "ticket_request_id\nu1\n", nil, 400, "bad_file"},
		{"POS file with a bad status", "POST", "/admin/v1/reconciliations?date=" + day, "M1", posOK + "u2,lost\n", nil, 400, "bad_file"},
		{"empty POS file", "POST", "/admin/v1/reconciliations?date=" + day, "M1", "", nil, 400, "bad_file"},
		{"POS file as a form", "POST", "/admin/v1/reconciliations?date=" + day, "M1", posOK, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"POS file as JSON", "POST", "/admin/v1/reconciliations?date=" + day, "M1", posOK, []string{"Content-Type", "application/json"}, 415, "unsupported_media_type"},
		{"POS file over the limit", "POST", "/admin/v1/reconciliations?date=" + day, "M1", posOK + strings.Repeat("x", 1<<20), nil, 413, "payload_too_large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			token := strings.NewReplacer("ALL", e.all, "M1", e.m1, "REVOKED", e.revoked).Replace(c.token)
			var body io.Reader
			if c.body != "" || c.method == "POST" {
				body = strings.NewReader(c.body)
			}
			header := c.header
			if c.method == "POST" && len(header) == 0 {
				header = []string{"Content-Type", "text/csv"}
			}
			for i := 1; i < len(header); i += 2 {
				header[i] = strings.NewReplacer("ALL", e.all).Replace(header[i])
			}
			a := e.req(c.method, c.path, token, body, header...)
			if a.status != c.status {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, a.status, a.body, c.status)
			}
			if code := a.errorCode(t); code != c.code {
				t.Errorf("code %q (%s), want %q", code, a.body, c.code)
			}
			if strings.Contains(c.name, "unknown shop") && !strings.Contains(a.body, "no such shop") {
				t.Errorf("an unknown shop answers %s, which does not say the shop is unknown", a.body)
			}
			switch c.status {
			case 401:
				if h := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer ") {
					t.Errorf("401 with WWW-Authenticate %q, want Bearer", h)
				}
			case 405:
				if allow := a.header.Get("Allow"); allow != "GET" && allow != "POST" {
					t.Errorf("405 with Allow %q", allow)
				}
			}
			if a.header.Get("X-Request-Id") == "" || a.header.Get("Cache-Control") != "no-store" {
				t.Errorf("answer without X-Request-Id or Cache-Control: no-store: %v", a.header)
			}
		})
	}
}

// TestTicketOfAnotherMerchantLooksMissing (SPEC §4.4 rule 2): a merchant-scoped
// token naming another merchant's ticket, by id or by code, gets exactly the
// answer of a ticket that does not exist.
func TestTicketOfAnotherMerchantLooksMissing(t *testing.T) {
	e := newEnv(t, admin.Config{})
	body := func(path string) string {
		t.Helper()
		a := e.get(path, e.m1)
		if a.status != 404 {
			t.Fatalf("GET %s: %d %s", path, a.status, a.body)
		}
		return a.body
	}
	if other, missing := body("/admin/v1/tickets/"+e.t2.ID), body("/admin/v1/tickets/2100000000000999999"); other != missing {
		t.Errorf("by id: another merchant's ticket answers %s, a missing one %s", other, missing)
	}
	if other, missing := body("/admin/v1/tickets?code="+e.t2.Code), body("/admin/v1/tickets?code=999999999999"); other != missing {
		t.Errorf("by code: another merchant's ticket answers %s, a missing one %s", other, missing)
	}
}

// TestTickets: a ticket and its timeline, by id without its code, by code with
// it; a scoped token sees its merchant's tickets.
func TestTickets(t *testing.T) {
	e := newEnv(t, admin.Config{})
	for _, token := range []string{e.all, e.m1} {
		var byID, byCode admin.TicketHistory
		e.getJSON("/admin/v1/tickets/"+e.t1.ID, token, &byID)
		e.getJSON("/admin/v1/tickets?code="+e.t1.Code, token, &byCode)
		if byID.Ticket.TicketCode != "" {
			t.Errorf("asked by id, the answer shows the code %q", byID.Ticket.TicketCode)
		}
		if byCode.Ticket.TicketCode != e.t1.Code {
			t.Errorf("asked by code, the answer shows code %q, want %q", byCode.Ticket.TicketCode, e.t1.Code)
		}
		byCode.Ticket.TicketCode = ""
		if fmt.Sprint(byID) != fmt.Sprint(byCode) {
			t.Errorf("by id %+v\nby code %+v", byID, byCode)
		}
		if kinds := recordKinds(byID.Timeline); byID.Ticket.TicketID != e.t1.ID || byID.Ticket.Available != 2 || kinds != "issue,use,use,reversal" {
			t.Errorf("ticket %+v, timeline %s", byID.Ticket, kinds)
		}
	}
	// An all-merchants token naming the ticket's merchant sees it.
	var h admin.TicketHistory
	e.getJSON("/admin/v1/tickets/"+e.t2.ID+"?merchant=m2", e.all, &h)
	if h.Ticket.MerchantID != storetest.M2 {
		t.Errorf("ticket of merchant %q", h.Ticket.MerchantID)
	}
}

// TestRecords: pages in commit order with a cursor, a scoped token defaults to
// its merchant, filters apply, and CSV holds the same page.
func TestRecords(t *testing.T) {
	e := newEnv(t, admin.Config{})
	var whole admin.RecordPage
	e.getJSON("/admin/v1/records?merchant=m1", e.all, &whole)
	if got := recordKinds(whole.Records); got != "issue,use,use,reversal" || whole.NextCursor != "" {
		t.Fatalf("m1's records: %s, next cursor %q", got, whole.NextCursor)
	}
	var scoped admin.RecordPage
	e.getJSON("/admin/v1/records", e.m1, &scoped)
	if fmt.Sprint(scoped) != fmt.Sprint(whole) {
		t.Errorf("a scoped token without merchant=: %+v\nwant its merchant's: %+v", scoped, whole)
	}
	for _, r := range whole.Records {
		if r.MerchantID != storetest.M1 {
			t.Errorf("a record of merchant %q among m1's", r.MerchantID)
		}
	}
	var paged []admin.Record
	cursor := ""
	for range len(whole.Records) + 1 {
		var p admin.RecordPage
		e.getJSON("/admin/v1/records?limit=1&cursor="+cursor, e.m1, &p)
		paged = append(paged, p.Records...)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(paged) != fmt.Sprint(whole.Records) {
		t.Errorf("paged by one: %+v\nwant %+v", paged, whole.Records)
	}
	// A cursor of one query is refused by another.
	var first admin.RecordPage
	e.getJSON("/admin/v1/records?limit=1", e.m1, &first)
	if a := e.get("/admin/v1/records?limit=1&kind=use&cursor="+first.NextCursor, e.m1); a.status != 400 || a.errorCode(t) != "bad_cursor" {
		t.Errorf("a cursor of another query: %d %s", a.status, a.body)
	}
	var uses admin.RecordPage
	e.getJSON("/admin/v1/records?kind=use,reversal&shop="+storetest.S1+"&from=2026-11-01&to=2026-11-02%2000:00:00", e.m1, &uses)
	if got := recordKinds(uses.Records); got != "use,use,reversal" {
		t.Errorf("filtered records: %s", got)
	}
	a := e.get("/admin/v1/records?format=csv", e.m1)
	lines := strings.Split(strings.TrimSpace(a.body), "\n")
	if a.status != 200 || a.header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		lines[0] != strings.Join(admin.RecordCSVHeader, ",") || len(lines) != len(whole.Records)+1 {
		t.Errorf("records as CSV: %d %v\n%s", a.status, a.header, a.body)
	}
}

func recordKinds(rs []admin.Record) string {
	kinds := make([]string, len(rs))
	for i, r := range rs {
		kinds[i] = r.Kind
	}
	return strings.Join(kinds, ",")
}

// TestStatement: the day's statement as JSON and as CSV.
func TestStatement(t *testing.T) {
	e := newEnv(t, admin.Config{})
	var st admin.Statement
	e.getJSON("/admin/v1/statements?date="+day, e.m1, &st)
	if st.MerchantID != storetest.M1 || st.Date != day || len(st.Shops) != 1 || st.Shops[0].ShopID != storetest.S1 ||
		st.Total.Uses != 2 || st.Total.Reversals != 1 || st.Total.NetUnits != 1 {
		t.Errorf("statement %+v", st)
	}
	a := e.get("/admin/v1/statements?merchant=m1&date="+day+"&format=csv", e.all)
	want := strings.Join(admin.StatementCSVHeader, ",") + "\n" + strings.Join(st.Shops[0].CSV(), ",") + "\n"
	total := st.Total
	total.ShopID = "total"
	want += strings.Join(total.CSV(), ",") + "\n"
	if a.status != 200 || a.header.Get("Content-Type") != "text/csv; charset=utf-8" || a.body != want {
		t.Errorf("statement as CSV: %d %s\n%s\nwant\n%s", a.status, a.header.Get("Content-Type"), a.body, want)
	}
}

func (e *env) reconcile(token, query string, body io.Reader) answer {
	e.t.Helper()
	return e.req(http.MethodPost, "/admin/v1/reconciliations?"+query, token, body, "Content-Type", "text/csv")
}

// TestReconcile: the POS file against the ledger's day, its differences bounded
// with "truncated".
func TestReconcile(t *testing.T) {
	e := newEnv(t, admin.Config{MaxDifferences: 2})
	pos := "ticket_request_id,status,units\nu1,reversed,1\nu2,used,1\n"
	a := e.reconcile(e.m1, "date="+day, strings.NewReader(pos))
	var r admin.Reconciliation
	if err := json.Unmarshal([]byte(a.body), &r); err != nil || a.status != 200 {
		t.Fatalf("%d %s (%v)", a.status, a.body, err)
	}
	if r.Matched != 2 || len(r.Differences) != 0 || r.Truncated || r.MerchantID != storetest.M1 || r.Date != day {
		t.Errorf("a matching POS file: %s", a.body)
	}
	if strings.Contains(a.body, "truncated") {
		t.Errorf("an answer that lists every difference says truncated: %s", a.body)
	}
	// Three differences, two listed.
	pos = "ticket_request_id,status\nu1,used\nu3,used\nu4,used\n"
	a = e.reconcile(e.all, "merchant=m1&date="+day, strings.NewReader(pos))
	r = admin.Reconciliation{}
	if err := json.Unmarshal([]byte(a.body), &r); err != nil || a.status != 200 {
		t.Fatalf("%d %s (%v)", a.status, a.body, err)
	}
	if len(r.Differences) != 2 || !r.Truncated || r.DifferencesTotal != 4 || r.Differences[0].Kind != daodian.DiffStatusMismatch ||
		r.Differences[1].Kind != daodian.DiffMissingInLedger {
		t.Errorf("four differences, at most two listed: %s", a.body)
	}
	// The file's fault, as FILE:LINE: reason.
	a = e.reconcile(e.m1, "date="+day, strings.NewReader("ticket_request_id,status\nu1,used\nu2,lost\n"))
	if a.status != 400 || a.errorCode(t) != "bad_file" || !strings.Contains(a.body, `body:3: status \"lost\"`) {
		t.Errorf("a bad line: %d %s", a.status, a.body)
	}
	a = e.reconcile(e.m1, "date="+day, strings.NewReader("ticket_request_id,units\nu1,1\n"))
	if a.status != 400 || !strings.Contains(a.body, "body:1: missing column status") {
		t.Errorf("a missing column: %d %s", a.status, a.body)
	}
}

// hideLength hides a body's length, so that it is sent chunked.
type hideLength struct{ io.Reader }

// TestReconcileBodyLimits: a POS file of 1.5 MB (over the gateway's 1 MiB) is
// reconciled; over Config.MaxReconcileBytes it is refused with 413, declared or
// not, and nothing is reconciled.
func TestReconcileBodyLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("ticket_request_id,status\n")
	for i := 0; b.Len() < 1500_000; i++ {
		fmt.Fprintf(&b, "p%06d,used\n", i)
	}
	pos := b.String()
	lines := strings.Count(pos, "\n") - 1

	e := newEnv(t, admin.Config{})
	a := e.reconcile(e.m1, "date="+day, strings.NewReader(pos))
	var r admin.Reconciliation
	if err := json.Unmarshal([]byte(a.body), &r); err != nil || a.status != 200 {
		t.Fatalf("%d %.200s (%v)", a.status, a.body, err)
	}
	// Every line is missing in the ledger, and u1, u2 missing in the POS file:
	// more than the default bound of the answer.
	if total := lines + 2; !r.Truncated || r.DifferencesTotal != total || len(r.Differences) != admin.DefaultMaxDifferences {
		t.Errorf("%d lines: %d differences listed, truncated %v, total %d; want %d listed of %d",
			lines, len(r.Differences), r.Truncated, r.DifferencesTotal, admin.DefaultMaxDifferences, total)
	}

	small := newEnv(t, admin.Config{MaxReconcileBytes: 1 << 20})
	for what, body := range map[string]io.Reader{
		"declared":             strings.NewReader(pos),
		"chunked (undeclared)": hideLength{strings.NewReader(pos)},
	} {
		a := small.reconcile(small.m1, "date="+day, body)
		if a.status != 413 || a.errorCode(t) != "payload_too_large" {
			t.Errorf("%s body of %d bytes over a limit of 1 MiB: %d %s", what, len(pos), a.status, a.body)
		}
	}
}

// TestTokenCache: a new token works at once; a revoked one keeps working
// until the cache's TTL has passed (2 s by default), and not after.
func TestTokenCache(t *testing.T) {
	e := newEnv(t, admin.Config{})
	tok, token := e.token("fresh", "")
	if a := e.get("/admin/v1/records?merchant=m1", token); a.status != 200 {
		t.Fatalf("a token just created: %d %s", a.status, a.body)
	}
	if _, err := e.w.Ledger.RevokeAdminToken(e.w.Ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	e.w.Clock.Advance(admin.DefaultTokenCacheTTL - time.Millisecond)
	if a := e.get("/admin/v1/records?merchant=m1", token); a.status != 200 {
		t.Fatalf("a revoked token within the cache's TTL: %d %s", a.status, a.body)
	}
	e.w.Clock.Advance(time.Millisecond)
	if a := e.get("/admin/v1/records?merchant=m1", token); a.status != 401 {
		t.Fatalf("a revoked token once the TTL has passed: %d %s", a.status, a.body)
	}
	// A known token is read from the store once per TTL, not per request.
	e.get("/admin/v1/records?merchant=m1", e.all)
	before := e.store.views.Load()
	for range 10 {
		e.get("/admin/v1/tickets/2100000000000999999", e.all) // a 404: one ledger read
	}
	if n := e.store.views.Load() - before; n != 10 {
		t.Errorf("10 requests with a cached token made %d store reads, want 10 (their own)", n)
	}
}

// TestUnauthenticatedCostsNoStoreRead: a request without a token, or with
// anything that is not a valid admin token, never reads the store, and never
// reads its body.
func TestUnauthenticatedCostsNoStoreRead(t *testing.T) {
	e := newEnv(t, admin.Config{})
	before := e.store.views.Load()
	pos := "ticket_request_id,status\n" + strings.Repeat("u1,used\n", 8<<10)
	for _, auth := range []string{"", "raw:Bearer", "raw:Bearer dd_", e.all + "x", "raw:Basic " + e.all, "raw:" + e.all, strings.Repeat("a", 4096)} {
		a := e.reconcile(auth, "merchant=m1&date="+day, strings.NewReader(pos))
		if a.status != 401 {
			t.Errorf("Authorization %.20q: %d, want 401", auth, a.status)
		}
	}
	if n := e.store.views.Load() - before; n != 0 {
		t.Errorf("unauthenticated requests made %d store reads", n)
	}
	if n := e.bodyRead.Load(); n != 0 {
		t.Errorf("unauthenticated requests had %d bytes of their bodies read", n)
	}
	// A revoked token reads the store (once, then it is cached), never the body.
	if a := e.reconcile(e.revoked, "merchant=m1&date="+day, strings.NewReader(pos)); a.status != 401 {
		t.Errorf("a revoked token: %d", a.status)
	}
	if n := e.bodyRead.Load(); n != 0 {
		t.Errorf("a revoked token had %d bytes of its body read", n)
	}
}

// countingBody counts what is read of a request body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestUnknownTokensBounded: at most two store reads of unknown tokens run at
// once; a third waits at most 1 s, then is answered 503 busy, while a known
// token is answered meanwhile.
func TestUnknownTokensBounded(t *testing.T) {
	e := newEnv(t, admin.Config{})
	if a := e.get("/admin/v1/records?merchant=m1", e.all); a.status != 200 { // cached from now on
		t.Fatal(a.status, a.body)
	}
	hold := make(chan struct{})
	e.store.hold.Store(&hold)
	unknown := func(i int) string { return fmt.Sprintf("dd_%043d", i) }
	before := e.store.views.Load()
	done := make(chan int, 2)
	for i := range 2 {
		go func() { done <- e.get("/admin/v1/records?merchant=m1", unknown(i)).status }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.store.views.Load() < before+2 && time.Now().Before(deadline) { // both are held in their reads
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	a := e.get("/admin/v1/records?merchant=m1", unknown(3))
	if a.status != 503 || a.errorCode(t) != "busy" || a.header.Get("Retry-After") == "" {
		t.Errorf("a third unknown token: %d %s, want 503 busy with Retry-After", a.status, a.body)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("answered busy after %v, want after waiting about 1 s", d)
	}
	e.store.hold.Store(nil)
	close(hold)
	for range 2 {
		if s := <-done; s != 401 {
			t.Errorf("an unknown token, once read: %d, want 401", s)
		}
	}
}

// TestFailuresAnswerJSON: a panic is a 500 and a transient store failure a 503,
// both JSON, and the server keeps serving.
func TestFailuresAnswerJSON(t *testing.T) {
	e := newEnv(t, admin.Config{})
	e.get("/admin/v1/records?merchant=m1", e.m1) // the token is cached: the failures hit the handler
	e.store.panic.Store(true)
	a := e.get("/admin/v1/records", e.m1)
	if a.status != 500 || a.errorCode(t) != "internal" || !strings.Contains(a.body, a.header.Get("X-Request-Id")) {
		t.Errorf("a panic: %d %s", a.status, a.body)
	}
	e.store.panic.Store(false)
	transient := daodian.Transient(errors.New("database is locked"))
	e.store.fail.Store(&transient)
	a = e.get("/admin/v1/statements?date="+day, e.m1)
	if a.status != 503 || a.errorCode(t) != "unavailable" || a.header.Get("Retry-After") == "" {
		t.Errorf("a transient failure: %d %s", a.status, a.body)
	}
	broken := errors.New("disk on fire at /var/lib/secret-path")
	e.store.fail.Store(&broken)
	a = e.get("/admin/v1/statements?date="+day, e.m1)
	if a.status != 500 || a.errorCode(t) != "internal" || strings.Contains(a.body, "secret-path") {
		t.Errorf("a store failure: %d %s, want 500 without the cause", a.status, a.body)
	}
	e.store.fail.Store(nil)
	if a := e.get("/admin/v1/statements?date="+day, e.m1); a.status != 200 {
		t.Errorf("after the failures: %d %s", a.status, a.body)
	}
	if !strings.Contains(e.logs.String(), "panic in admin request") || !strings.Contains(e.logs.String(), "disk on fire") {
		t.Errorf("the failures are not in the log:\n%s", e.logs.String())
	}
}

// TestLogs: one line per request, with the token's id; never the token, nor a
// ticket code asked for.
func TestLogs(t *testing.T) {
	e := newEnv(t, admin.Config{})
	e.get("/admin/v1/tickets?code="+e.t1.Code, e.all)
	e.get("/admin/v1/tickets?code="+e.t1.Code, e.revoked)
	e.get("/admin/v1/records", e.all)
	logs := e.logs.String()
	for _, secret := range []string{e.all, e.revoked, e.t1.Code, e.allTok.Hash, e.w.A.Secret} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
	var lines []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("%d log lines for 3 requests:\n%s", len(lines), logs)
	}
	want := []struct {
		status  float64
		tokenID any
		code    any
	}{{200, e.allTok.ID, nil}, {401, nil, "unauthorized"}, {400, e.allTok.ID, "invalid_parameter"}}
	for i, l := range lines {
		if l["msg"] != "admin request" || l["status"] != want[i].status || l["token_id"] != want[i].tokenID ||
			l["code"] != want[i].code || l["path"] != map[int]string{0: "/admin/v1/tickets", 1: "/admin/v1/tickets", 2: "/admin/v1/records"}[i] {
			t.Errorf("log line %d: %v", i, l)
		}
	}
}

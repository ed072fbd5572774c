package admin

import (
	"encoding/csv"
	"errors"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/top"
)

// The endpoints of SPEC §8 over HTTP. Every one is read-only.

// params parses the request's query: it must parse, name only the parameters
// the endpoint takes, and name each at most once (never silently resolved, as
// on /router/rest).
func params(c *call, allowed ...string) (url.Values, *apiError) {
	q, err := url.ParseQuery(c.r.URL.RawQuery)
	if err != nil {
		return nil, errInvalid("the query string does not parse")
	}
	// In name order, so that a request with several faults always gets the
	// same answer.
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, name) {
			return nil, errInvalid("unknown parameter " + strconv.Quote(clip(name)) + "; this endpoint takes " + strings.Join(allowed, ", "))
		}
		if len(q[name]) > 1 {
			return nil, errInvalid("parameter " + name + " is given more than once")
		}
	}
	return q, nil
}

// clip shortens a caller's text before it is echoed in a message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// merchant resolves the merchant a request is about. A merchant-scoped token
// sees its merchant only: naming another is 403, naming none means its own. A
// token for every merchant must name one when required is set.
func merchant(c *call, q url.Values, required bool) (string, *apiError) {
	m := q.Get("merchant")
	if scope := c.token.MerchantID; scope != "" {
		if m != "" && m != scope {
			return "", &apiError{http.StatusForbidden, codeForbidden, "this admin token sees merchant " + strconv.Quote(scope) + " only"}
		}
		return scope, nil
	}
	if m == "" && required {
		return "", errInvalid("merchant is required: this admin token sees every merchant, name one")
	}
	return m, nil
}

// query is a request's checked parameters: the merchant it is about (under the
// token's scope, "" for none) and whether it asked for CSV.
type query struct {
	url.Values
	merchant string
	csv      bool
}

// parse checks the request's parameters: allowed are those the endpoint takes
// besides merchant, which every endpoint takes (and needs when needMerchant).
// On a fault it answers the error and returns false.
func parse(c *call, needMerchant bool, allowed ...string) (*query, bool) {
	v, err := params(c, append([]string{"merchant"}, allowed...)...)
	q := &query{Values: v}
	if err == nil {
		q.csv, err = format(v)
	}
	if err == nil {
		q.merchant, err = merchant(c, v, needMerchant)
	}
	if err != nil {
		c.fail(err)
		return nil, false
	}
	return q, true
}

const (
	msgTicketNotFound   = "no such ticket"
	msgMerchantNotFound = "no such merchant"
)

// ticketByID answers GET /admin/v1/tickets/{id}: the ticket and its timeline,
// without its code. A ticket outside the token's merchant is answered exactly
// like one that does not exist (SPEC §4.4 rule 2: naming a ticket must not
// reveal that it exists).
func (a *API) ticketByID(c *call, id string) {
	q, ok := parse(c, false)
	if !ok {
		return
	}
	h, err := a.ledger.TicketHistory(c.r.Context(), id, "", q.merchant)
	if err != nil {
		a.failWith(c, err, msgTicketNotFound)
		return
	}
	c.json(TicketHistoryOf(h, false))
}

// ticketByCode answers GET /admin/v1/tickets?code=C: like ticketByID, and the
// answer shows the code, which the caller already has.
func (a *API) ticketByCode(c *call, _ string) {
	q, ok := parse(c, false, "code")
	if !ok {
		return
	}
	code := q.Get("code")
	if code == "" {
		c.fail(errInvalid("code is required (or GET " + Prefix + "tickets/{ticket_id})"))
		return
	}
	h, err := a.ledger.TicketHistory(c.r.Context(), "", code, q.merchant)
	if err != nil {
		a.failWith(c, err, msgTicketNotFound)
		return
	}
	c.json(TicketHistoryOf(h, true))
}

// ParseTime parses a time of the admin API's parameters (and the CLI's flags):
// yyyy-MM-dd HH:mm:ss or yyyy-MM-dd (its midnight), in GMT+8.
func ParseTime(s string) (time.Time, error) {
	if t, err := top.ParseTime(s); err == nil {
		return t, nil
	}
	if len(s) == len(time.DateOnly) {
		if t, err := top.ParseTime(s + " 00:00:00"); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("is not yyyy-MM-dd HH:mm:ss or yyyy-MM-dd (GMT+8)")
}

// records answers GET /admin/v1/records: one page of a merchant's records,
// {"records": […], "next_cursor": "…"}, or with format=csv the page as CSV
// (RecordCSVHeader) and the next cursor in the X-Next-Cursor header.
func (a *API) records(c *call, _ string) {
	q, ok := parse(c, true, "shop", "from", "to", "kind", "limit", "cursor", "format")
	if !ok {
		return
	}
	rq := daodian.RecordQuery{MerchantID: q.merchant, ShopID: q.Get("shop")}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &rq.From}, {"to", &rq.To}} {
		if v := q.Get(f.name); v != "" {
			t, err := ParseTime(v)
			if err != nil {
				c.fail(errInvalid(f.name + " " + err.Error()))
				return
			}
			*f.dst = t
		}
	}
	for k := range strings.SplitSeq(q.Get("kind"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			rq.Kinds = append(rq.Kinds, daodian.RecordKind(k))
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > daodian.MaxRecordsPage {
			c.fail(errInvalid("limit must be a whole number from 1 to " + strconv.Itoa(daodian.MaxRecordsPage)))
			return
		}
		rq.Limit = n
	}
	page, err := a.ledger.Records(c.r.Context(), rq, q.Get("cursor"))
	if err != nil {
		a.failWith(c, err, msgMerchantNotFound)
		return
	}
	out := RecordPageOf(page)
	if !q.csv {
		c.json(out)
		return
	}
	c.w.Header().Set("X-Next-Cursor", out.NextCursor)
	rows := make([][]string, len(out.Records))
	for i, r := range out.Records {
		rows[i] = r.CSV()
	}
	c.csv(RecordCSVHeader, rows)
}

// format reads the format parameter: json (the default) or csv.
func format(q url.Values) (csv bool, err *apiError) {
	switch q.Get("format") {
	case "", "json":
		return false, nil
	case "csv":
		return true, nil
	}
	return false, errInvalid("format must be json or csv")
}

// statement answers GET /admin/v1/statements: a merchant's day per shop and in
// total (the Statement shape), or with format=csv one line per shop and a last
// line with shop_id "total" (StatementCSVHeader).
func (a *API) statement(c *call, _ string) {
	q, ok := parse(c, true, "date", "shop", "format")
	if !ok {
		return
	}
	st, err := a.ledger.Statement(c.r.Context(), q.merchant, q.Get("date"), q.Get("shop"))
	if err != nil {
		a.failWith(c, err, msgMerchantNotFound)
		return
	}
	out := StatementOf(st)
	if !q.csv {
		c.json(out)
		return
	}
	rows := make([][]string, 0, len(out.Shops)+1)
	for _, l := range out.Shops {
		rows = append(rows, l.CSV())
	}
	total := out.Total
	total.ShopID = "total"
	c.csv(StatementCSVHeader, append(rows, total.CSV()))
}

// csv answers a header and rows as text/csv with status 200.
func (c *call) csv(header []string, rows [][]string) {
	c.w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	c.status, c.written = http.StatusOK, true
	c.w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(c.w)
	_ = cw.Write(header)
	_ = cw.WriteAll(rows) // a write error is the client's connection: nothing to answer
}

// reconcile answers POST /admin/v1/reconciliations?merchant=&date= with the
// POS's CSV as the body (the file of `daodian reconcile`): the reconciliation,
// its differences bounded by Config.MaxDifferences ("truncated": true and
// "differences_total" when there were more). The body is bounded by
// Config.MaxReconcileBytes and read under the server's timeouts; at most
// Config.MaxReconciliations run at once (503 busy beyond).
func (a *API) reconcile(c *call, _ string) {
	q, ok := parse(c, true, "date")
	if !ok {
		return
	}
	// The parameters are checked before the body is read: a wrong date costs
	// the client nothing to learn.
	if _, err := daodian.ParseDay(q.Get("date")); err != nil {
		a.failWith(c, err, "")
		return
	}
	if perr := csvBody(c.r); perr != nil {
		c.fail(perr)
		return
	}
	if c.r.ContentLength > a.cfg.MaxReconcileBytes {
		c.fail(a.tooLarge())
		return
	}
	select {
	case a.reconciling <- struct{}{}:
		defer func() { <-a.reconciling }()
	default:
		c.fail(&apiError{http.StatusServiceUnavailable, codeBusy,
			strconv.Itoa(cap(a.reconciling)) + " reconciliations are running; retry when one has finished"})
		return
	}
	body := &stickyReader{r: http.MaxBytesReader(c.w, c.r.Body, a.cfg.MaxReconcileBytes)}
	lines, err := daodian.ParsePOS(body, "body")
	if berr := body.err; berr != nil && !errors.Is(berr, io.EOF) {
		var mb *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(berr, &mb):
			c.fail(a.tooLarge())
		case errors.As(berr, &ne) && ne.Timeout():
			c.fail(&apiError{http.StatusRequestTimeout, codeRequestTimeout, "the body did not arrive in time"})
		default:
			c.fail(&apiError{http.StatusBadRequest, codeBadFile, "the body could not be read"})
		}
		return
	}
	if err != nil {
		a.failWith(c, err, "")
		return
	}
	rec, err := a.ledger.Reconcile(c.r.Context(), q.merchant, q.Get("date"), lines)
	if err != nil {
		a.failWith(c, err, msgMerchantNotFound)
		return
	}
	out := ReconciliationOf(rec)
	if n := len(out.Differences); n > a.cfg.MaxDifferences {
		out.Differences, out.Truncated, out.DifferencesTotal = out.Differences[:a.cfg.MaxDifferences], true, n
	}
	c.json(out)
}

func (a *API) tooLarge() *apiError {
	return &apiError{http.StatusRequestEntityTooLarge, codePayloadTooLarge,
		"the POS file is larger than " + strconv.FormatInt(a.cfg.MaxReconcileBytes, 10) + " bytes: reconcile it in parts (by day)"}
}

// csvBody checks the body's declared type: CSV, or text, or bytes, or none. A
// form (curl's default for --data) is refused, since its decoding would
// change the file.
func csvBody(r *http.Request) *apiError {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
	case mt == "text/csv", mt == "text/plain", mt == "application/octet-stream":
		return nil
	}
	return &apiError{http.StatusUnsupportedMediaType, codeUnsupportedMediaType,
		"send the POS file as the body with Content-Type: text/csv (curl: -H 'Content-Type: text/csv' --data-binary @pos.csv)"}
}

// stickyReader keeps the first error of its reader other than the end of the
// body: the POS parser reports a read failure as a fault of the file, and the
// answer must tell a body too large or too slow from a file that is wrong.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

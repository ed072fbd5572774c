package console

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/top"
)

// The pages. Each reads and changes only through the admin API's Go methods,
// under the session's token.

// link is the URL of a console page for this page's merchant (view.Link).
func (p *page) link(name string, kv ...string) string {
	v := view{Scoped: p.who.Token.MerchantID != "", Merchant: p.merchant}
	return v.Link(name, kv...)
}

// Sign-in messages, chosen by a fixed word in the URL (never echoed text).
var loginMessages = map[string]string{
	"revoked":   "Your admin token is no longer valid (revoked): sign in with another.",
	"signedout": "Signed out.",
}

type loginData struct {
	CSRF    string
	Message string
	Error   bool
}

// loginForm answers the sign-in page, with a fresh CSRF token in a cookie
// and in the form (double submit).
func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil && c.sessions.get(ck.Value) != nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.renderLogin(w, r, http.StatusOK, loginData{Message: loginMessages[r.URL.Query().Get("why")]})
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, d loginData) {
	d.CSRF = randomText(24)
	c.setCookie(w, r, loginCookie, d.CSRF, 3600)
	c.write(w, "login", status, &view{Title: "Sign in", CSS: c.cssURL(), Data: d})
}

// login signs a browser in with an admin token.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	now := c.cfg.Clock()
	addr := clientAddr(r, c.cfg.TrustProxy)
	if ok, wait := c.throttle.allowed(addr, now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		c.renderLogin(w, r, http.StatusTooManyRequests, loginData{Error: true,
			Message: "Too many failed sign-ins from your address: wait " + strconv.Itoa(int(wait.Seconds())+1) + " s."})
		return
	}
	if err := c.parseForm(w, r); err != nil {
		c.errorPage(w, r, badRequest(err.Error()))
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || !fromHere(r) || !sameToken(r.PostForm.Get("csrf"), ck.Value) {
		c.renderLogin(w, r, http.StatusForbidden, loginData{Error: true, Message: "The sign-in form expired: sign in again."})
		return
	}
	rid := requestIDOf(r.Context())
	tok, aerr := c.api.Authenticate(r.Context(), strings.TrimSpace(r.PostForm.Get("token")), rid)
	if aerr != nil {
		if aerr.Status() != http.StatusUnauthorized {
			c.errorPage(w, r, aerr)
			return
		}
		c.throttle.failed(addr, now)
		c.renderLogin(w, r, http.StatusUnauthorized, loginData{Error: true, Message: "That is not a valid admin token (unknown, revoked or mistyped)."})
		return
	}
	if rec, ok := w.(*recorder); ok {
		rec.tokenID = tok.ID
	}
	id, _ := c.sessions.create(tok.Hash, tok.ID)
	c.setCookie(w, r, sessionCookie, id, 0)
	c.setCookie(w, r, loginCookie, "", -1)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) logout(p *page) {
	c.sessions.drop(p.s)
	c.clearSession(p.w, p.r)
	c.toLogin(p.w, p.r, "signedout")
}

type overviewData struct {
	O      admin.Overview
	Charts []chart
}

func (c *Console) overview(p *page) {
	if p.merchant == "" {
		p.render("overview", "Overview", http.StatusOK, overviewData{})
		return
	}
	o, aerr := c.api.Overview(p.r.Context(), p.who, p.merchant)
	if aerr != nil {
		p.fail(aerr)
		return
	}
	p.render("overview", "Overview", http.StatusOK, overviewData{O: o, Charts: charts(o.Traffic)})
}

type ticketData struct {
	Q     string
	H     *admin.TicketHistory
	Error string
}

// ticket looks a ticket up by code (12 digits) or id (19 digits). A ticket
// outside the token's merchant is "no such ticket", as in the API.
func (c *Console) ticket(p *page) {
	d := ticketData{Q: strings.TrimSpace(p.r.URL.Query().Get("q"))}
	if d.Q == "" {
		p.render("ticket", "Ticket", http.StatusOK, d)
		return
	}
	id, code := "", d.Q
	if len(d.Q) == 19 {
		id, code = d.Q, ""
	}
	h, aerr := c.api.Ticket(p.r.Context(), p.who, id, code, "")
	switch {
	case aerr == nil:
		d.H = &h
	case aerr.Status() == http.StatusNotFound || aerr.Status() == http.StatusBadRequest:
		d.Error = "No such ticket: " + aerr.Message()
		p.render("ticket", "Ticket", aerr.Status(), d)
		return
	default:
		p.fail(aerr)
		return
	}
	p.render("ticket", "Ticket "+h.Ticket.TicketID, http.StatusOK, d)
}

// Records: a page holds recordsPage records; the CSV every record of the
// filter, read maxCSVPage at a time, at most maxCSVRecords.
const (
	recordsPage   = 50
	maxCSVPage    = 10_000
	maxCSVRecords = 100_000
)

type kindBox struct {
	Value string
	On    bool
}

type recordsData struct {
	Shops            []admin.Shop
	Shop, From, To   string
	Kinds            []kindBox
	Page             *admin.RecordPage
	Next, First, CSV string
	Error            string
	Limit, CSVMax    int
	// Filter says in words which filters apply ("" for none).
	Filter string
}

// recordsQuery reads the filters of the records page.
func (p *page) recordsQuery() (admin.RecordsQuery, []string) {
	q := p.r.URL.Query()
	kinds := q["kind"]
	return admin.RecordsQuery{Merchant: p.merchant, Shop: q.Get("shop"), From: strings.TrimSpace(q.Get("from")),
		To: strings.TrimSpace(q.Get("to")), Kinds: strings.Join(kinds, ","), Cursor: q.Get("cursor")}, kinds
}

// filterLink is the URL of the records page (or its CSV) with the filters.
func (p *page) filterLink(name string, rq admin.RecordsQuery, kinds []string, cursor string) string {
	kv := []string{"shop", rq.Shop, "from", rq.From, "to", rq.To, "cursor", cursor}
	u := p.link(name, kv...)
	for _, k := range kinds {
		sep := "&"
		if !strings.Contains(u, "?") {
			sep = "?"
		}
		u += sep + "kind=" + url.QueryEscape(k)
	}
	return u
}

func (c *Console) records(p *page) {
	rq, kinds := p.recordsQuery()
	d := recordsData{Shop: rq.Shop, From: rq.From, To: rq.To, Limit: recordsPage, CSVMax: maxCSVRecords,
		CSV: p.filterLink("records.csv", rq, kinds, "")}
	var filter []string
	for _, k := range daodian.RecordKinds {
		on := slices.Contains(kinds, string(k))
		d.Kinds = append(d.Kinds, kindBox{Value: string(k), On: on})
		if on {
			filter = append(filter, kindLabel(string(k)))
		}
	}
	if rq.Shop != "" {
		filter = append(filter, "shop "+rq.Shop)
	}
	if rq.From != "" {
		filter = append(filter, "from "+rq.From)
	}
	if rq.To != "" {
		filter = append(filter, "before "+rq.To)
	}
	d.Filter = strings.Join(filter, " · ")
	if p.merchant == "" {
		d.Error = "No merchant yet."
		p.render("records", "Records", http.StatusOK, d)
		return
	}
	if shops, aerr := c.api.Shops(p.r.Context(), p.who, p.merchant); aerr == nil {
		d.Shops = shops.Shops
	}
	rq.Limit = strconv.Itoa(recordsPage)
	page, aerr := c.api.Records(p.r.Context(), p.who, rq)
	if aerr != nil {
		if aerr.Status() >= 500 || aerr.Status() == http.StatusUnauthorized {
			p.fail(aerr)
			return
		}
		d.Error = aerr.Message()
		p.render("records", "Records", aerr.Status(), d)
		return
	}
	d.Page = &page
	if page.NextCursor != "" {
		d.Next = p.filterLink("records", rq, kinds, page.NextCursor)
	}
	if rq.Cursor != "" {
		d.First = p.filterLink("records", rq, kinds, "")
	}
	p.render("records", "Records", http.StatusOK, d)
}

// recordsCSV streams every record of the filter as CSV (the fields of SPEC
// §8), at most maxCSVRecords; the X-Next-Cursor header of the admin API's
// CSV is not needed here, the download being the whole filter.
func (c *Console) recordsCSV(p *page) {
	rq, _ := p.recordsQuery()
	rq.Cursor = ""
	rq.Limit = strconv.Itoa(maxCSVPage)
	page, aerr := c.api.Records(p.r.Context(), p.who, rq)
	if aerr != nil {
		p.fail(aerr)
		return
	}
	name := "records-" + safeName(p.merchant) + "-" + c.cfg.Clock().In(top.CST).Format("20060102-150405") + ".csv"
	h := p.w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	cw := csv.NewWriter(p.w)
	_ = cw.Write(admin.RecordCSVHeader)
	for n := 0; ; {
		for _, r := range page.Records {
			_ = cw.Write(r.CSV())
		}
		n += len(page.Records)
		if page.NextCursor == "" || n >= maxCSVRecords {
			break
		}
		rq.Cursor = page.NextCursor
		rq.Limit = strconv.Itoa(min(maxCSVPage, maxCSVRecords-n))
		if page, aerr = c.api.Records(p.r.Context(), p.who, rq); aerr != nil {
			// The answer has begun: all that can be done is to stop it short;
			// the error is in the log.
			c.cfg.Logger.Warn("records CSV cut short", "request_id", p.who.RequestID, "code", aerr.Code())
			break
		}
	}
	cw.Flush()
}

// safeName keeps the letters, digits, '-' and '_' of a merchant id, for a
// file name.
func safeName(s string) string {
	b := []byte(s)
	out := b[:0]
	for _, ch := range b {
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' {
			out = append(out, ch)
		}
	}
	if len(out) == 0 {
		return "all"
	}
	return string(out[:min(len(out), 64)])
}

type requestsData struct {
	L      admin.RequestList
	App    string
	PerApp int
	Masked bool
}

// requestsShown is how many requests the requests page shows.
const requestsShown = 50

func (c *Console) requests(p *page) {
	app := p.r.URL.Query().Get("app")
	l, aerr := c.api.Requests(p.r.Context(), p.who, p.merchant, app, requestsShown)
	if aerr != nil {
		p.fail(aerr)
		return
	}
	d := requestsData{L: l, App: app, PerApp: gateway.DefaultRequestLogPerApp, Masked: !seesAll(p.who.Token)}
	p.render("requests", "Requests", http.StatusOK, d)
}

// methodChoice is a method in a form's list.
type methodChoice struct {
	Name, Label string
}

func methodChoices() []methodChoice {
	out := make([]methodChoice, 0, len(alsc.Specs))
	for _, s := range alsc.Specs {
		out = append(out, methodChoice{Name: s.Name, Label: shortMethod(s.Name)})
	}
	return out
}

type faultsData struct {
	L       admin.FaultList
	Apps    []admin.App
	Methods []methodChoice
}

func (c *Console) faults(p *page) {
	l, aerr := c.api.Faults(p.r.Context(), p.who, p.merchant, "")
	if aerr != nil {
		p.fail(aerr)
		return
	}
	apps, aerr := c.api.Apps(p.r.Context(), p.who, p.merchant)
	if aerr != nil {
		p.fail(aerr)
		return
	}
	p.render("faults", "Faults", http.StatusOK, faultsData{L: l, Apps: apps.Apps, Methods: methodChoices()})
}

func (c *Console) addFault(p *page) {
	f := p.r.PostForm
	n := admin.NewFault{AppKey: f.Get("app_key"), Kind: f.Get("kind"), Method: f.Get("method")}
	if t := strings.TrimSpace(f.Get("ticket")); len(t) == 19 {
		n.TicketID = t
	} else {
		n.TicketCode = t
	}
	count, aerr := formInt(p.r, "count")
	if aerr == nil && strings.TrimSpace(f.Get("count")) != "" {
		n.Count = &count
	}
	if aerr == nil {
		n.Code, aerr = formInt(p.r, "code")
	}
	var wait int
	if aerr == nil {
		wait, aerr = formInt(p.r, "wait_ms")
		n.WaitMS = int64(wait)
	}
	if v := strings.TrimSpace(f.Get("probability")); aerr == nil && v != "" {
		var err error
		if n.Probability, err = strconv.ParseFloat(v, 64); err != nil {
			aerr = badRequest("probability must be a number from 0 to 1")
		}
	}
	if aerr == nil {
		var r admin.FaultRule
		if r, aerr = c.api.AddFault(p.r.Context(), p.who, n); aerr == nil {
			p.redirect(p.link("faults"), &flash{Text: "Rule " + r.RuleID + " armed: " + r.Kind + " for app " + r.AppKey + "."})
			return
		}
	}
	p.formFailed(aerr, "faults")
}

// formFailed sends a refused form back to its page (with the query's
// name/value pairs kv) with the reason; a failure of the server is an error
// page.
func (p *page) formFailed(aerr *admin.Error, back string, kv ...string) {
	if aerr.Status() >= 500 || aerr.Status() == http.StatusUnauthorized {
		p.fail(aerr)
		return
	}
	p.redirect(p.link(back, kv...), &flash{Error: true, Text: aerr.Message()})
}

func (c *Console) clearFaults(p *page) {
	out, aerr := c.api.ClearFaults(p.r.Context(), p.who, p.merchant, "", p.r.PostForm.Get("id"))
	if aerr != nil {
		p.formFailed(aerr, "faults")
		return
	}
	p.redirect(p.link("faults"), &flash{Text: "Cleared " + strconv.Itoa(out.Cleared) + " rule(s)."})
}

type appsData struct {
	Apps    []admin.App
	Shops   []admin.Shop
	Methods []methodChoice
}

func (c *Console) apps(p *page) {
	apps, aerr := c.api.Apps(p.r.Context(), p.who, p.merchant)
	if aerr != nil {
		p.fail(aerr)
		return
	}
	d := appsData{Apps: apps.Apps, Methods: methodChoices()}
	if p.merchant != "" {
		shops, aerr := c.api.Shops(p.r.Context(), p.who, p.merchant)
		if aerr != nil {
			p.fail(aerr)
			return
		}
		d.Shops = shops.Shops
	}
	p.render("apps", "Apps & shops", http.StatusOK, d)
}

type secretData struct {
	Title string
	App   admin.AppWithSecret
}

// createApp creates an app and answers its secret on this page alone: not
// in a redirect's URL, not in the session, not in a log.
func (c *Console) createApp(p *page) {
	f := p.r.PostForm
	rate, aerr := formInt(p.r, "rate_limit_per_s")
	if aerr == nil {
		merchant := f.Get("merchant")
		if p.who.Token.MerchantID != "" {
			merchant = ""
		}
		var app admin.AppWithSecret
		if app, aerr = c.api.CreateApp(p.r.Context(), p.who, admin.NewApp{Name: f.Get("name"), Merchant: merchant, Methods: f["methods"], RateLimitPerS: rate}); aerr == nil {
			p.merchant = app.Merchants[0]
			p.render("secret", "New app", http.StatusOK, secretData{Title: "App created", App: app})
			return
		}
	}
	p.formFailed(aerr, "apps")
}

func (c *Console) rotateSecret(p *page) {
	hours, aerr := formInt(p.r, "grace_h")
	if aerr == nil {
		var app admin.AppWithSecret
		if app, aerr = c.api.RotateSecret(p.r.Context(), p.who, p.r.PostForm.Get("app_key"), time.Duration(hours)*time.Hour); aerr == nil {
			p.render("secret", "New secret", http.StatusOK, secretData{Title: "Secret rotated", App: app})
			return
		}
	}
	p.formFailed(aerr, "apps")
}

func (c *Console) addShop(p *page) {
	f := p.r.PostForm
	merchant := f.Get("merchant")
	if p.who.Token.MerchantID != "" {
		merchant = ""
	}
	s, aerr := c.api.AddShop(p.r.Context(), p.who, admin.NewShop{Merchant: merchant, ShopID: f.Get("shop_id"), Name: f.Get("name")})
	if aerr != nil {
		p.formFailed(aerr, "apps")
		return
	}
	p.merchant = s.MerchantID
	p.redirect(p.link("apps"), &flash{Text: "Shop " + s.ShopID + " added to " + s.MerchantID + "."})
}

// funcs are the templates' functions. None returns template.HTML: every
// value is escaped.
var funcs = template.FuncMap{
	"yuan":    yuan,
	"kind":    kindLabel,
	"short":   shortMethod,
	"ms":      func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " ms" },
	"join":    func(s []string) string { return strings.Join(s, ", ") },
	"abbr":    abbr,
	"pretty":  pretty,
	"event":   eventLabel,
	"outcome": outcomeLabel,
	"lag":     lagText,
}

// abbr shortens a long key for a narrow column (its title has it whole).
func abbr(s string) string {
	if len(s) <= 10 {
		return s
	}
	return s[:8] + "…"
}

// pretty indents an answer that is JSON, for reading; anything else (XML,
// an answer cut to the log's bound) is shown as it is.
func pretty(s string) string {
	var b bytes.Buffer
	if json.Indent(&b, []byte(s), "", "  ") != nil {
		return s
	}
	return b.String()
}

// yuan renders cents as yuan with two decimals.
func yuan(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return sign + strconv.FormatInt(cents/100, 10) + "." + strconv.FormatInt(cents%100/10, 10) + strconv.FormatInt(cents%10, 10)
}

// kindLabels name the kinds of records as merchants know them.
var kindLabels = map[string]string{
	"issue":    "发放 issue",
	"use":      "核销 use",
	"reversal": "冲正 reversal",
	"fence":    "空冲正 fence",
	"refund":   "售后退 refund",
}

func kindLabel(k string) string {
	if l, ok := kindLabels[k]; ok {
		return l
	}
	return k
}

// shortMethod names a method as people say it.
func shortMethod(m string) string {
	switch m {
	case alsc.MethodTimeGet:
		return "time.get"
	case alsc.MethodConsult:
		return "consult 预览"
	case alsc.MethodUse:
		return "use 核销"
	case alsc.MethodReserve:
		return "reserve 冲正"
	case alsc.MethodRefund:
		return "refund 售后退"
	}
	return m
}

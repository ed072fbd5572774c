package console_test

import (
	"crypto/tls"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/console"
	"github.com/daodian/daodian/storetest"
)

// agent is a browser as the console sees it over HTTP: a cookie jar, no
// redirects followed (the tests look at them), and the Sec-Fetch-Site a
// browser sends for a page of the console's own.
type agent struct {
	t    *testing.T
	base string
	c    *http.Client
	// site is the Sec-Fetch-Site header sent with each request ("" for none).
	site   string
	header http.Header
}

func newAgent(t *testing.T, base string, client *http.Client) *agent {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *client
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &agent{t: t, base: base, c: &c, site: "same-origin", header: http.Header{}}
}

// page is an answer.
type page struct {
	status int
	header http.Header
	body   string
}

func (a *agent) do(method, path string, form url.Values) page {
	a.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if a.site != "" {
		req.Header.Set("Sec-Fetch-Site", a.site)
	}
	for k, v := range a.header {
		req.Header[k] = v
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return page{resp.StatusCode, resp.Header, string(b)}
}

func (a *agent) get(path string) page { a.t.Helper(); return a.do(http.MethodGet, path, nil) }

func (a *agent) post(path string, form url.Values) page {
	a.t.Helper()
	return a.do(http.MethodPost, path, form)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of a page's forms.
func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF token in the page (%d): %s", p.status, p.body)
	}
	return html.UnescapeString(m[1])
}

// signIn signs the agent in and returns the session's CSRF token.
func (a *agent) signIn(token string) string {
	a.t.Helper()
	p := a.post("/console/login", url.Values{"csrf": {csrf(a.t, a.get("/console/login"))}, "token": {token}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/" {
		a.t.Fatalf("sign-in: %d %v %s", p.status, p.header, p.body)
	}
	return csrf(a.t, a.get("/console/"))
}

// signedIn reports whether a page is a signed-in page, rather than the
// redirect to the sign-in page.
func signedIn(p page) bool { return p.status == http.StatusOK && strings.Contains(p.body, "Sign out") }

func toLogin(p page) bool {
	return p.status == http.StatusSeeOther && strings.HasPrefix(p.header.Get("Location"), "/console/login")
}

// TestSecurityHeaders: every answer of the console, signed in or not, a 404
// included, has the strict CSP (no script source at all, no inline style,
// no framing), X-Frame-Options, Referrer-Policy, nosniff; pages are not
// cached, the stylesheet is.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, console.Config{})
	a := newAgent(t, e.srv.URL, e.srv.Client())
	login := a.get("/console/login")
	a.signIn(e.m1)
	const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	css := regexp.MustCompile(`href="(/console/static/console\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(login.body)
	if css == nil {
		t.Fatalf("no stylesheet in %s", login.body)
	}
	for _, path := range []string{"/console/login", "/console/", "/console/ticket", "/console/records", "/console/requests",
		"/console/faults", "/console/webhooks", "/console/apps", "/console/nowhere", "/console/records.csv", css[1]} {
		p := a.get(path)
		h := p.header
		if h.Get("Content-Security-Policy") != csp || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" ||
			h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, h)
		}
		cache := h.Get("Cache-Control")
		if path == css[1] {
			if p.status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/css") || !strings.Contains(cache, "max-age") {
				t.Errorf("the stylesheet: %d %v", p.status, h)
			}
		} else if cache != "no-store" {
			t.Errorf("%s: Cache-Control %q", path, cache)
		}
		if strings.Contains(p.body, "<script") || strings.Contains(p.body, " style=") || strings.Contains(p.body, "<style") {
			t.Errorf("%s: a script or an inline style, which the CSP forbids", path)
		}
	}
}

// TestPages: every page answers 200 to a token of every merchant and to a
// merchant's token, and says what the merchant's token sees.
func TestPages(t *testing.T) {
	e := newEnv(t, console.Config{})
	e.busyHour()
	for _, tok := range []string{e.all, e.m1} {
		a := newAgent(t, e.srv.URL, e.srv.Client())
		a.signIn(tok)
		for _, path := range []string{"/console/", "/console/?merchant=m1", "/console/ticket", "/console/ticket?q=" + e.used.Code,
			"/console/ticket?q=" + e.used.ID, "/console/records", "/console/records?kind=use&kind=reversal&shop=shop-1&from=2026-11-01",
			"/console/requests", "/console/requests?app=" + e.w.A.Key, "/console/faults", "/console/webhooks", "/console/apps"} {
			if p := a.get(path); !signedIn(p) {
				t.Errorf("GET %s: %d %s", path, p.status, p.body)
			}
		}
		if p := a.get("/console/records.csv"); p.status != 200 || !strings.HasPrefix(p.body, "record_id,at,kind") ||
			!strings.Contains(p.header.Get("Content-Disposition"), "attachment") {
			t.Errorf("CSV: %d %v %.200s", p.status, p.header, p.body)
		}
	}
	// A token of every merchant chooses one: m2's day is not m1's.
	a := newAgent(t, e.srv.URL, e.srv.Client())
	a.signIn(e.all)
	if p := a.get("/console/?merchant=m2"); !strings.Contains(p.body, "· m2</small>") || strings.Contains(p.body, "shop-3") {
		t.Errorf("m2's overview: %s", p.body)
	}
}

// TestScope: a merchant's token sees its merchant only, as in the API: a
// page about another merchant is 403, a ticket of another merchant is "no
// such ticket", another merchant's app's requests are none.
func TestScope(t *testing.T) {
	e := newEnv(t, console.Config{})
	o, err := e.w.Ledger.Issue(e.w.Ctx, daodian.IssueRequest{MerchantID: storetest.M2, Quantity: 1})
	if err != nil {
		t.Fatal(err)
	}
	theirs := o.Tickets[0]
	e.call(e.w.B, "taobao.time.get")
	a := newAgent(t, e.srv.URL, e.srv.Client())
	a.signIn(e.m1)
	for _, c := range []struct {
		path   string
		status int
		not    string
	}{
		{"/console/?merchant=m2", 403, ""},
		{"/console/records?merchant=m2", 403, ""},
		{"/console/faults?merchant=m2", 403, ""},
		{"/console/webhooks?merchant=m2", 403, ""},
		{"/console/ticket?q=" + theirs.Code, 404, theirs.ID},
		{"/console/ticket?q=" + theirs.ID, 404, theirs.Code},
		{"/console/requests?app=" + e.w.B.Key, 200, "taobao.time.get"},
		{"/console/apps", 200, e.w.B.Key},
	} {
		p := a.get(c.path)
		if p.status != c.status || (c.not != "" && strings.Contains(p.body, c.not)) {
			t.Errorf("GET %s: %d (want %d) %s", c.path, p.status, c.status, p.body)
		}
	}
	if p := a.get("/console/ticket?q=" + theirs.Code); !strings.Contains(p.body, "No such ticket") {
		t.Errorf("another merchant's ticket: %s", p.body)
	}
}

// TestSessionCookie: the cookie holds an opaque id, never the token; it is
// HttpOnly, SameSite=Strict, on /console/; Secure over TLS, and behind a
// proxy saying https only with TrustProxy.
func TestSessionCookie(t *testing.T) {
	for _, c := range []struct {
		name       string
		tls, trust bool
		proto      string
		secure     bool
	}{
		{"plain HTTP", false, false, "", false},
		{"X-Forwarded-Proto without TrustProxy", false, false, "https", false},
		{"X-Forwarded-Proto with TrustProxy", false, true, "https", true},
		{"http behind a trusted proxy", false, true, "http", false},
		{"TLS", true, false, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, console.Config{TrustProxy: c.trust})
			base, client := e.srv.URL, e.srv.Client()
			if c.tls {
				ts := httptest.NewTLSServer(e.srv.Config.Handler)
				t.Cleanup(ts.Close)
				base, client = ts.URL, ts.Client()
				client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
			}
			a := newAgent(t, base, client)
			if c.proto != "" {
				a.header.Set("X-Forwarded-Proto", c.proto)
			}
			p := a.post("/console/login", url.Values{"csrf": {csrf(t, a.get("/console/login"))}, "token": {e.m1}})
			var session *http.Cookie
			for _, ck := range (&http.Response{Header: p.header}).Cookies() {
				if ck.Name == "daodian_session" {
					session = ck
				}
			}
			if session == nil {
				t.Fatalf("no session cookie: %v", p.header)
			}
			if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/console/" || session.Secure != c.secure {
				t.Errorf("cookie %+v, want HttpOnly, SameSite=Strict, Path=/console/, Secure %v", session, c.secure)
			}
			if strings.Contains(session.Value, e.m1[3:]) || len(session.Value) < 40 {
				t.Errorf("the cookie %q is not an opaque id", session.Value)
			}
		})
	}
}

// TestCSRF: a POST without the session's CSRF token, with another one, or
// from another site is refused (403) and changes nothing; so is a sign-in
// without the sign-in form's token.
func TestCSRF(t *testing.T) {
	e := newEnv(t, console.Config{})
	a := newAgent(t, e.srv.URL, e.srv.Client())
	token := a.signIn(e.m1)
	arm := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "app_key": {e.w.A.Key}, "kind": {"error"}}
	}
	for _, c := range []struct {
		name string
		form url.Values
		site string
	}{
		{"no token", url.Values{"app_key": {e.w.A.Key}, "kind": {"error"}}, "same-origin"},
		{"another token", arm(strings.Repeat("A", len(token))), "same-origin"},
		{"a token cut short", arm(token[:len(token)-1]), "same-origin"},
		{"from another site", arm(token), "cross-site"},
		{"from a sibling site", arm(token), "same-site"},
	} {
		a.site = c.site
		if p := a.post("/console/faults", c.form); p.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", c.name, p.status, p.body)
		}
	}
	if rules, err := e.w.Ledger.FaultRules(e.w.Ctx); err != nil || len(rules) != 0 {
		t.Fatalf("a refused form armed %v (%v)", rules, err)
	}
	a.site = "same-origin"
	if p := a.post("/console/faults", arm(token)); p.status != http.StatusSeeOther {
		t.Errorf("with the token: %d %s", p.status, p.body)
	}
	if rules, _ := e.w.Ledger.FaultRules(e.w.Ctx); len(rules) != 1 {
		t.Errorf("rules after the accepted form: %v", rules)
	}

	// Sign-in: the form's token must match the sign-in cookie's.
	b := newAgent(t, e.srv.URL, e.srv.Client())
	b.get("/console/login")
	for _, form := range []url.Values{{"token": {e.m1}}, {"token": {e.m1}, "csrf": {"forged"}}} {
		if p := b.post("/console/login", form); p.status != http.StatusForbidden || strings.Contains(p.header.Get("Set-Cookie"), "daodian_session=") {
			t.Errorf("sign-in with %v: %d %v", form, p.status, p.header)
		}
	}
	c := newAgent(t, e.srv.URL, e.srv.Client()) // never fetched the form: no cookie
	if p := c.post("/console/login", url.Values{"token": {e.m1}, "csrf": {"x"}}); p.status != http.StatusForbidden {
		t.Errorf("sign-in without the form's cookie: %d", p.status)
	}
}

// TestSessionEnds: a session ends when idle too long, at its maximum age,
// at sign-out, and when its token is revoked (within the token cache's 2
// s); a signed-out cookie no longer works.
func TestSessionEnds(t *testing.T) {
	clock := storetest.NewClock(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	e := newEnv(t, console.Config{Clock: clock.Now, IdleTimeout: 30 * time.Minute, MaxAge: 2 * time.Hour})
	a := newAgent(t, e.srv.URL, e.srv.Client())

	a.signIn(e.m1)
	clock.Advance(29 * time.Minute)
	if !signedIn(a.get("/console/")) {
		t.Fatal("a session used within its idle time ended")
	}
	clock.Advance(30 * time.Minute)
	if p := a.get("/console/"); !toLogin(p) {
		t.Errorf("after 30 idle minutes: %d %v", p.status, p.header)
	}

	a.signIn(e.m1)
	for range 7 { // 7 × 20 min: never idle 30 min, but past the 2 h
		clock.Advance(20 * time.Minute)
		a.get("/console/")
	}
	if p := a.get("/console/"); !toLogin(p) {
		t.Errorf("past its maximum age: %d", p.status)
	}

	csrfToken := a.signIn(e.m1)
	old := a.c.Jar.Cookies(mustURL(t, e.srv.URL+"/console/"))
	if p := a.post("/console/logout", url.Values{"csrf": {csrfToken}}); !toLogin(p) {
		t.Errorf("sign-out: %d", p.status)
	}
	b := newAgent(t, e.srv.URL, e.srv.Client())
	b.c.Jar.SetCookies(mustURL(t, e.srv.URL+"/console/"), old)
	if p := b.get("/console/"); !toLogin(p) {
		t.Errorf("the cookie of a signed-out session still works: %d", p.status)
	}

	a.signIn(e.m1)
	if _, err := e.w.Ledger.RevokeAdminToken(e.w.Ctx, e.m1Tok.ID); err != nil {
		t.Fatal(err)
	}
	e.w.Clock.Advance(3 * time.Second) // past the admin API's token cache
	p := a.get("/console/records")
	if !toLogin(p) || p.header.Get("Location") != "/console/login?why=revoked" {
		t.Errorf("after revocation: %d %v", p.status, p.header)
	}
	if p := a.get("/console/"); !toLogin(p) {
		t.Errorf("the revoked token's session lives on: %d", p.status)
	}
	if p := a.get("/console/login?why=revoked"); !strings.Contains(p.body, "no longer valid") {
		t.Errorf("the sign-in page after revocation: %s", p.body)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSessionBound: beyond MaxSessions the session seen least recently ends.
func TestSessionBound(t *testing.T) {
	clock := storetest.NewClock(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	e := newEnv(t, console.Config{Clock: clock.Now, MaxSessions: 2})
	var agents []*agent
	for range 3 {
		a := newAgent(t, e.srv.URL, e.srv.Client())
		a.signIn(e.m1)
		agents = append(agents, a)
		clock.Advance(time.Second)
	}
	if toLogin(agents[0].get("/console/")) == false || !signedIn(agents[1].get("/console/")) || !signedIn(agents[2].get("/console/")) {
		t.Error("the third session did not end the first (the least recently seen) alone")
	}
}

// TestLoginThrottle: failed sign-ins are bounded per client address; beyond
// the bound even a valid token waits; X-Forwarded-For counts only with
// TrustProxy, and then its last address.
func TestLoginThrottle(t *testing.T) {
	for _, trust := range []bool{false, true} {
		clock := storetest.NewClock(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
		e := newEnv(t, console.Config{Clock: clock.Now, TrustProxy: trust, LoginBurst: 3, LoginEvery: time.Minute})
		try := func(a *agent, token string) page {
			return a.post("/console/login", url.Values{"csrf": {csrf(t, a.get("/console/login"))}, "token": {token}})
		}
		a := newAgent(t, e.srv.URL, e.srv.Client())
		a.header.Set("X-Forwarded-For", "203.0.113.9, 198.51.100.1")
		for i := range 3 {
			if p := try(a, "dd_wrong"); p.status != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i+1, p.status)
			}
		}
		p := try(a, e.m1)
		if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
			t.Errorf("trust %v: a 4th try: %d %v", trust, p.status, p.header)
		}
		// Another address the proxy saw: its own budget, with TrustProxy only.
		b := newAgent(t, e.srv.URL, e.srv.Client())
		b.header.Set("X-Forwarded-For", "203.0.113.9, 198.51.100.2")
		if p := try(b, e.m1); (p.status == http.StatusSeeOther) != trust {
			t.Errorf("trust %v: another forwarded address: %d", trust, p.status)
		}
		clock.Advance(time.Minute)
		if p := try(a, e.m1); p.status != http.StatusSeeOther {
			t.Errorf("trust %v: a minute later: %d", trust, p.status)
		}
	}
}

// TestSecretOnce: an app's secret, created or rotated, is in the answer to
// that POST alone: not in a redirect, not on the apps page, not in the log.
func TestSecretOnce(t *testing.T) {
	e := newEnv(t, console.Config{})
	a := newAgent(t, e.srv.URL, e.srv.Client())
	token := a.signIn(e.m1)
	p := a.post("/console/apps", url.Values{"csrf": {token}, "name": {"pos-3"}, "methods": {"alibaba.alsc.merchant.ext.ticketcode.use"}})
	m := regexp.MustCompile(`id="app-key">([0-9a-f]+)<.*\n.*id="app-secret">([0-9a-f]+)<`).FindStringSubmatch(p.body)
	if p.status != 200 || m == nil || p.header.Get("Location") != "" {
		t.Fatalf("create: %d %v %s", p.status, p.header, p.body)
	}
	app, err := e.w.Ledger.App(e.w.Ctx, m[1])
	if err != nil || app.Secret != m[2] || len(app.Methods) != 1 {
		t.Fatalf("stored %+v (%v), shown %s", app, err, m[2])
	}
	r := a.post("/console/apps/rotate", url.Values{"csrf": {token}, "app_key": {m[1]}, "grace_h": {"1"}})
	rotated := regexp.MustCompile(`id="app-secret">([0-9a-f]+)<`).FindStringSubmatch(r.body)
	if app, _ = e.w.Ledger.App(e.w.Ctx, m[1]); rotated == nil || app.Secret != rotated[1] || app.PreviousSecret != m[2] {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	for _, s := range []string{m[2], rotated[1]} {
		if strings.Contains(a.get("/console/apps").body, s) || strings.Contains(e.logs.String(), s) {
			t.Errorf("secret %s shown again or logged", s)
		}
	}
	// Another merchant's app cannot be rotated: as missing.
	if r := a.post("/console/apps/rotate", url.Values{"csrf": {token}, "app_key": {e.w.B.Key}, "grace_h": {"1"}}); r.status != http.StatusSeeOther {
		t.Errorf("rotating another merchant's app: %d", r.status)
	} else if p := a.get("/console/apps"); !strings.Contains(p.body, "no such app") {
		t.Errorf("after rotating another merchant's app: %s", p.body)
	}
}

// TestEscaping: what the ledger holds is shown as text, never as markup.
func TestEscaping(t *testing.T) {
	e := newEnv(t, console.Config{})
	a := newAgent(t, e.srv.URL, e.srv.Client())
	token := a.signIn(e.m1)
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	if p := a.post("/console/shops", url.Values{"csrf": {token}, "shop_id": {"s-evil"}, "name": {evil}}); p.status != http.StatusSeeOther {
		t.Fatalf("add shop: %d %s", p.status, p.body)
	}
	p := a.get("/console/apps")
	if strings.Contains(p.body, "<script>") || strings.Contains(p.body, "<img") || !strings.Contains(p.body, "&lt;script&gt;") {
		t.Errorf("a shop's name is not escaped: %s", p.body)
	}
}

// TestLogHoldsNoQuery: a ticket lookup's code (in the query) is not logged;
// the line has the path and the token's id.
func TestLogHoldsNoQuery(t *testing.T) {
	e := newEnv(t, console.Config{})
	a := newAgent(t, e.srv.URL, e.srv.Client())
	a.signIn(e.m1)
	before := len(e.logs.String())
	a.get("/console/ticket?q=" + e.used.Code)
	logs := e.logs.String()[before:]
	if strings.Contains(logs, e.used.Code) || !strings.Contains(logs, `"path":"/console/ticket"`) || !strings.Contains(logs, e.m1Tok.ID) {
		t.Errorf("log: %s", logs)
	}
	if strings.Contains(logs, e.m1) {
		t.Error("the token is in the log")
	}
}

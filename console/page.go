package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
)

type ctxKey struct{}

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

func requestIDOf(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// asset is an embedded file served with a long cache lifetime: its URL
// carries its content's hash (?v=), so a new binary's file is a new URL.
type asset struct {
	body    []byte
	ctype   string
	version string
}

func newAsset(b []byte, ctype string) asset {
	sum := sha256.Sum256(b)
	return asset{body: b, ctype: ctype, version: hex.EncodeToString(sum[:6])}
}

func (a asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	_, _ = w.Write(a.body)
}

// page is one request of a signed-in browser.
type page struct {
	c   *Console
	w   http.ResponseWriter
	r   *http.Request
	s   *session
	who admin.Caller
	// merchant is the merchant the page is about: the token's, or for a
	// token of every merchant the one chosen (?merchant=), else the first.
	merchant  string
	merchants admin.MerchantList
}

// authed wraps the handler of a page of a signed-in browser: the session must
// be live and its token still valid (revoked: the session ends), and a POST
// must carry the session's CSRF token.
func (c *Console) authed(fn func(p *page)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var ss *session
		if ck, err := r.Cookie(sessionCookie); err == nil {
			ss = c.sessions.get(ck.Value)
		}
		if ss == nil {
			c.toLogin(w, r, "")
			return
		}
		rid := requestIDOf(r.Context())
		tok, aerr := c.api.TokenByHash(r.Context(), ss.tokenHash, rid)
		if aerr != nil {
			if aerr.Status() == http.StatusUnauthorized {
				c.sessions.drop(ss)
				c.clearSession(w, r)
				c.toLogin(w, r, "revoked")
				return
			}
			c.errorPage(w, r, aerr)
			return
		}
		if rec, ok := w.(*recorder); ok {
			rec.tokenID = tok.ID
		}
		p := &page{c: c, w: w, r: r, s: ss, who: admin.Caller{Token: tok, RequestID: rid}}
		if r.Method == http.MethodPost {
			if err := c.parseForm(w, r); err != nil {
				c.errorPage(w, r, badRequest(err.Error()))
				return
			}
			if !fromHere(r) || !sameToken(r.PostForm.Get("csrf"), ss.csrf) {
				c.errorPage(w, r, forbidden("this form has expired or did not come from this console: reload the page and try again"))
				return
			}
		}
		if aerr := p.chooseMerchant(); aerr != nil {
			c.errorPage(w, r, aerr)
			return
		}
		fn(p)
	}
}

// chooseMerchant sets the page's merchant and the list the header offers.
func (p *page) chooseMerchant() *admin.Error {
	var aerr *admin.Error
	p.merchants, aerr = p.c.api.Merchants(p.r.Context(), p.who)
	if aerr != nil {
		return aerr
	}
	named := p.r.URL.Query().Get("merchant")
	switch scope := p.who.Token.MerchantID; {
	case scope != "" && named != "" && named != scope:
		return forbidden("this admin token sees merchant " + strconv.Quote(scope) + " only")
	case scope != "":
		p.merchant = scope
	case named != "":
		p.merchant = named
	case p.r.Method == http.MethodPost && p.r.PostForm.Get("merchant") != "":
		p.merchant = p.r.PostForm.Get("merchant")
	case len(p.merchants.Merchants) > 0:
		p.merchant = p.merchants.Merchants[0].MerchantID
	}
	return nil
}

// fromHere reports whether a POST may have come from this console's own
// page: a browser that says the request came from another site (or from the
// same site but another origin) is refused, whatever it carries.
func fromHere(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
		return true
	}
	return false
}

// parseForm reads a POST's urlencoded form, bounded.
func (c *Console) parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return errForm
	}
	return nil
}

// toLogin sends the browser to the sign-in page; why (a fixed word, never
// the caller's text) chooses the message there.
func (c *Console) toLogin(w http.ResponseWriter, r *http.Request, why string) {
	u := Prefix + "login"
	if why != "" {
		u += "?why=" + why
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// setCookie sets a cookie of the console: HttpOnly, SameSite=Strict, on the
// console's path, Secure over TLS; maxAge < 0 deletes it.
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure(r, c.cfg.TrustProxy)})
}

func (c *Console) clearSession(w http.ResponseWriter, r *http.Request) {
	c.setCookie(w, r, sessionCookie, "", -1)
}

// view is what the layout shows around a page's content.
type view struct {
	Title     string
	Active    string
	TokenName string
	Scoped    bool
	Merchant  string
	Merchants []admin.Merchant
	CSRF      string
	Flash     *flash
	CSS       string
	// Data is the page's own.
	Data any
}

// Link is the URL of a console page with the query's name/value pairs and,
// for a token of every merchant, the page's merchant. Empty values are left
// out.
func (v *view) Link(name string, kv ...string) string {
	q := url.Values{}
	if !v.Scoped && v.Merchant != "" {
		q.Set("merchant", v.Merchant)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	u := Prefix + name
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// render answers a page.
func (p *page) render(name, title string, status int, data any) {
	v := &view{Title: title, Active: name, TokenName: p.who.Token.Name, Scoped: p.who.Token.MerchantID != "",
		Merchant: p.merchant, Merchants: p.merchants.Merchants, CSRF: p.s.csrf, Flash: p.c.sessions.takeFlash(p.s),
		CSS: p.c.cssURL(), Data: data}
	p.c.write(p.w, name, status, v)
}

func (c *Console) cssURL() string { return Prefix + "static/console.css?v=" + c.css.version }

// write executes a page's template into a buffer first, so that a failing
// template answers 500 rather than half a page.
func (c *Console) write(w http.ResponseWriter, name string, status int, v *view) {
	var b bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&b, "layout", v); err != nil {
		panic("console: template " + name + ": " + err.Error())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// redirect sends the browser (303) to a page after a POST, with a message for
// it.
func (p *page) redirect(to string, f *flash) {
	if f != nil {
		p.c.sessions.setFlash(p.s, f)
	}
	http.Redirect(p.w, p.r, to, http.StatusSeeOther)
}

// errorPage answers an error as a page of its own, with the error's status.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, e *admin.Error) {
	c.write(w, "error", e.Status(), &view{Title: http.StatusText(e.Status()), CSS: c.cssURL(), Data: e})
}

// fail answers an error of a page: the session's token revoked meanwhile
// sends to the sign-in page, anything else is an error page.
func (p *page) fail(e *admin.Error) {
	if e.Status() == http.StatusUnauthorized {
		p.c.sessions.drop(p.s)
		p.c.clearSession(p.w, p.r)
		p.c.toLogin(p.w, p.r, "revoked")
		return
	}
	p.c.errorPage(p.w, p.r, e)
}

func badRequest(msg string) *admin.Error {
	return admin.NewError(http.StatusBadRequest, "invalid_parameter", msg)
}

func forbidden(msg string) *admin.Error {
	return admin.NewError(http.StatusForbidden, "forbidden", msg)
}

// formInt reads a whole number of a form (empty: 0).
func formInt(r *http.Request, name string) (int, *admin.Error) {
	v := strings.TrimSpace(r.PostForm.Get(name))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badRequest(name + " must be a whole number")
	}
	return n, nil
}

// parsePages parses each page's template with the layout.
func parsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "error", "overview", "ticket", "records", "requests", "faults", "apps", "secret", "webhooks", "webhooksecret"} {
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
	}
	return pages
}

// seesAll reports whether the token sees every merchant.
func seesAll(t *daodian.AdminToken) bool { return t.MerchantID == "" }

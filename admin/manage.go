package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/top"
)

// What the admin API changes (SPEC §10): apps, shops and fault rules, under
// the same scope rules as what it reads. A merchant-scoped token sees and
// changes its merchant's apps (those bound to it), shops and rules (those of
// its apps); an app, a ticket or a rule of another merchant named by id is
// answered exactly like one that does not exist.
//
// Each endpoint is a Go method taking the Caller, which the console calls
// too, and an HTTP handler that parses the request and answers the result.

// Caller is who makes a request: the admin token that authenticated it, and
// the request's trace id, under which an internal error is logged.
type Caller struct {
	Token     *daodian.AdminToken
	RequestID string
}

func (c *call) caller() Caller { return Caller{Token: c.token, RequestID: c.requestID} }

// answer answers the result of a Go method: v with status, or the error.
func answer[T any](c *call, status int, v T, err *Error) {
	if err != nil {
		c.fail(err)
		return
	}
	c.jsonStatus(status, v)
}

// posted answers a POST whose input is its JSON body: no query parameter,
// the body decoded strictly into an In, then fn's result with status.
func posted[In, Out any](c *call, status int, fn func(context.Context, Caller, In) (Out, *Error)) {
	var in In
	if _, err := params(c); err != nil {
		c.fail(err)
		return
	}
	if !readJSON(c, &in) {
		return
	}
	out, err := fn(c.r.Context(), c.caller(), in)
	answer(c, status, out, err)
}

// Merchant is a merchant as listed.
type Merchant struct {
	MerchantID string `json:"merchant_id"`
	Name       string `json:"name"`
}

// MerchantList is `{"merchants": […], "more": true}` (more when the list
// stops at daodian.MaxListed).
type MerchantList struct {
	Merchants []Merchant `json:"merchants"`
	More      bool       `json:"more,omitempty"`
}

// Merchants lists the merchants the caller sees: its one merchant, or every
// merchant.
func (a *API) Merchants(ctx context.Context, who Caller) (MerchantList, *Error) {
	var ms []daodian.Merchant
	var more bool
	var err error
	if scope := who.Token.MerchantID; scope != "" {
		var m *daodian.Merchant
		if m, err = a.ledger.Merchant(ctx, scope); err == nil {
			ms = []daodian.Merchant{*m}
		}
	} else {
		ms, more, err = a.ledger.Merchants(ctx)
	}
	if err != nil {
		return MerchantList{}, a.errorOf(err, who.RequestID, msgMerchantNotFound)
	}
	out := MerchantList{Merchants: make([]Merchant, len(ms)), More: more}
	for i, m := range ms {
		out.Merchants[i] = Merchant{MerchantID: m.ID, Name: m.Name}
	}
	return out, nil
}

func (a *API) listMerchants(c *call, _ string) {
	if _, err := params(c); err != nil {
		c.fail(err)
		return
	}
	out, err := a.Merchants(c.r.Context(), c.caller())
	answer(c, http.StatusOK, out, err)
}

// App is an app as listed: never its secrets.
type App struct {
	AppKey    string   `json:"app_key"`
	Name      string   `json:"name"`
	Merchants []string `json:"merchants"`
	Enabled   bool     `json:"enabled"`
	// Methods granted; empty: every method.
	Methods       []string `json:"methods"`
	RateLimitPerS int      `json:"rate_limit_per_s"`
	CreatedAt     string   `json:"created_at"`
	// PreviousSecretValidUntil is set while a rotated-out secret still signs.
	PreviousSecretValidUntil string `json:"previous_secret_valid_until,omitempty"`
}

func (a *API) appOf(app *daodian.App) App {
	out := App{AppKey: app.Key, Name: app.Name, Merchants: app.Merchants, Enabled: app.Enabled, Methods: app.Methods,
		RateLimitPerS: app.RateLimitPerS, CreatedAt: top.FormatTime(app.CreatedAt)}
	if out.Merchants == nil {
		out.Merchants = []string{}
	}
	if out.Methods == nil {
		out.Methods = []string{}
	}
	if app.PreviousSecretValid(a.ledger.Now()) {
		out.PreviousSecretValidUntil = top.FormatTime(app.PreviousSecretUntil)
	}
	return out
}

// AppList is `{"apps": […], "more": true}`.
type AppList struct {
	Apps []App `json:"apps"`
	More bool  `json:"more,omitempty"`
}

// Apps lists the apps of a merchant (under the caller's scope; "" for a
// token of every merchant: every app).
func (a *API) Apps(ctx context.Context, who Caller, merchant string) (AppList, *Error) {
	m, aerr := scopeMerchant(who.Token, merchant, false)
	if aerr != nil {
		return AppList{}, aerr
	}
	apps, more, err := a.ledger.Apps(ctx, m)
	if err != nil {
		return AppList{}, a.errorOf(err, who.RequestID, msgMerchantNotFound)
	}
	out := AppList{Apps: make([]App, len(apps)), More: more}
	for i := range apps {
		out.Apps[i] = a.appOf(&apps[i])
	}
	return out, nil
}

func (a *API) listApps(c *call, _ string) {
	q, ok := parse(c, false)
	if !ok {
		return
	}
	out, err := a.Apps(c.r.Context(), c.caller(), q.merchant)
	answer(c, http.StatusOK, out, err)
}

// NewApp is the body of POST /admin/v1/apps.
type NewApp struct {
	Name     string `json:"name"`
	Merchant string `json:"merchant"`
	// Methods to grant, by full name; none: every method.
	Methods       []string `json:"methods"`
	RateLimitPerS int      `json:"rate_limit_per_s"`
}

// AppWithSecret is an app and its secret: the answer of the creation of an
// app (the only time its secret is shown) or of a rotation of its secret.
type AppWithSecret struct {
	App
	AppSecret string `json:"app_secret"`
}

// CreateApp creates an app bound to one merchant (created if new, as `daodian
// app create` does) and returns it with its secret, which is shown nowhere
// else.
func (a *API) CreateApp(ctx context.Context, who Caller, n NewApp) (AppWithSecret, *Error) {
	m, aerr := scopeMerchant(who.Token, n.Merchant, true)
	if aerr != nil {
		return AppWithSecret{}, aerr
	}
	for _, name := range n.Methods {
		if !slices.ContainsFunc(alsc.Specs, func(s alsc.Spec) bool { return s.Name == name }) {
			return AppWithSecret{}, errInvalid("methods: " + strconv.Quote(clip(name)) + " is not a method of this gateway")
		}
	}
	app, err := a.ledger.CreateApp(ctx, daodian.AppSpec{Name: n.Name, MerchantID: m, Methods: n.Methods, RateLimitPerS: n.RateLimitPerS})
	if err != nil {
		return AppWithSecret{}, a.errorOf(err, who.RequestID, msgMerchantNotFound)
	}
	return AppWithSecret{App: a.appOf(app), AppSecret: app.Secret}, nil
}

func (a *API) createApp(c *call, _ string) { posted(c, http.StatusCreated, a.CreateApp) }

const msgAppNotFound = "no such app"

// visibleApp returns the app with the key if the caller sees it (it is bound
// to the caller's merchant), else a 404 exactly like a missing app's.
func (a *API) visibleApp(ctx context.Context, who Caller, key string) (*daodian.App, *Error) {
	app, err := a.ledger.App(ctx, key)
	if err == nil && !seesApp(who.Token, app.Merchants) {
		err = daodian.ErrNotFound
	}
	if err != nil {
		return nil, a.errorOf(err, who.RequestID, msgAppNotFound)
	}
	return app, nil
}

// seesApp reports whether the token sees an app bound to the merchants.
func seesApp(tok *daodian.AdminToken, merchants []string) bool {
	return tok.MerchantID == "" || slices.Contains(merchants, tok.MerchantID)
}

// seesAll reports whether the token sees every merchant of an app.
func seesAll(tok *daodian.AdminToken, merchants []string) bool {
	for _, m := range merchants {
		if !tok.Sees(m) {
			return false
		}
	}
	return true
}

// RotateSecret gives an app a new secret, the old one signing for grace
// more (SPEC §5.4, `daodian app rotate-secret`), and returns the app with
// its new secret. A merchant-scoped token rotates only apps bound to its
// merchant alone: the secret of an app shared with another merchant is
// that merchant's integration too.
func (a *API) RotateSecret(ctx context.Context, who Caller, key string, grace time.Duration) (AppWithSecret, *Error) {
	app, aerr := a.visibleApp(ctx, who, key)
	if aerr != nil {
		return AppWithSecret{}, aerr
	}
	if !seesAll(who.Token, app.Merchants) {
		return AppWithSecret{}, &apiError{http.StatusForbidden, codeForbidden,
			"the app is bound to other merchants as well: a token for every merchant rotates its secret"}
	}
	app, err := a.ledger.RotateAppSecret(ctx, key, grace)
	if err != nil {
		return AppWithSecret{}, a.errorOf(err, who.RequestID, msgAppNotFound)
	}
	return AppWithSecret{App: a.appOf(app), AppSecret: app.Secret}, nil
}

// DefaultGrace is the grace of a rotation that names none, as `daodian app
// rotate-secret`'s.
const DefaultGrace = 24 * time.Hour

// Rotation is the body of POST /admin/v1/apps/{app_key}/rotate-secret.
type Rotation struct {
	// GraceS is how long the replaced secret keeps signing, in seconds
	// (default DefaultGrace; 0 stops it at once).
	GraceS *int64 `json:"grace_s"`
}

func (a *API) rotateSecret(c *call, key string) {
	if _, err := params(c); err != nil {
		c.fail(err)
		return
	}
	var rot Rotation
	if !readJSON(c, &rot) {
		return
	}
	grace := DefaultGrace
	if rot.GraceS != nil {
		if *rot.GraceS < 0 || *rot.GraceS > int64(daodian.MaxSecretGrace/time.Second) {
			c.fail(errInvalid(fmt.Sprintf("grace_s must be from 0 to %d", int64(daodian.MaxSecretGrace/time.Second))))
			return
		}
		grace = time.Duration(*rot.GraceS) * time.Second
	}
	out, err := a.RotateSecret(c.r.Context(), c.caller(), key, grace)
	answer(c, http.StatusOK, out, err)
}

// Shop is a shop as listed.
type Shop struct {
	MerchantID string `json:"merchant_id"`
	ShopID     string `json:"shop_id"`
	Name       string `json:"name"`
}

// ShopList is `{"merchant_id", "shops": […], "more": true}`.
type ShopList struct {
	MerchantID string `json:"merchant_id"`
	Shops      []Shop `json:"shops"`
	More       bool   `json:"more,omitempty"`
}

// Shops lists the shops of a merchant, which must exist.
func (a *API) Shops(ctx context.Context, who Caller, merchant string) (ShopList, *Error) {
	m, aerr := scopeMerchant(who.Token, merchant, true)
	if aerr != nil {
		return ShopList{}, aerr
	}
	_, err := a.ledger.Merchant(ctx, m)
	var shops []daodian.Shop
	var more bool
	if err == nil {
		shops, more, err = a.ledger.Shops(ctx, m)
	}
	if err != nil {
		return ShopList{}, a.errorOf(err, who.RequestID, msgMerchantNotFound)
	}
	out := ShopList{MerchantID: m, Shops: make([]Shop, len(shops)), More: more}
	for i, s := range shops {
		out.Shops[i] = Shop{MerchantID: s.MerchantID, ShopID: s.ID, Name: s.Name}
	}
	return out, nil
}

func (a *API) listShops(c *call, _ string) {
	q, ok := parse(c, true)
	if !ok {
		return
	}
	out, err := a.Shops(c.r.Context(), c.caller(), q.merchant)
	answer(c, http.StatusOK, out, err)
}

// NewShop is the body of POST /admin/v1/shops.
type NewShop struct {
	Merchant string `json:"merchant"`
	ShopID   string `json:"shop_id"`
	Name     string `json:"name"`
}

// AddShop registers a shop of a merchant (created if new, as `daodian shop
// add` does); a shop id the merchant has already is 409.
func (a *API) AddShop(ctx context.Context, who Caller, n NewShop) (Shop, *Error) {
	m, aerr := scopeMerchant(who.Token, n.Merchant, true)
	if aerr != nil {
		return Shop{}, aerr
	}
	s := daodian.Shop{MerchantID: m, ID: n.ShopID, Name: n.Name}
	if err := a.ledger.AddShop(ctx, s); err != nil {
		if errors.Is(err, daodian.ErrDuplicate) {
			return Shop{}, &apiError{http.StatusConflict, codeConflict, "merchant " + strconv.Quote(m) + " has a shop " + strconv.Quote(n.ShopID) + " already"}
		}
		return Shop{}, a.errorOf(err, who.RequestID, msgMerchantNotFound)
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	return Shop{MerchantID: s.MerchantID, ShopID: s.ID, Name: s.Name}, nil
}

func (a *API) addShop(c *call, _ string) { posted(c, http.StatusCreated, a.AddShop) }

// FaultRule is a fault rule (daodian/faults.go) as listed. A rule given by
// ticket code shows the ticket's id only: codes are bearer secrets.
type FaultRule struct {
	RuleID   string `json:"rule_id"`
	AppKey   string `json:"app_key"`
	Kind     string `json:"kind"`
	Method   string `json:"method,omitempty"`
	TicketID string `json:"ticket_id,omitempty"`
	// Count is the injections left; 0: no limit.
	Count       int     `json:"count"`
	Probability float64 `json:"probability"`
	Code        int     `json:"code,omitempty"`
	// WaitMS is a delay rule's delay, a hold rule's longest hold.
	WaitMS    int64  `json:"wait_ms,omitempty"`
	CreatedAt string `json:"created_at"`
}

// FaultRuleOf renders a rule.
func FaultRuleOf(r *daodian.FaultRule) FaultRule {
	return FaultRule{RuleID: r.ID, AppKey: r.AppKey, Kind: string(r.Kind), Method: r.Method, TicketID: r.TicketID,
		Count: r.Count, Probability: r.Probability, Code: r.Code, WaitMS: r.Wait.Milliseconds(), CreatedAt: top.FormatTime(r.CreatedAt)}
}

// FaultList is `{"rules": […], "injection": true}`: injection is false when
// this server ignores the rules (serve --no-faults).
type FaultList struct {
	Rules     []FaultRule `json:"rules"`
	Injection bool        `json:"injection"`
}

// visibleRules returns the rules the caller sees (those of apps bound to its
// merchant, or to merchant when it names one), of appKey when set.
func (a *API) visibleRules(ctx context.Context, who Caller, merchant, appKey string) ([]daodian.FaultRule, *Error) {
	m, aerr := scopeMerchant(who.Token, merchant, false)
	if aerr != nil {
		return nil, aerr
	}
	rules, err := a.ledger.FaultRules(ctx)
	if err != nil {
		return nil, a.errorOf(err, who.RequestID, "")
	}
	// Each rule's app is read once: at most daodian.MaxFaultRules reads.
	sees := map[string]bool{}
	out := rules[:0]
	for _, r := range rules {
		if appKey != "" && r.AppKey != appKey {
			continue
		}
		seen, ok := sees[r.AppKey]
		if !ok {
			seen = m == ""
			if !seen {
				app, err := a.ledger.App(ctx, r.AppKey)
				switch {
				case err == nil:
					seen = app.CanSee(m)
				case !errors.Is(err, daodian.ErrNotFound):
					return nil, a.errorOf(err, who.RequestID, "")
				}
			}
			sees[r.AppKey] = seen
		}
		if seen {
			out = append(out, r)
		}
	}
	return out, nil
}

// Faults lists the fault rules the caller sees, of one app when appKey is set.
func (a *API) Faults(ctx context.Context, who Caller, merchant, appKey string) (FaultList, *Error) {
	rules, err := a.visibleRules(ctx, who, merchant, appKey)
	if err != nil {
		return FaultList{}, err
	}
	out := FaultList{Rules: make([]FaultRule, len(rules)), Injection: !a.cfg.FaultsDisabled}
	for i := range rules {
		out.Rules[i] = FaultRuleOf(&rules[i])
	}
	return out, nil
}

func (a *API) listFaults(c *call, _ string) {
	q, ok := parse(c, false, "app_key")
	if !ok {
		return
	}
	out, err := a.Faults(c.r.Context(), c.caller(), q.merchant, q.Get("app_key"))
	answer(c, http.StatusOK, out, err)
}

// NewFault is the body of POST /admin/v1/faults: the flags of `daodian fault
// add`, with the method by its full name and the wait in milliseconds.
type NewFault struct {
	AppKey     string `json:"app_key"`
	Kind       string `json:"kind"`
	Method     string `json:"method"`
	TicketID   string `json:"ticket_id"`
	TicketCode string `json:"ticket_code"`
	// Count: default 1, or 0 (no limit) with a probability.
	Count       *int    `json:"count"`
	Probability float64 `json:"probability"`
	Code        int     `json:"code"`
	WaitMS      int64   `json:"wait_ms"`
}

// AddFault adds a fault rule for an app the caller sees, naming (if any) a
// ticket the caller sees.
func (a *API) AddFault(ctx context.Context, who Caller, n NewFault) (FaultRule, *Error) {
	if n.WaitMS < 0 || n.WaitMS > daodian.MaxFaultWait.Milliseconds() {
		return FaultRule{}, errInvalid(fmt.Sprintf("wait_ms must be from 0 to %d", daodian.MaxFaultWait.Milliseconds()))
	}
	r := daodian.FaultRule{AppKey: n.AppKey, Kind: daodian.FaultKind(n.Kind), Method: n.Method, TicketID: n.TicketID,
		TicketCode: n.TicketCode, Probability: n.Probability, Code: n.Code, Wait: time.Duration(n.WaitMS) * time.Millisecond}
	switch {
	case n.Count != nil:
		r.Count = *n.Count
	case n.Probability > 0:
		r.Count = 0
	default:
		r.Count = 1
	}
	if r.Kind == daodian.FaultHold && r.Method == "" {
		r.Method = alsc.MethodUse
	}
	if err := r.Validate(); err != nil {
		return FaultRule{}, a.errorOf(err, who.RequestID, "")
	}
	if err := gateway.CheckFaultRule(&r); err != nil {
		return FaultRule{}, a.errorOf(err, who.RequestID, "")
	}
	added, err := a.ledger.AddFaultRuleFor(ctx, who.Token.MerchantID, r)
	if err != nil {
		return FaultRule{}, a.errorOf(err, who.RequestID, "")
	}
	return FaultRuleOf(added), nil
}

func (a *API) addFault(c *call, _ string) { posted(c, http.StatusCreated, a.AddFault) }

// Cleared is `{"cleared": N}`.
type Cleared struct {
	Cleared int `json:"cleared"`
}

// ClearFaults deletes the rules the caller sees: of one app when appKey is
// set, the one rule id when id is set (404 when the caller sees no such
// rule).
func (a *API) ClearFaults(ctx context.Context, who Caller, merchant, appKey, id string) (Cleared, *Error) {
	rules, aerr := a.visibleRules(ctx, who, merchant, appKey)
	if aerr != nil {
		return Cleared{}, aerr
	}
	n := 0
	for _, r := range rules {
		if id != "" && r.ID != id {
			continue
		}
		k, err := a.ledger.ClearFaultRules(ctx, "", r.ID)
		if err != nil {
			return Cleared{}, a.errorOf(err, who.RequestID, "")
		}
		n += k
	}
	if id != "" && n == 0 {
		return Cleared{}, errNotFound("no such fault rule")
	}
	return Cleared{Cleared: n}, nil
}

func (a *API) clearFaults(c *call, _ string) {
	q, ok := parse(c, false, "app_key")
	if !ok {
		return
	}
	out, err := a.ClearFaults(c.r.Context(), c.caller(), q.merchant, q.Get("app_key"), "")
	answer(c, http.StatusOK, out, err)
}

func (a *API) clearFault(c *call, id string) {
	q, ok := parse(c, false)
	if !ok {
		return
	}
	out, err := a.ClearFaults(c.r.Context(), c.caller(), q.merchant, "", id)
	answer(c, http.StatusOK, out, err)
}

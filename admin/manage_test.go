package admin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/storetest"
)

// withGateway serves a gateway over the env's ledger, on its clock, and
// gives its request log to the admin API; it returns the gateway's URL.
func (e *env) withGateway(cfg admin.Config) string {
	e.t.Helper()
	gw := gateway.New(e.w.Ledger, gateway.Config{Clock: e.w.Clock.Now, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(gw.Handler())
	e.t.Cleanup(srv.Close)
	cfg.RequestLog = gw.RequestLog()
	cfg.Clock = e.w.Clock.Now
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	e.api = admin.New(e.w.Ledger, cfg)
	return srv.URL + "/router/rest"
}

// send sends a request with a JSON body (Content-Type: application/json).
func (e *env) send(method, path, token, body string) answer {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return e.req(method, path, token, r, "Content-Type", "application/json")
}

func decode(t *testing.T, a answer, status int, v any) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%d %s, want %d", a.status, a.body, status)
	}
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatalf("%v in %s", err, a.body)
	}
}

// refusal is a request the admin API must refuse, with the status and code
// of its answer. Its token ALL, M1, M2 or REVOKED stands for the env's token
// of that name; its body is JSON unless ctype says otherwise.
type refusal struct {
	name         string
	method, path string
	token, body  string
	ctype        string
	status       int
	code         string
}

// refuse sends each refusal and checks its answer: the status, the code of
// a JSON error, Allow on a 405; then check, if not nil.
func (e *env) refuse(t *testing.T, cases []refusal, check func(t *testing.T, a answer)) {
	t.Helper()
	tokens := strings.NewReplacer("ALL", e.all, "M1", e.m1, "M2", e.m2, "REVOKED", e.revoked)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			ctype := c.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			a := e.req(c.method, c.path, tokens.Replace(c.token), body, "Content-Type", ctype)
			if a.status != c.status {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, a.status, a.body, c.status)
			}
			if code := a.errorCode(t); code != c.code {
				t.Errorf("code %q (%s), want %q", code, a.body, c.code)
			}
			if c.status == 405 && a.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			if check != nil {
				check(t, a)
			}
		})
	}
}

// TestManageErrors: the endpoints that change something answer every fault
// with its status and code, as JSON, and change nothing.
func TestManageErrors(t *testing.T) {
	e := newEnv(t, admin.Config{})
	shared := daodian.App{Key: "shared", Secret: "shared-secret", Name: "shared", Merchants: []string{storetest.M1, storetest.M2}, Enabled: true}
	storetest.InsertApp(t, e.w.Store, shared)
	before, err := e.w.Ledger.Counts(e.w.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := `{"name":"` + strings.Repeat("x", 70<<10) + `"}`
	e.refuse(t, []refusal{
		{"no token", "POST", "/admin/v1/apps", "", `{"name":"x","merchant":"m1"}`, "", 401, "unauthorized"},
		{"app for another merchant", "POST", "/admin/v1/apps", "M1", `{"name":"x","merchant":"m2"}`, "", 403, "forbidden"},
		{"app without a merchant, all merchants", "POST", "/admin/v1/apps", "ALL", `{"name":"x"}`, "", 400, "invalid_parameter"},
		{"app without a name", "POST", "/admin/v1/apps", "M1", `{}`, "", 400, "invalid_parameter"},
		{"app with an unknown method", "POST", "/admin/v1/apps", "M1", `{"name":"x","methods":["taobao.nothing"]}`, "", 400, "invalid_parameter"},
		{"app with a negative rate", "POST", "/admin/v1/apps", "M1", `{"name":"x","rate_limit_per_s":-1}`, "", 400, "invalid_parameter"},
		{"unknown member", "POST", "/admin/v1/apps", "M1", `{"name":"x","merchant_id":"m1"}`, "", 400, "invalid_parameter"},
		{"member twice", "POST", "/admin/v1/apps", "M1", `{"name":"x","name":"y"}`, "", 400, "invalid_parameter"},
		{"member of the wrong type", "POST", "/admin/v1/apps", "M1", `{"name":7}`, "", 400, "invalid_parameter"},
		{"not JSON", "POST", "/admin/v1/apps", "M1", `name=x`, "", 400, "invalid_parameter"},
		{"a form", "POST", "/admin/v1/apps", "M1", `name=x`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"a body too large", "POST", "/admin/v1/apps", "M1", big, "", 413, "payload_too_large"},
		{"a query parameter", "POST", "/admin/v1/apps?merchant=m1", "M1", `{"name":"x"}`, "", 400, "invalid_parameter"},
		{"PUT apps", "PUT", "/admin/v1/apps", "ALL", "", "", 405, "method_not_allowed"},
		{"rotate another merchant's app", "POST", "/admin/v1/apps/" + e.w.B.Key + "/rotate-secret", "M1", "", "", 404, "not_found"},
		{"rotate a missing app", "POST", "/admin/v1/apps/nope/rotate-secret", "M1", "", "", 404, "not_found"},
		{"rotate a shared app, scoped", "POST", "/admin/v1/apps/shared/rotate-secret", "M1", "", "", 403, "forbidden"},
		{"rotate with a negative grace", "POST", "/admin/v1/apps/" + e.w.A.Key + "/rotate-secret", "M1", `{"grace_s":-1}`, "", 400, "invalid_parameter"},
		{"rotate with too long a grace", "POST", "/admin/v1/apps/" + e.w.A.Key + "/rotate-secret", "M1", `{"grace_s":99999999}`, "", 400, "invalid_parameter"},
		{"GET rotate", "GET", "/admin/v1/apps/" + e.w.A.Key + "/rotate-secret", "M1", "", "", 405, "method_not_allowed"},
		{"shop twice", "POST", "/admin/v1/shops", "M1", `{"shop_id":"shop-1"}`, "", 409, "conflict"},
		{"shop of another merchant", "POST", "/admin/v1/shops", "M1", `{"merchant":"m2","shop_id":"s9"}`, "", 403, "forbidden"},
		{"shop without an id", "POST", "/admin/v1/shops", "M1", `{"name":"x"}`, "", 400, "invalid_parameter"},
		{"shops of an unknown merchant", "GET", "/admin/v1/shops?merchant=nope", "ALL", "", "", 404, "not_found"},
		{"shops without a merchant, all merchants", "GET", "/admin/v1/shops", "ALL", "", "", 400, "invalid_parameter"},
		{"fault for another merchant's app", "POST", "/admin/v1/faults", "M1", `{"app_key":"` + e.w.B.Key + `","kind":"error"}`, "", 400, "invalid_parameter"},
		{"fault on another merchant's ticket", "POST", "/admin/v1/faults", "M1", `{"app_key":"` + e.w.A.Key + `","kind":"error","ticket_id":"` + e.t2.ID + `"}`, "", 400, "invalid_parameter"},
		{"fault of an unknown kind", "POST", "/admin/v1/faults", "M1", `{"app_key":"` + e.w.A.Key + `","kind":"explode"}`, "", 400, "invalid_parameter"},
		{"fault of an unknown method", "POST", "/admin/v1/faults", "M1", `{"app_key":"` + e.w.A.Key + `","kind":"error","method":"use"}`, "", 400, "invalid_parameter"},
		{"hold of another method", "POST", "/admin/v1/faults", "M1", `{"app_key":"` + e.w.A.Key + `","kind":"hold","method":"` + alsc.MethodReserve + `"}`, "", 400, "invalid_parameter"},
		{"delay without a wait", "POST", "/admin/v1/faults", "M1", `{"app_key":"` + e.w.A.Key + `","kind":"delay"}`, "", 400, "invalid_parameter"},
		{"wait too long", "POST", "/admin/v1/faults", "M1", `{"app_key":"` + e.w.A.Key + `","kind":"delay","wait_ms":60001}`, "", 400, "invalid_parameter"},
		{"error with an unknown code", "POST", "/admin/v1/faults", "M1", `{"app_key":"` + e.w.A.Key + `","kind":"error","code":99}`, "", 400, "invalid_parameter"},
		{"clear a missing rule", "DELETE", "/admin/v1/faults/2100000000000999999", "M1", "", "", 404, "not_found"},
		{"faults of another merchant", "GET", "/admin/v1/faults?merchant=m2", "M1", "", "", 403, "forbidden"},
		{"requests with a bad limit", "GET", "/admin/v1/requests?limit=0", "M1", "", "", 400, "invalid_parameter"},
		{"requests of another merchant", "GET", "/admin/v1/requests?merchant=m2", "M1", "", "", 403, "forbidden"},
		{"overview without a merchant, all merchants", "GET", "/admin/v1/overview", "ALL", "", "", 400, "invalid_parameter"},
		{"overview of another merchant", "GET", "/admin/v1/overview?merchant=m2", "M1", "", "", 403, "forbidden"},
		{"overview of an unknown merchant", "GET", "/admin/v1/overview?merchant=nope", "ALL", "", "", 404, "not_found"},
		{"merchants with a parameter", "GET", "/admin/v1/merchants?merchant=m1", "ALL", "", "", 400, "invalid_parameter"},
	}, nil)
	after, err := e.w.Ledger.Counts(e.w.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := e.w.Ledger.FaultRules(e.w.Ctx)
	if before != after || len(rules) != 0 {
		t.Errorf("refused requests changed the ledger: %+v → %+v, rules %v (%v)", before, after, rules, err)
	}
	app, err := e.w.Ledger.App(e.w.Ctx, e.w.A.Key)
	if err != nil || app.Secret != e.w.A.Secret {
		t.Errorf("a refused rotation changed the secret (%v)", err)
	}
}

// TestForeignLooksMissing: a scoped token naming another merchant's app or
// rule gets exactly the answer of one that does not exist.
func TestForeignLooksMissing(t *testing.T) {
	e := newEnv(t, admin.Config{})
	var rule admin.FaultRule
	decode(t, e.send("POST", "/admin/v1/faults", e.all, `{"app_key":"`+e.w.B.Key+`","kind":"error"}`), 201, &rule)
	for _, c := range []struct{ foreign, missing answer }{
		{e.send("POST", "/admin/v1/apps/"+e.w.B.Key+"/rotate-secret", e.m1, ""), e.send("POST", "/admin/v1/apps/nope/rotate-secret", e.m1, "")},
		{e.send("DELETE", "/admin/v1/faults/"+rule.RuleID, e.m1, ""), e.send("DELETE", "/admin/v1/faults/2100000000000999999", e.m1, "")},
	} {
		if c.foreign.status != c.missing.status || c.foreign.body != c.missing.body {
			t.Errorf("another merchant's: %d %s; a missing one: %d %s", c.foreign.status, c.foreign.body, c.missing.status, c.missing.body)
		}
	}
	foreign := e.send("POST", "/admin/v1/faults", e.m1, `{"app_key":"`+e.w.B.Key+`","kind":"error"}`)
	missing := e.send("POST", "/admin/v1/faults", e.m1, `{"app_key":"zz","kind":"error"}`)
	if foreign.status != missing.status || strings.Replace(foreign.body, e.w.B.Key, "zz", 1) != missing.body {
		t.Errorf("fault for another merchant's app: %s; for a missing one: %s", foreign.body, missing.body)
	}
	// The rule is still there: the scoped token's DELETE touched nothing.
	var all admin.FaultList
	decode(t, e.get("/admin/v1/faults", e.all), 200, &all)
	if len(all.Rules) != 1 {
		t.Errorf("rules after a scoped DELETE of another merchant's: %+v", all.Rules)
	}
}

// TestApps: listed by scope without secrets; created with the secret shown
// once in the answer; rotated with the old secret kept for the grace.
func TestApps(t *testing.T) {
	e := newEnv(t, admin.Config{})
	keys := func(token, query string) string {
		var l admin.AppList
		a := e.get("/admin/v1/apps"+query, token)
		decode(t, a, 200, &l)
		for _, s := range []string{e.w.A.Secret, e.w.B.Secret, e.w.A2.Secret} {
			if strings.Contains(a.body, s) {
				t.Errorf("the list holds a secret: %s", a.body)
			}
		}
		var ks []string
		for _, app := range l.Apps {
			ks = append(ks, app.AppKey)
		}
		return strings.Join(ks, ",")
	}
	sorted := func(ks ...string) string { slices.Sort(ks); return strings.Join(ks, ",") }
	if got, want := keys(e.all, ""), sorted(e.w.A.Key, e.w.A2.Key, e.w.B.Key); got != want {
		t.Errorf("all apps: %s, want %s", got, want)
	}
	if got, want := keys(e.m1, ""), sorted(e.w.A.Key, e.w.A2.Key); got != want {
		t.Errorf("m1's apps: %s, want %s", got, want)
	}
	if got, want := keys(e.all, "?merchant=m2"), e.w.B.Key; got != want {
		t.Errorf("m2's apps: %s, want %s", got, want)
	}

	var created admin.AppWithSecret
	decode(t, e.send("POST", "/admin/v1/apps", e.m1, `{"name":"新 POS","methods":["`+alsc.MethodUse+`"],"rate_limit_per_s":20}`), 201, &created)
	stored, err := e.w.Ledger.App(e.w.Ctx, created.AppKey)
	if err != nil || stored.Secret != created.AppSecret || created.AppSecret == "" || created.Name != "新 POS" ||
		!slices.Equal(created.Merchants, []string{storetest.M1}) || !slices.Equal(stored.Methods, []string{alsc.MethodUse}) || stored.RateLimitPerS != 20 {
		t.Fatalf("created %+v, stored %+v (%v)", created, stored, err)
	}
	if strings.Contains(e.logs.String(), created.AppSecret) {
		t.Error("the new secret is in the log")
	}

	e.w.Clock.Advance(time.Minute)
	var rotated admin.AppWithSecret
	decode(t, e.send("POST", "/admin/v1/apps/"+created.AppKey+"/rotate-secret", e.m1, `{"grace_s":3600}`), 200, &rotated)
	stored, err = e.w.Ledger.App(e.w.Ctx, created.AppKey)
	if err != nil || stored.Secret != rotated.AppSecret || stored.PreviousSecret != created.AppSecret ||
		!stored.PreviousSecretUntil.Equal(e.w.Clock.Now().Add(time.Hour)) || rotated.PreviousSecretValidUntil == "" {
		t.Fatalf("rotated %+v, stored %+v (%v)", rotated, stored, err)
	}
	// Without a body the grace is a day, as the CLI's.
	decode(t, e.send("POST", "/admin/v1/apps/"+created.AppKey+"/rotate-secret", e.all, ""), 200, &rotated)
	if stored, _ = e.w.Ledger.App(e.w.Ctx, created.AppKey); !stored.PreviousSecretUntil.Equal(e.w.Clock.Now().Add(24 * time.Hour)) {
		t.Errorf("default grace until %v", stored.PreviousSecretUntil)
	}
	// A token for every merchant rotates an app shared between merchants.
	storetest.InsertApp(t, e.w.Store, daodian.App{Key: "shared", Secret: "s", Name: "shared", Merchants: []string{storetest.M1, storetest.M2}, Enabled: true})
	decode(t, e.send("POST", "/admin/v1/apps/shared/rotate-secret", e.all, `{"grace_s":0}`), 200, &rotated)
}

// TestShops: listed per merchant, added once.
func TestShops(t *testing.T) {
	e := newEnv(t, admin.Config{})
	var shop admin.Shop
	decode(t, e.send("POST", "/admin/v1/shops", e.m1, `{"shop_id":"shop-9","name":"九号店"}`), 201, &shop)
	if shop != (admin.Shop{MerchantID: storetest.M1, ShopID: "shop-9", Name: "九号店"}) {
		t.Errorf("added %+v", shop)
	}
	decode(t, e.send("POST", "/admin/v1/shops", e.all, `{"merchant":"m3","shop_id":"a"}`), 201, &shop)
	if shop.Name != "a" {
		t.Errorf("a shop without a name is named %q, want its id", shop.Name)
	}
	var l admin.ShopList
	decode(t, e.get("/admin/v1/shops", e.m1), 200, &l)
	if fmt.Sprint(l.Shops) != fmt.Sprint([]admin.Shop{{MerchantID: "m1", ShopID: storetest.S1, Name: "一号店"}, {MerchantID: "m1", ShopID: "shop-9", Name: "九号店"}}) {
		t.Errorf("m1's shops: %+v", l)
	}
	var ms admin.MerchantList
	decode(t, e.get("/admin/v1/merchants", e.all), 200, &ms)
	if fmt.Sprint(ms.Merchants) != "[{m1 m1} {m2 m2} {m3 m3}]" {
		t.Errorf("merchants: %+v", ms)
	}
	decode(t, e.get("/admin/v1/merchants", e.m2), 200, &ms)
	if fmt.Sprint(ms.Merchants) != "[{m2 m2}]" {
		t.Errorf("a scoped token's merchants: %+v", ms)
	}
}

// TestFaults: rules are added for the caller's apps, listed and cleared by
// scope; a server with --no-faults says so.
func TestFaults(t *testing.T) {
	e := newEnv(t, admin.Config{FaultsDisabled: true})
	var a1, a2, b admin.FaultRule
	decode(t, e.send("POST", "/admin/v1/faults", e.m1, `{"app_key":"`+e.w.A.Key+`","kind":"error","ticket_code":"`+e.t1.Code+`","method":"`+alsc.MethodReserve+`"}`), 201, &a1)
	decode(t, e.send("POST", "/admin/v1/faults", e.m1, `{"app_key":"`+e.w.A2.Key+`","kind":"hold","probability":0.5}`), 201, &a2)
	decode(t, e.send("POST", "/admin/v1/faults", e.all, `{"app_key":"`+e.w.B.Key+`","kind":"delay","wait_ms":1500,"count":3}`), 201, &b)
	if a1.TicketID != e.t1.ID || a1.Count != 1 || a1.Probability != 1 || a2.Method != alsc.MethodUse || a2.Count != 0 || a2.WaitMS != 30000 || b.WaitMS != 1500 || b.Count != 3 {
		t.Errorf("added %+v, %+v, %+v", a1, a2, b)
	}
	ids := func(token, query string) string {
		var l admin.FaultList
		a := e.get("/admin/v1/faults"+query, token)
		decode(t, a, 200, &l)
		if l.Injection {
			t.Error("a server with --no-faults says injection is on")
		}
		if strings.Contains(a.body, e.t1.Code) {
			t.Errorf("a rule shows a ticket code: %s", a.body)
		}
		var s []string
		for _, r := range l.Rules {
			s = append(s, r.RuleID)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct{ token, query, want string }{
		{e.all, "", a1.RuleID + "," + a2.RuleID + "," + b.RuleID},
		{e.all, "?merchant=m2", b.RuleID},
		{e.m1, "", a1.RuleID + "," + a2.RuleID},
		{e.m1, "?app_key=" + e.w.A2.Key, a2.RuleID},
		{e.m1, "?app_key=" + e.w.B.Key, ""},
		{e.m2, "", b.RuleID},
	} {
		if got := ids(c.token, c.query); got != c.want {
			t.Errorf("GET faults%s: %s, want %s", c.query, got, c.want)
		}
	}
	var n admin.Cleared
	decode(t, e.send("DELETE", "/admin/v1/faults", e.m1, ""), 200, &n)
	if n.Cleared != 2 || ids(e.all, "") != b.RuleID {
		t.Errorf("a scoped clear cleared %d, left %s", n.Cleared, ids(e.all, ""))
	}
	decode(t, e.send("DELETE", "/admin/v1/faults/"+b.RuleID, e.m2, ""), 200, &n)
	if n.Cleared != 1 || ids(e.all, "") != "" {
		t.Errorf("clear by id: %d, left %s", n.Cleared, ids(e.all, ""))
	}
}

// TestRequests: the last requests of the apps a token sees, newest first,
// with the parameters the POS sent (codes included for the app's own
// merchant, masked for a token that does not see all of the app's
// merchants) and without sign or secrets.
func TestRequests(t *testing.T) {
	e := newEnv(t, admin.Config{})
	gw := e.withGateway(admin.Config{})
	shared := daodian.App{Key: "shared", Secret: "shared-secret-0123", Name: "shared", Merchants: []string{storetest.M1, storetest.M2}, Enabled: true}
	storetest.InsertApp(t, e.w.Store, shared)
	ctx := e.w.Ctx
	use := func(app *daodian.App, rid string) {
		c := client.New(gw, app.Key, app.Secret, client.WithClock(e.w.Clock.Now))
		if _, err := c.Call(ctx, alsc.MethodConsult, map[string]string{"consult_request": `{"request_id":"` + rid + `","shop_id":"` + storetest.S1 + `","ticket_code":"` + e.t1.Code + `"}`}); err != nil {
			t.Fatal(err)
		}
	}
	use(e.w.A, "c1")
	use(e.w.B, "c2")
	use(&shared, "c3")
	list := func(token, query string) admin.RequestList {
		var l admin.RequestList
		a := e.get("/admin/v1/requests"+query, token)
		decode(t, a, 200, &l)
		for _, s := range []string{e.w.A.Secret, e.w.B.Secret, shared.Secret} {
			if strings.Contains(a.body, s) {
				t.Errorf("requests hold a secret: %s", a.body)
			}
		}
		if strings.Contains(a.body, `"sign"`) {
			t.Errorf("requests hold sign: %s", a.body)
		}
		return l
	}
	summary := func(l admin.RequestList) string {
		var s []string
		for _, r := range l.Requests {
			s = append(s, r.AppKey+":"+strings.Trim(strings.Split(r.Params["consult_request"], `"request_id":`)[1][:4], `",`))
		}
		return strings.Join(s, ",")
	}
	all := list(e.all, "")
	if got, want := summary(all), "shared:c3,"+e.w.B.Key+":c2,"+e.w.A.Key+":c1"; got != want || !all.Log || len(all.Apps) != 3 {
		t.Errorf("every request: %s, want %s (%+v)", got, want, all.Apps)
	}
	m1 := list(e.m1, "")
	if got, want := summary(m1), "shared:c3,"+e.w.A.Key+":c1"; got != want {
		t.Errorf("m1's requests: %s, want %s", got, want)
	}
	own, sharedReq := m1.Requests[1], m1.Requests[0]
	if !strings.Contains(own.Params["consult_request"], e.t1.Code) || own.CodesMasked || !strings.Contains(own.Answer, e.t1.ID) {
		t.Errorf("m1's own app: %+v", own)
	}
	if strings.Contains(sharedReq.Params["consult_request"], e.t1.Code) || strings.Contains(sharedReq.Answer, e.t1.Code) || !sharedReq.CodesMasked ||
		!strings.Contains(sharedReq.Params["consult_request"], admin.MaskCodes(e.t1.Code)) {
		t.Errorf("a shared app's request shows the code to a scoped token: %+v", sharedReq)
	}
	if got := summary(list(e.all, "?merchant=m2&limit=1")); got != "shared:c3" {
		t.Errorf("m2's last request: %s", got)
	}
	if l := list(e.m1, "?app_key="+e.w.B.Key); len(l.Requests) != 0 {
		t.Errorf("m1 sees requests of m2's app: %+v", l.Requests)
	}
	if l := list(e.m1, "?app_key="+e.w.A.Key); summary(l) != e.w.A.Key+":c1" || l.Requests[0].Outcome != "success" || l.Requests[0].Method != alsc.MethodConsult {
		t.Errorf("one app's requests: %+v", l.Requests)
	}
}

// TestOverview: a merchant's day (as its statement), its apps' traffic of
// the last hour and its armed rules.
func TestOverview(t *testing.T) {
	e := newEnv(t, admin.Config{})
	gw := e.withGateway(admin.Config{})
	for i := range 3 {
		c := client.New(gw, e.w.A.Key, e.w.A.Secret, client.WithClock(e.w.Clock.Now))
		if _, err := c.Call(e.w.Ctx, alsc.MethodConsult, map[string]string{"consult_request": fmt.Sprintf(`{"request_id":"c%d","shop_id":"%s","ticket_code":"999999999999"}`, i, storetest.S1)}); err != nil {
			t.Fatal(err)
		}
	}
	var rule admin.FaultRule
	decode(t, e.send("POST", "/admin/v1/faults", e.m1, `{"app_key":"`+e.w.A.Key+`","kind":"error"}`), 201, &rule)
	var o admin.Overview
	decode(t, e.get("/admin/v1/overview", e.m1), 200, &o)
	var st admin.Statement
	decode(t, e.get("/admin/v1/statements?date="+day, e.m1), 200, &st)
	if o.Date != day || fmt.Sprint(o.Today) != fmt.Sprint(st) || o.Today.Total.Uses != 2 {
		t.Errorf("today %s: %+v, want the statement %+v", o.Date, o.Today, st)
	}
	if len(o.Traffic) != 60 || o.Traffic[59].Requests != 3 || o.Traffic[59].Errors != 3 || o.Traffic[59].P99MS <= 0 {
		t.Errorf("traffic: %d minutes, the last %+v", len(o.Traffic), o.Traffic[len(o.Traffic)-1])
	}
	if len(o.Faults) != 1 || o.Faults[0].RuleID != rule.RuleID || !o.FaultInjection {
		t.Errorf("faults %+v, injection %v", o.Faults, o.FaultInjection)
	}
	decode(t, e.get("/admin/v1/overview?merchant=m2", e.all), 200, &o)
	if o.Traffic[59].Requests != 0 || len(o.Faults) != 0 || o.Today.Total.Uses != 1 {
		t.Errorf("m2's overview: %+v", o)
	}
}

func TestMaskCodes(t *testing.T) {
	for in, want := range map[string]string{
		"":             "",
		"123456789012": "********9012",
		`{"ticket_code":"123456789012","ticket_id":"2100000000000000001"}`: `{"ticket_code":"********9012","ticket_id":"2100000000000000001"}`,
		"<c>123456789012</c>1234567890123":                                 "<c>********9012</c>1234567890123",
		"12345678901 a 1234567890123":                                      "12345678901 a 1234567890123",
	} {
		if got := admin.MaskCodes(in); got != want {
			t.Errorf("MaskCodes(%q) = %q, want %q", in, got, want)
		}
	}
}

package console_test

import (
	"context"
	"encoding/csv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/console"
	"github.com/daodian/daodian/storetest"
	"github.com/daodian/daodian/webhook"
)

// The console's main paths in a real browser: headless Chromium (Debian's
// chromium package, which .ci/run installs), driven over the DevTools
// protocol with chromedp. One browser process serves every test of the
// package; each test has a browser context of its own (its own cookies), so
// that the tests stay independent. Every wait is on an element, never a
// sleep.
//
// The browser is `chromium` on PATH, or DAODIAN_TEST_CHROMIUM. Without one
// the tests skip, unless CI is set: then a missing browser is a failure.
//
// With DAODIAN_SCREENSHOTS=DIR the tests save full-page screenshots of each
// page at 1280 and 390 px wide into DIR (relative to the repository root);
// docs/console.md shows them:
//
//	DAODIAN_SCREENSHOTS=docs/console go test -count=1 -run TestBrowser ./console

var shared struct {
	once sync.Once
	ctx  context.Context
	err  error
	stop func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

// chromium returns the browser's path, or skips the test (fails it in CI).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DAODIAN_TEST_CHROMIUM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "no browser: install Debian's chromium (apt-get install -y chromium) or set DAODIAN_TEST_CHROMIUM to a Chromium binary"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set: the browser tests must run)")
	}
	t.Skip(msg)
	return ""
}

// tab opens a tab in a browser context of its own, on the shared browser
// (started on first use), 1280 px wide; every action of the test must end
// within two minutes.
func tab(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	shared.once.Do(func() {
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(path),
			chromedp.Flag("headless", true),
			chromedp.Flag("no-sandbox", true),
			chromedp.Flag("disable-gpu", true),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("no-first-run", true),
			chromedp.Flag("no-default-browser-check", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("hide-scrollbars", true),
			chromedp.Flag("lang", "en-US"),
			chromedp.UserDataDir(mustTempDir()),
			chromedp.WindowSize(1280, 800),
		}
		actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, cancelB := chromedp.NewContext(actx)
		shared.ctx, shared.err = bctx, chromedp.Do(bctx)
		shared.stop = func() { cancelB(); cancelA() }
	})
	if shared.err != nil {
		t.Fatalf("start %s: %v", path, shared.err)
	}
	tctx, cancel := chromedp.NewContext(shared.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	ctx, cancelT := context.WithTimeout(tctx, 2*time.Minute)
	t.Cleanup(cancelT)
	do(t, ctx, chromedp.EmulateViewport(1280, 800))
	return ctx
}

func mustTempDir() string {
	d, err := os.MkdirTemp("", "daodian-chromium-")
	if err != nil {
		panic(err)
	}
	return d
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	return run(t, ctx, chromedp.Text(chromedp.CSS(css)))
}

// signIn signs the tab in with token and waits for the overview.
func signIn(t *testing.T, ctx context.Context, e *env, token string) {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("header.top nav")),
	)
}

// shot saves full-page screenshots of the tab at 1280 and 390 px wide when
// DAODIAN_SCREENSHOTS names a directory.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("DAODIAN_SCREENSHOTS")
	if dir == "" {
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", dir) // the tests run in console/
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		suffix        string
		width, height int64
	}{{"", 1280, 800}, {"-phone", 390, 844}} {
		do(t, ctx, chromedp.EmulateViewport(v.width, v.height))
		png := run(t, ctx, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, name+v.suffix+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do(t, ctx, chromedp.EmulateViewport(1280, 800))
}

// TestBrowserSignIn: a wrong token is refused on the sign-in page; a valid
// one opens the overview (today per shop, the charts); signing out ends the
// session.
func TestBrowserSignIn(t *testing.T) {
	ctx := tab(t)
	e := newEnv(t, console.Config{})
	e.busyHour()
	// A webhook of m1 added after the busy hour: up to date.
	if _, err := e.w.Ledger.AddWebhook(e.w.Ctx, daodian.WebhookSpec{MerchantID: storetest.M1, URL: "https://backoffice.example/daodian"}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "dd_"+strings.Repeat("x", 43)),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(".login .flash.error")),
	)
	if got := text(t, ctx, ".login .flash.error"); !strings.Contains(got, "not a valid admin token") {
		t.Errorf("a wrong token: %q", got)
	}
	signIn(t, ctx, e, e.m1)
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS(".tiles")))
	tiles := text(t, ctx, ".tiles")
	for _, want := range []string{"Uses 核销", "Reversals 冲正", "Refunds 售后退", "Webhook lag 推送延迟\n0 s\n1 webhook · up to date"} {
		if !strings.Contains(tiles, want) {
			t.Errorf("the overview's tiles lack %q: %q", want, tiles)
		}
	}
	if shops := text(t, ctx, "main table tbody"); !strings.Contains(shops, storetest.S1) || !strings.Contains(shops, "shop-3") {
		t.Errorf("today per shop: %q", shops)
	}
	bars := run(t, ctx, chromedp.Nodes(chromedp.CSSAll("svg rect.req")))
	if len(bars) != 60 {
		t.Errorf("%d bars in the requests chart, want 60", len(bars))
	}
	shot(t, ctx, "overview")
	do(t, ctx,
		chromedp.Click(chromedp.CSS("form.who button")),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	if got := text(t, ctx, ".login .flash"); got != "Signed out." {
		t.Errorf("after signing out: %q", got)
	}
	do(t, ctx, chromedp.Navigate(e.srv.URL+console.Prefix+"records"), chromedp.WaitVisible(chromedp.ID("token")))
	shot(t, ctx, "login")
}

// TestBrowserTicket: a ticket looked up by code after a use and a reversal
// shows both in its timeline, in order; looked up by id, not its code.
func TestBrowserTicket(t *testing.T) {
	ctx := tab(t)
	e := newEnv(t, console.Config{})
	signIn(t, ctx, e, e.m1)
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"ticket"),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), e.used.Code),
		chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS("ol.timeline")),
	)
	tl := text(t, ctx, "ol.timeline")
	use, rev := strings.Index(tl, "核销 use"), strings.Index(tl, "冲正 reversal")
	if use < 0 || rev < use || !strings.Contains(tl, "pos-u1") || !strings.Contains(tl, "pos-r1") {
		t.Errorf("timeline without the use then the reversal: %q", tl)
	}
	if card := text(t, ctx, "#ticket"); !strings.Contains(card, e.used.Code) || !strings.Contains(card, "3 of 3") {
		t.Errorf("the ticket found by code: %q", card)
	}
	shot(t, ctx, "ticket")
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"ticket?q="+e.used.ID),
		chromedp.WaitVisible(chromedp.CSS("ol.timeline")),
	)
	if card := text(t, ctx, "#ticket"); strings.Contains(card, e.used.Code) || !strings.Contains(card, e.used.ID) {
		t.Errorf("the ticket found by id shows its code: %q", card)
	}
}

// TestBrowserRecords: records page by page, filtered, and the CSV of the
// filter downloaded whole.
func TestBrowserRecords(t *testing.T) {
	ctx := tab(t)
	e := newEnv(t, console.Config{})
	e.busyHour()
	signIn(t, ctx, e, e.m1)
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"records"),
		chromedp.WaitVisible(chromedp.CSS("table.records")),
	)
	first := text(t, ctx, "table.records tbody tr:first-child td:first-child")
	rows := run(t, ctx, chromedp.Nodes(chromedp.CSSAll("table.records tbody tr")))
	shot(t, ctx, "records")
	do(t, ctx, chromedp.Click(chromedp.ID("next")), chromedp.WaitVisible(chromedp.ID("first")))
	second := text(t, ctx, "table.records tbody tr:first-child td:first-child")
	if first != "1" || len(rows) != 50 || second != "51" {
		t.Errorf("page 1 starts at record %s with %d rows, page 2 at %s; want 1, 50, 51", first, len(rows), second)
	}
	// Uses only.
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"records"),
		chromedp.WaitVisible(chromedp.CSS("form.filters")),
		chromedp.Click(chromedp.CSS(`input[name="kind"][value="use"]`)),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("filter")),
	)
	body := run(t, ctx, chromedp.OuterHTML(chromedp.CSS("table.records tbody")))
	if n, uses := strings.Count(body, `class="badge kind-`), strings.Count(body, `class="badge kind-use"`); n == 0 || n != uses {
		t.Errorf("%d records listed under the filter, %d of them uses", n, uses)
	}
	// The CSV of the filter: every use of m1, one line each.
	dir := t.TempDir()
	bc := chromedp.FromContext(ctx).BrowserContextID
	if _, err := chromedp.Run(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, BrowserContextID: bc, DownloadPath: dir, EventsEnabled: ptr(true)})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	do(t, ctx, chromedp.Click(chromedp.CSS(`a[download]`)))
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatal(err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was cancelled")
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := countRecords(t, e, daodian.RecordUse)
	if len(lines) != want+1 || strings.Join(lines[0], ",") != strings.Join(admin.RecordCSVHeader, ",") {
		t.Errorf("CSV of %d lines (header %v), want a header and %d uses", len(lines), lines[0], want)
	}
	for _, l := range lines[1:] {
		if l[2] != "use" || l[3] != storetest.M1 {
			t.Errorf("CSV line %v is not a use of m1", l)
			break
		}
	}
}

func ptr[T any](v T) *T { return &v }

// countRecords counts m1's records of a kind in the ledger.
func countRecords(t *testing.T, e *env, kind daodian.RecordKind) int {
	t.Helper()
	n, cursor := 0, ""
	for {
		p, err := e.w.Ledger.Records(e.w.Ctx, daodian.RecordQuery{MerchantID: storetest.M1, Kinds: []daodian.RecordKind{kind}, Limit: daodian.MaxRecordsPage}, cursor)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Records)
		if cursor = p.NextCursor; cursor == "" {
			return n
		}
	}
}

// TestBrowserFaults: a rule armed from the form is in the store, shown, and
// cleared.
func TestBrowserFaults(t *testing.T) {
	ctx := tab(t)
	e := newEnv(t, console.Config{})
	signIn(t, ctx, e, e.all)
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"faults?merchant="+storetest.M1),
		chromedp.WaitVisible(chromedp.ID("app_key")),
		chromedp.SetValue(chromedp.ID("app_key"), e.w.A.Key),
		chromedp.SetValue(chromedp.ID("kind"), "error"),
		chromedp.SetValue(chromedp.ID("method"), alsc.MethodReserve),
		chromedp.Click(chromedp.CSS(`form.grid button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if got := text(t, ctx, ".flash"); !strings.Contains(got, "armed") {
		t.Fatalf("after arming: %q", got)
	}
	rules, err := e.w.Ledger.FaultRules(e.w.Ctx)
	if err != nil || len(rules) != 1 || rules[0].AppKey != e.w.A.Key || rules[0].Kind != daodian.FaultError || rules[0].Method != alsc.MethodReserve || rules[0].Count != 1 {
		t.Fatalf("rules in the store: %+v (%v)", rules, err)
	}
	if got := text(t, ctx, "#rules tbody"); !strings.Contains(got, rules[0].ID) || !strings.Contains(got, "reserve 冲正") {
		t.Errorf("the rules table: %q", got)
	}
	shot(t, ctx, "faults")
	do(t, ctx,
		chromedp.Click(chromedp.CSS("#rules tbody button")),
		chromedp.WaitVisible(chromedp.CSS("#rules tbody td.muted")),
	)
	if got := text(t, ctx, ".flash"); got != "Cleared 1 rule(s)." {
		t.Errorf("after clearing: %q", got)
	}
	if rules, err := e.w.Ledger.FaultRules(e.w.Ctx); err != nil || len(rules) != 0 {
		t.Errorf("rules left: %+v (%v)", rules, err)
	}
	if got := text(t, ctx, "#rules tbody"); !strings.Contains(got, "No rule armed") {
		t.Errorf("the rules table after clearing: %q", got)
	}
}

// TestBrowserRequests: the requests page shows what the POS sent, expanded
// on a click, without sign or secrets.
func TestBrowserRequests(t *testing.T) {
	ctx := tab(t)
	e := newEnv(t, console.Config{})
	e.busyHour()
	signIn(t, ctx, e, e.m1)
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"requests?app="+e.w.A.Key),
		chromedp.WaitVisible(chromedp.CSS("ol.requests details")),
		chromedp.Click(chromedp.CSS("ol.requests li:first-child summary")),
		chromedp.WaitVisible(chromedp.CSS("ol.requests details[open] table.params")),
	)
	summary := text(t, ctx, "ol.requests li:first-child summary")
	params := text(t, ctx, "ol.requests details[open] table.params")
	if !strings.Contains(summary, "use 核销") || !strings.Contains(params, "use_request") || !strings.Contains(params, e.w.A.Key) {
		t.Errorf("the newest request: %q\n%q", summary, params)
	}
	html := run(t, ctx, chromedp.OuterHTML(chromedp.CSS("main")))
	if strings.Contains(html, "<th>sign</th>") || strings.Contains(html, e.w.A.Secret) {
		t.Errorf("the requests page shows sign or the app's secret: %s", html)
	}
	shot(t, ctx, "requests")
}

// TestBrowserApps: an app created from the form shows its secret once; a
// shop is added.
func TestBrowserApps(t *testing.T) {
	ctx := tab(t)
	e := newEnv(t, console.Config{})
	signIn(t, ctx, e, e.m1)
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"apps"),
		chromedp.WaitVisible(chromedp.ID("app-name")),
	)
	shot(t, ctx, "apps")
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("app-name"), "收银台 2"),
		chromedp.Submit(chromedp.ID("app-name")),
		chromedp.WaitVisible(chromedp.ID("app-secret")),
	)
	key, secret := text(t, ctx, "#app-key"), text(t, ctx, "#app-secret")
	app, err := e.w.Ledger.App(e.w.Ctx, key)
	if err != nil || app.Secret != secret || app.Name != "收银台 2" {
		t.Fatalf("app %s shown with secret %q, stored %+v (%v)", key, secret, app, err)
	}
	shot(t, ctx, "secret")
	loc := run(t, ctx, chromedp.Location())
	if strings.Contains(loc, secret) {
		t.Errorf("the secret is in the URL %s", loc)
	}
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"apps"),
		chromedp.WaitVisible(chromedp.ID("shop-id")),
	)
	if html := run(t, ctx, chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, secret) {
		t.Error("the apps page shows the secret again")
	}
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("shop-id"), "shop-9"),
		chromedp.SendKeys(chromedp.ID("shop-name"), "九号店"),
		chromedp.Submit(chromedp.ID("shop-id")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if got := text(t, ctx, "#shops"); !strings.Contains(got, "九号店") {
		t.Errorf("shops after adding: %q", got)
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Error("the secret is in the log")
	}
}

// worldClock is the deliverer's clock: the env's ledger's time when it
// started, moving on in real time (retries wait for it), so that the
// attempts happen on the day of the records.
type worldClock struct {
	base  time.Time
	start time.Time
}

func newWorldClock(e *env) worldClock { return worldClock{base: e.w.Clock.Now(), start: time.Now()} }

func (c worldClock) Now() time.Time                         { return c.base.Add(time.Since(c.start)) }
func (c worldClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// delivery is a webhook delivery as a receiver got it.
type delivery struct {
	eventID, signature string
	body               []byte
}

// receiver is a webhook receiver on loopback answering its first POST 503
// (a back office restarting) and every other 204, handing each delivery to
// its channel.
func receiver(t *testing.T) (*httptest.Server, chan delivery) {
	t.Helper()
	got := make(chan delivery, 16)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case got <- delivery{eventID: r.Header.Get("X-Daodian-Event-Id"), signature: r.Header.Get("X-Daodian-Signature"), body: b}:
		default:
		}
		if calls.Add(1) == 1 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func receive(t *testing.T, got chan delivery) delivery {
	t.Helper()
	select {
	case d := <-got:
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30 s")
	}
	return delivery{}
}

// waitAttempts waits until the webhook's attempts, as written to the store
// (every 100 ms), satisfy ok.
func waitAttempts(t *testing.T, e *env, id string, ok func([]daodian.DeliveryAttempt) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		as, err := e.w.Ledger.DeliveryAttempts(e.w.Ctx, daodian.AttemptQuery{WebhookID: id})
		if err != nil {
			t.Fatal(err)
		}
		if ok(as) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the attempts written are %+v", as)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrowserWebhooks: a webhook added from the form to a receiver on
// loopback shows its secret once, which signs the delivery of the next use;
// the delivery appears on the page, is sent again from its Redeliver
// button, and the webhook is removed.
func TestBrowserWebhooks(t *testing.T) {
	ctx := tab(t)
	e := newEnv(t, console.Config{})
	rcv, got := receiver(t)
	d := webhook.Start(e.w.Ledger, webhook.Config{Logger: slog.New(slog.DiscardHandler), Clock: newWorldClock(e)})
	t.Cleanup(d.Stop)
	signIn(t, ctx, e, e.m1)
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"webhooks"),
		chromedp.WaitVisible(chromedp.ID("hook-url")),
		chromedp.SendKeys(chromedp.ID("hook-url"), rcv.URL+"/daodian/events"),
		chromedp.Click(chromedp.CSS(`input[name="types"][value="ticket.used"]`)),
		chromedp.Click(chromedp.CSS(`input[name="types"][value="ticket.use_reversed"]`)),
		chromedp.Submit(chromedp.ID("hook-url")),
		chromedp.WaitVisible(chromedp.ID("webhook-secret")),
	)
	id, secret := text(t, ctx, "#webhook-id"), text(t, ctx, "#webhook-secret")
	shot(t, ctx, "webhook-secret")
	if loc := run(t, ctx, chromedp.Location()); strings.Contains(loc, secret) {
		t.Errorf("the secret is in the URL %s", loc)
	}

	// The next use is delivered, signed with the secret shown: refused once,
	// retried, delivered.
	e.call(e.w.A, alsc.MethodUse, "use_request", `{"ticket_code":"`+e.used.Code+`","shop_id":"`+storetest.S1+`","ticket_request_id":"pos-u9"}`)
	refused, first := receive(t, got), receive(t, got)
	if err := client.VerifyWebhook(secret, first.signature, first.body, time.Minute, e.w.Clock.Now()); err != nil || !strings.Contains(string(first.body), `"pos-u9"`) ||
		refused.eventID != first.eventID {
		t.Fatalf("the delivery %s (%s), after %s: %v", first.body, first.signature, refused.eventID, err)
	}
	waitAttempts(t, e, id, func(as []daodian.DeliveryAttempt) bool { return len(as) == 2 })
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"webhooks"),
		chromedp.WaitVisible(chromedp.ID("deliveries")),
	)
	if row := text(t, ctx, "#deliveries tbody tr:first-child"); !strings.Contains(row, first.eventID) || !strings.Contains(row, "delivered 已送达") ||
		!strings.Contains(row, "204") || !strings.Contains(row, "ticket.used 核销") {
		t.Errorf("the delivery on the page: %q", row)
	}
	if row := text(t, ctx, "#deliveries tbody tr:nth-child(2)"); !strings.Contains(row, "retry 重试") || !strings.Contains(row, "503") {
		t.Errorf("the refused attempt on the page: %q", row)
	}
	if hooks := text(t, ctx, "#webhooks tbody"); !strings.Contains(hooks, id) || !strings.Contains(hooks, "up to date") {
		t.Errorf("the webhook on the page: %q", hooks)
	}
	shot(t, ctx, "webhooks")

	// Sent again from its row.
	do(t, ctx,
		chromedp.Click(chromedp.CSS("#deliveries tbody tr:first-child button")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if f := text(t, ctx, ".flash"); !strings.Contains(f, "Event "+first.eventID+" queued for redelivery to webhook "+id) {
		t.Errorf("after Redeliver: %q", f)
	}
	if again := receive(t, got); again.eventID != first.eventID || string(again.body) != string(first.body) {
		t.Errorf("the redelivery: event %s %s, want %s", again.eventID, again.body, first.eventID)
	}
	waitAttempts(t, e, id, func(as []daodian.DeliveryAttempt) bool { return len(as) == 3 && as[0].Redelivery })
	do(t, ctx,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("deliveries")),
	)
	if row := text(t, ctx, "#deliveries tbody tr:first-child"); !strings.Contains(row, first.eventID) || !strings.Contains(row, "redelivery") {
		t.Errorf("the redelivery on the page: %q", row)
	}
	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix),
		chromedp.WaitVisible(chromedp.ID("webhook-lag")),
	)
	if tile := text(t, ctx, "#webhook-lag"); !strings.Contains(tile, "Webhook lag 推送延迟") || !strings.Contains(tile, "1 webhook · up to date") {
		t.Errorf("the overview's lag tile: %q", tile)
	}

	do(t, ctx,
		chromedp.Navigate(e.srv.URL+console.Prefix+"webhooks"),
		chromedp.WaitVisible(chromedp.ID("webhooks")),
		chromedp.Click(chromedp.CSS("#webhooks tbody button.danger")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if f := text(t, ctx, ".flash"); !strings.Contains(f, "Webhook "+id+" removed") {
		t.Errorf("after Remove: %q", f)
	}
	if hooks, err := e.w.Ledger.Webhooks(e.w.Ctx, ""); err != nil || len(hooks) != 0 {
		t.Errorf("webhooks left: %+v (%v)", hooks, err)
	}
	if html := run(t, ctx, chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, secret) || strings.Contains(e.logs.String(), secret) {
		t.Error("the secret is shown again, or logged")
	}
}

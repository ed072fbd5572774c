package console_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/console"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/storetest"
)

// BenchmarkPages measures each page of the console, its handler answering a
// signed-in request (the session, the token check, the admin API's reads and
// the template), on an embedded ledger of DAODIAN_BENCH_TICKETS tickets
// (default 10 000, so that CI's `-benchtime 1x` run stays short; SPEC §10's
// measure is 1 000 000):
//
//	DAODIAN_BENCH_TICKETS=1000000 go test -run '^$' -bench Pages -benchtime 200x -timeout 30m ./console
//
// The ledger is a year's business of one merchant with 8 shops: the tickets
// issued over the 100 days before today (an even share each day), and today
// DAODIAN_BENCH_TODAY uses (default 1/100 of the tickets, at most 10 000; a
// reversal for one in ten), as the overview's statement reads today's
// records; the request log is full (two apps, 50 requests each); 5 fault
// rules are armed. Every page must answer in under 50 ms.
func BenchmarkPages(b *testing.B) {
	n := benchEnvInt("DAODIAN_BENCH_TICKETS", 10_000)
	today := benchEnvInt("DAODIAN_BENCH_TODAY", min(n/100, 10_000))
	t0 := time.Now()
	p := buildBenchLedger(b, n, today)
	b.Logf("setup: %d tickets, %d uses today, in %v", n, today, time.Since(t0).Round(time.Second))
	for _, c := range []struct{ name, path string }{
		{"Overview", "/console/"},
		{"TicketByCode", "/console/ticket?q=" + p.code},
		{"TicketByID", "/console/ticket?q=" + p.ticketID},
		{"Records", "/console/records"},
		{"RecordsFiltered", "/console/records?kind=use&shop=shop-3&from=" + p.date},
		{"RecordsLastPage", "/console/records?cursor=" + url.QueryEscape(p.lastCursor)},
		{"Requests", "/console/requests"},
		{"Faults", "/console/faults"},
		{"Apps", "/console/apps"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, c.path, nil)
				req.AddCookie(p.session)
				rec := httptest.NewRecorder()
				p.con.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Sign out") {
					b.Fatalf("GET %s: %d %.300s", c.path, rec.Code, rec.Body.String())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
		})
	}
}

func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchPages is the ledger of BenchmarkPages, served by a console with one
// signed-in session.
type benchPages struct {
	con      *console.Console
	session  *http.Cookie
	code     string // of a ticket used today
	ticketID string
	date     string
	// lastCursor opens the last page of today's records.
	lastCursor string
}

func buildBenchLedger(b *testing.B, n, today int) *benchPages {
	b.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	now := time.Date(2026, 11, 30, 15, 0, 0, 0, daodian.GMT8)
	clock := storetest.NewClock(now.AddDate(0, 0, -100))
	l := daodian.NewLedger(s, daodian.Config{Clock: clock.Now})
	for i := range 8 {
		if err := l.AddShop(ctx, daodian.Shop{MerchantID: "m1", ID: fmt.Sprintf("shop-%d", i), Name: fmt.Sprintf("%d号店", i)}); err != nil {
			b.Fatal(err)
		}
	}
	apps := make([]*daodian.App, 2)
	for i := range apps {
		if apps[i], err = l.CreateApp(ctx, daodian.AppSpec{Name: fmt.Sprintf("pos-%d", i), MerchantID: "m1"}); err != nil {
			b.Fatal(err)
		}
	}
	// The tickets: 100 days, 2 000 orders of one ticket per transaction.
	var todays []daodian.Ticket
	const batch = 2000
	for d := range 100 {
		clock.Set(now.AddDate(0, 0, d-100))
		share := n / 100
		if d == 99 {
			share = n - 99*(n/100)
		}
		for done := 0; done < share; done += batch {
			reqs := make([]daodian.IssueRequest, min(batch, share-done))
			for i := range reqs {
				reqs[i] = daodian.IssueRequest{MerchantID: "m1", ItemName: "双人套餐", TotalAmountCents: 9900, RealAmountCents: 8800,
					ValidTo: now.AddDate(0, 1, 0)}
			}
			issued, err := l.IssueMany(ctx, reqs)
			if err != nil {
				b.Fatal(err)
			}
			for _, o := range issued {
				if len(todays) < today {
					todays = append(todays, o.Tickets...)
				}
			}
		}
	}
	// Today: uses in 8 shops by two apps, one in ten reversed, at 16
	// at once (the store commits them in groups).
	clock.Set(now)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < len(todays); i += 16 {
				app := apps[i%2]
				u, err := l.Use(ctx, app, daodian.UseRequest{TicketCode: todays[i].Code, ShopID: fmt.Sprintf("shop-%d", i%8), RequestID: "u" + strconv.Itoa(i)})
				if err == nil && i%10 == 0 {
					_, err = l.Reverse(ctx, app, daodian.ReverseRequest{RequestID: "r" + strconv.Itoa(i), TicketID: todays[i].ID, TransID: u.TransID})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	for i := range 5 {
		if _, err := l.AddFaultRule(ctx, daodian.FaultRule{AppKey: apps[i%2].Key, Kind: daodian.FaultError, Method: alsc.MethodReserve, Count: i + 1}); err != nil {
			b.Fatal(err)
		}
	}
	discard := slog.New(slog.DiscardHandler)
	gw := gateway.New(l, gateway.Config{Clock: clock.Now, Logger: discard})
	srv := httptest.NewServer(gw.Handler())
	b.Cleanup(srv.Close)
	for i := range 2 * gateway.DefaultRequestLogPerApp {
		app := apps[i%2]
		c := client.New(srv.URL+"/router/rest", app.Key, app.Secret, client.WithClock(clock.Now))
		if _, err := c.Call(ctx, alsc.MethodConsult, map[string]string{"consult_request": fmt.Sprintf(`{"request_id":"c%d","shop_id":"shop-1","ticket_code":"%s"}`, i, todays[i%len(todays)].Code)}); err != nil {
			b.Fatal(err)
		}
	}
	api := admin.New(l, admin.Config{Clock: clock.Now, Logger: discard, RequestLog: gw.RequestLog()})
	con := console.New(console.Config{API: api, Clock: clock.Now, Logger: discard})
	_, token, err := l.CreateAdminToken(ctx, "bench", "m1")
	if err != nil {
		b.Fatal(err)
	}
	p := &benchPages{con: con, code: todays[0].Code, ticketID: todays[1].ID, date: now.Format(time.DateOnly), session: signInDirect(b, con, token)}
	// The cursor of the last page of today's records, 50 a page.
	q := admin.RecordsQuery{Limit: strconv.Itoa(daodian.MaxRecordsPage)}
	who := admin.Caller{Token: &daodian.AdminToken{MerchantID: "m1"}}
	for {
		page, aerr := api.Records(ctx, who, q)
		if aerr != nil {
			b.Fatal(aerr)
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	p.lastCursor = q.Cursor
	return p
}

// signInDirect signs in through the console's handler and returns the
// session's cookie.
func signInDirect(b *testing.B, con *console.Console, token string) *http.Cookie {
	b.Helper()
	rec := httptest.NewRecorder()
	con.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/login", nil))
	m := csrfRE.FindStringSubmatch(rec.Body.String())
	if m == nil {
		b.Fatalf("sign-in page: %s", rec.Body.String())
	}
	form := url.Values{"csrf": {m[1]}, "token": {token}}
	req := httptest.NewRequest(http.MethodPost, "/console/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	con.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == "daodian_session" && c.Value != "" {
			return c
		}
	}
	b.Fatalf("sign-in: %d %v", rec.Code, rec.Header())
	return nil
}

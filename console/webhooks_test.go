package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/console"
	"github.com/daodian/daodian/storetest"
)

var webhookSecretRE = regexp.MustCompile(`id="webhook-id">(\d+)<.*\n.*id="webhook-secret">(whsec_[0-9a-f]+)<`)

// TestWebhooksPage: a webhook added from the form shows its secret on the
// answering page alone; the page lists the merchant's webhooks with their
// lag and a webhook's attempts; an event is redelivered and a webhook
// removed from their forms; another merchant's webhook is as missing.
func TestWebhooksPage(t *testing.T) {
	e := newEnv(t, console.Config{})
	theirs, err := e.w.Ledger.AddWebhook(e.w.Ctx, daodian.WebhookSpec{MerchantID: storetest.M2, URL: "https://m2.example/hook"})
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, e.srv.URL, e.srv.Client())
	token := a.signIn(e.m1)
	if p := a.get("/console/webhooks"); !signedIn(p) || !strings.Contains(p.body, "No webhooks") || strings.Contains(p.body, theirs.ID) {
		t.Fatalf("the page without webhooks: %d %s", p.status, p.body)
	}
	p := a.post("/console/webhooks", url.Values{"csrf": {token}, "url": {" http://127.0.0.1:9/pos/events "}, "types": {"ticket.used", "ticket.use_reversed"}})
	m := webhookSecretRE.FindStringSubmatch(p.body)
	if p.status != 200 || m == nil || p.header.Get("Location") != "" {
		t.Fatalf("add: %d %v %s", p.status, p.header, p.body)
	}
	id, secret := m[1], m[2]
	stored := e.w.StoredWebhooks()
	if len(stored) != 2 || stored[1].ID != id || stored[1].Secret != secret || stored[1].MerchantID != storetest.M1 ||
		stored[1].URL != "http://127.0.0.1:9/pos/events" || stored[1].TypesText() != "ticket.used,ticket.use_reversed" {
		t.Fatalf("stored %+v, shown %s %s", stored, id, secret)
	}

	// A use 2 minutes ago waits: the webhook's lag, and the overview's.
	e.call(e.w.A, "alibaba.alsc.merchant.ext.ticketcode.use", "use_request",
		`{"ticket_code":"`+e.used.Code+`","shop_id":"`+storetest.S1+`","ticket_request_id":"pos-u2"}`)
	e.w.Clock.Advance(2 * time.Minute)
	page := a.get("/console/webhooks")
	row := regexp.MustCompile(`(?s)<tr class="selected">.*?</tr>`).FindString(page.body)
	if !strings.Contains(row, id) || !strings.Contains(row, "2 min 0 s") || !strings.Contains(row, "ticket.used 核销") ||
		!strings.Contains(page.body, "No delivery attempt yet") || strings.Contains(page.body, theirs.ID) {
		t.Errorf("the webhooks page: %s", page.body)
	}
	tile := regexp.MustCompile(`(?s)<a class="tile[^"]*" id="webhook-lag".*?</a>`).FindString(a.get("/console/").body)
	if !strings.Contains(tile, "tile late") || !strings.Contains(tile, "2 min 0 s") || !strings.Contains(tile, "1 webhook ·") {
		t.Errorf("m1's lag tile: %s", tile)
	}
	all := newAgent(t, e.srv.URL, e.srv.Client())
	all.signIn(e.all)
	tile = regexp.MustCompile(`(?s)<a class="tile[^"]*" id="webhook-lag".*?</a>`).FindString(all.get("/console/?merchant=m2").body)
	if strings.Contains(tile, "late") || !strings.Contains(tile, "up to date") || !strings.Contains(tile, "0 s") {
		t.Errorf("m2's lag tile shows m1's lag: %s", tile)
	}
	for _, s := range []string{page.body, a.get("/console/").body, e.logs.String()} {
		if strings.Contains(s, secret) {
			t.Fatal("the secret is shown again, or logged")
		}
	}

	// The use's delivery: attempted, then delivered (as a deliverer writes
	// it); then it can be sent again.
	var useEvent string
	evs, err := e.w.Ledger.Events(e.w.Ctx, storetest.M1, stored[1].Cursor, 10)
	if err != nil || len(evs.Events) != 1 {
		t.Fatalf("events after the webhook: %+v (%v)", evs, err)
	}
	useEvent = evs.Events[0].ID
	now := e.w.Clock.Now()
	e.w.SaveDelivery(daodian.DeliveryUpdate{WebhookID: id, Cursor: useEvent, Attempts: []daodian.DeliveryAttempt{
		{EventID: useEvent, EventType: daodian.EventUsed, Attempt: 1, At: now, HTTPStatus: 502, Latency: 30 * time.Millisecond, Error: "HTTP 502: <bad gateway>", Outcome: daodian.Retrying},
		{EventID: useEvent, EventType: daodian.EventUsed, Attempt: 2, At: now.Add(time.Second), HTTPStatus: 200, Latency: 4 * time.Millisecond, Outcome: daodian.Delivered},
	}})
	page = a.get("/console/webhooks?webhook=" + id)
	table := regexp.MustCompile(`(?s)<table id="deliveries">.*?</table>`).FindString(page.body)
	if strings.Count(table, "<tr>") != 3 || !strings.Contains(table, "delivered 已送达") || !strings.Contains(table, "retry 重试") ||
		!strings.Contains(table, "HTTP 502: &lt;bad gateway&gt;") || !strings.Contains(table, "30.0 ms") || strings.Count(table, ">Redeliver<") != 2 {
		t.Errorf("the deliveries: %s", table)
	}
	if p := a.get("/console/webhooks?webhook=" + id + "&failed=1"); !strings.Contains(p.body, "No event marked failed") {
		t.Errorf("the failed deliveries: %s", p.body)
	}
	p = a.post("/console/webhooks/redeliver", url.Values{"csrf": {token}, "webhook_id": {id}, "event_id": {useEvent}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/webhooks?webhook="+id {
		t.Fatalf("redeliver: %d %v", p.status, p.header)
	}
	if p := a.get(p.header.Get("Location")); !strings.Contains(p.body, "Event "+useEvent+" queued for redelivery to webhook "+id) {
		t.Errorf("after redelivering: %s", p.body)
	}
	if reds := e.w.StoredRedeliveries(); len(reds) != 1 || reds[0].EventID != useEvent || reds[0].WebhookID != id {
		t.Errorf("redeliveries: %+v", reds)
	}
	// Refusals come back to the page, saying why; another merchant's webhook
	// is as missing.
	for _, c := range []struct {
		path string
		form url.Values
		want string
	}{
		{"/console/webhooks/redeliver", url.Values{"webhook_id": {id}, "event_id": {"99" + useEvent}}, "no such event"},
		{"/console/webhooks/redeliver", url.Values{"webhook_id": {theirs.ID}, "event_id": {useEvent}}, "no such webhook"},
		{"/console/webhooks/remove", url.Values{"webhook_id": {theirs.ID}}, "no such webhook"},
		{"/console/webhooks", url.Values{"url": {"https://pos:pw-9f3a@backoffice.example/"}}, "must not hold a user or password"},
		{"/console/webhooks", url.Values{"url": {"http://127.0.0.1:9/"}, "types": {"ticket.eaten"}}, "is not one of"},
	} {
		c.form.Set("csrf", token)
		p := a.post(c.path, c.form)
		if p.status != http.StatusSeeOther {
			t.Errorf("%s %v: %d %s", c.path, c.form, p.status, p.body)
			continue
		}
		if got := a.get(p.header.Get("Location")); !strings.Contains(got.body, c.want) || strings.Contains(got.body, "pw-9f3a") {
			t.Errorf("%s %v: the page says %s", c.path, c.form, got.body)
		}
	}
	if p := a.get("/console/webhooks?webhook=" + theirs.ID); p.status != http.StatusNotFound || strings.Contains(p.body, "m2.example") {
		t.Errorf("another merchant's webhook: %d %s", p.status, p.body)
	}
	if strings.Contains(e.logs.String(), "pw-9f3a") {
		t.Error("the log holds a URL's password")
	}

	p = a.post("/console/webhooks/remove", url.Values{"csrf": {token}, "webhook_id": {id}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", p.status, p.body)
	}
	if stored := e.w.StoredWebhooks(); len(stored) != 1 || stored[0].ID != theirs.ID {
		t.Errorf("stored after the removal: %+v", stored)
	}
	if p := a.get(p.header.Get("Location")); !strings.Contains(p.body, "Webhook "+id+" removed") || strings.Contains(p.body, `href="/console/webhooks?webhook=`+id) {
		t.Errorf("after the removal: %s", p.body)
	}
}

// TestWebhookFormsCSRF: each webhook form without the session's CSRF token,
// or from another site, is refused (403) and changes nothing.
func TestWebhookFormsCSRF(t *testing.T) {
	e := newEnv(t, console.Config{})
	hook, err := e.w.Ledger.AddWebhook(e.w.Ctx, daodian.WebhookSpec{MerchantID: storetest.M1, URL: "http://127.0.0.1:9/"})
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, e.srv.URL, e.srv.Client())
	token := a.signIn(e.m1)
	for _, path := range []string{"/console/webhooks", "/console/webhooks/remove", "/console/webhooks/redeliver"} {
		form := url.Values{"url": {"http://127.0.0.1:8/"}, "webhook_id": {hook.ID}, "event_id": {"1"}}
		for _, c := range []struct {
			csrf, site string
		}{{"", "same-origin"}, {strings.Repeat("A", len(token)), "same-origin"}, {token, "cross-site"}} {
			a.site = c.site
			form.Set("csrf", c.csrf)
			if p := a.post(path, form); p.status != http.StatusForbidden {
				t.Errorf("POST %s with csrf %.6q from %s: %d", path, c.csrf, c.site, p.status)
			}
		}
	}
	if stored := e.w.StoredWebhooks(); len(stored) != 1 || stored[0].ID != hook.ID {
		t.Errorf("refused forms changed the webhooks: %+v", stored)
	}
}

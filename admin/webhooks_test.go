package admin_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/storetest"
)

// addWebhook adds a webhook through the API and returns the answer.
func (e *env) addWebhook(token, body string) admin.WebhookWithSecret {
	e.t.Helper()
	var wh admin.WebhookWithSecret
	decode(e.t, e.send("POST", "/admin/v1/webhooks", token, body), 201, &wh)
	return wh
}

// TestWebhooks: a webhook added through the API shows its secret in that
// answer alone; webhooks are listed by scope with their lag, read from the
// store; their deliveries page newest first, the failed ones alone on
// asking; an event they went past is redelivered; a removed one is gone.
func TestWebhooks(t *testing.T) {
	e := newEnv(t, admin.Config{})
	mine := e.addWebhook(e.m1, `{"url":"http://127.0.0.1:9/pos/hook?x=1","types":["ticket.use_reversed","ticket.used"]}`)
	theirs := e.addWebhook(e.all, `{"merchant":"m2","url":"https://backoffice.example/daodian"}`)
	if !strings.HasPrefix(mine.Secret, daodian.WebhookSecretPrefix) || mine.MerchantID != storetest.M1 || mine.URL != "http://127.0.0.1:9/pos/hook?x=1" ||
		strings.Join(mine.Types, ",") != "ticket.used,ticket.use_reversed" || mine.Cursor == "" || mine.Retrying != nil {
		t.Fatalf("added %+v", mine)
	}
	if theirs.MerchantID != storetest.M2 || len(theirs.Types) != 0 || theirs.Secret == mine.Secret {
		t.Fatalf("added for m2 %+v", theirs)
	}
	stored := e.w.StoredWebhooks()
	if len(stored) != 2 || stored[0].ID != mine.WebhookID || stored[0].Secret != mine.Secret || stored[1].Secret != theirs.Secret {
		t.Fatalf("stored %+v", stored)
	}

	// A use of m1 after the webhooks: pending for m1's webhook only, and an
	// issue, which m1's webhook does not receive, is not.
	e.w.Issue(1, 1)
	e.w.Clock.Advance(10 * time.Second)
	use := e.w.MustUse(e.w.A, e.t1.Code, 1, "u3")
	var useEvent string
	var evs admin.EventPage
	e.getJSON("/admin/v1/events?after="+mine.Cursor, e.m1, &evs)
	for _, ev := range evs.Events {
		if ev.Data.TransID == use.TransID && ev.Type == "ticket.used" {
			useEvent = ev.EventID
		}
	}
	if useEvent == "" {
		t.Fatalf("no event of the use in %+v", evs)
	}
	e.w.Clock.Advance(90 * time.Second)
	list := func(token, query string) string {
		t.Helper()
		var l admin.WebhookList
		a := e.get("/admin/v1/webhooks"+query, token)
		decode(t, a, 200, &l)
		var s []string
		for _, w := range l.Webhooks {
			s = append(s, fmt.Sprintf("%s:%s:%g:%s", w.WebhookID, w.MerchantID, w.LagS, w.PendingEventID))
		}
		return strings.Join(s, ",")
	}
	m1Line := fmt.Sprintf("%s:m1:90:%s", mine.WebhookID, useEvent)
	m2Line := theirs.WebhookID + ":m2:0:"
	for _, c := range []struct{ token, query, want string }{
		{e.all, "", m1Line + "," + m2Line},
		{e.all, "?merchant=m2", m2Line},
		{e.m1, "", m1Line},
		{e.m1, "?merchant=m1", m1Line},
		{e.m2, "", m2Line},
	} {
		if got := list(c.token, c.query); got != c.want {
			t.Errorf("GET webhooks%s: %s, want %s", c.query, got, c.want)
		}
	}
	var one admin.WebhookState
	decode(t, e.get("/admin/v1/webhooks/"+mine.WebhookID, e.m1), 200, &one)
	if one.WebhookID != mine.WebhookID || one.LagS != 90 || one.PendingEventID != useEvent || one.URL != mine.URL {
		t.Errorf("GET one webhook: %+v", one)
	}

	// The overview's lag is the merchant's own: m2's is 0 while m1's webhook
	// is 90 s behind.
	overview := func(token string) admin.Overview {
		t.Helper()
		var o admin.Overview // a fresh one each time: absent members stay zero
		decode(t, e.get("/admin/v1/overview", token), 200, &o)
		return o
	}
	o := overview(e.m1)
	if o.Webhooks != (admin.WebhookLag{Webhooks: 1, LagS: 90, OldestEventID: useEvent}) {
		t.Errorf("m1's overview: webhooks %+v", o.Webhooks)
	}
	if o = overview(e.m2); o.Webhooks != (admin.WebhookLag{Webhooks: 1}) {
		t.Errorf("m2's overview: webhooks %+v", o.Webhooks)
	}

	// Attempts: two retries (500, then refused), then delivered; one event
	// marked failed before.
	at := e.w.Clock.Now()
	e.w.SaveDelivery(daodian.DeliveryUpdate{WebhookID: mine.WebhookID, Attempts: []daodian.DeliveryAttempt{
		{EventID: mine.Cursor, EventType: daodian.EventUsed, Attempt: 16, At: at.Add(-time.Hour), HTTPStatus: 503, Latency: 12 * time.Millisecond, Error: "HTTP 503", Outcome: daodian.Failed},
		{EventID: useEvent, EventType: daodian.EventUsed, Attempt: 1, At: at, HTTPStatus: 500, Latency: 40 * time.Millisecond, Error: "HTTP 500", Outcome: daodian.Retrying},
	}, Head: &daodian.HeadState{EventID: useEvent, Attempts: 1, FirstAt: at, NextAt: at.Add(time.Second)}})
	if o = overview(e.m1); o.Webhooks.Retrying != 1 || o.Webhooks.LagS != 90 {
		t.Errorf("m1's overview with a retry: webhooks %+v", o.Webhooks)
	}
	e.w.Clock.Advance(2 * time.Second)
	e.w.SaveDelivery(daodian.DeliveryUpdate{WebhookID: mine.WebhookID, Attempts: []daodian.DeliveryAttempt{
		{EventID: useEvent, EventType: daodian.EventUsed, Attempt: 2, At: at.Add(time.Second), Error: "connection refused", Outcome: daodian.Retrying},
		{EventID: useEvent, EventType: daodian.EventUsed, Attempt: 3, At: at.Add(2 * time.Second), HTTPStatus: 204, Latency: 3 * time.Millisecond, Outcome: daodian.Delivered},
	}, Cursor: useEvent, Head: &daodian.HeadState{}})
	deliveries := func(query string) admin.DeliveryPage {
		t.Helper()
		var p admin.DeliveryPage
		decode(t, e.get("/admin/v1/webhooks/"+mine.WebhookID+"/deliveries"+query, e.m1), 200, &p)
		return p
	}
	outcomes := func(p admin.DeliveryPage) string {
		var s []string
		for _, d := range p.Deliveries {
			s = append(s, fmt.Sprintf("%s#%d:%s:%d", d.EventID, d.Attempt, d.Outcome, d.HTTPStatus))
		}
		return strings.Join(s, ",")
	}
	all := deliveries("")
	want := fmt.Sprintf("%[1]s#3:delivered:204,%[1]s#2:retry:0,%[1]s#1:retry:500,%[2]s#16:failed:503", useEvent, mine.Cursor)
	if got := outcomes(all); got != want || all.NextBefore != "" || all.WebhookID != mine.WebhookID {
		t.Errorf("deliveries: %s (next %q), want %s", got, all.NextBefore, want)
	}
	if d := all.Deliveries[2]; d.LatencyMS != 40 || d.Error != "HTTP 500" || d.Type != "ticket.used" || d.At == "" {
		t.Errorf("an attempt: %+v", d)
	}
	if got := outcomes(deliveries("?failed=true")); got != fmt.Sprintf("%s#16:failed:503", mine.Cursor) {
		t.Errorf("failed deliveries: %s", got)
	}
	first := deliveries("?limit=2")
	rest := deliveries("?limit=2&before=" + first.NextBefore)
	if outcomes(first)+","+outcomes(rest) != want || first.NextBefore != all.Deliveries[1].AttemptID {
		t.Errorf("paged by two: %s (next %q) then %s", outcomes(first), first.NextBefore, outcomes(rest))
	}
	if one := deliveries("?failed=false&limit=1"); len(one.Deliveries) != 1 || one.NextBefore != one.Deliveries[0].AttemptID {
		t.Errorf("one attempt: %+v", one)
	}
	if o = overview(e.m1); o.Webhooks != (admin.WebhookLag{Webhooks: 1}) {
		t.Errorf("m1's overview once delivered: webhooks %+v", o.Webhooks)
	}

	// Redelivery of the delivered use: to the webhook named, or to every
	// webhook of the event's merchant that went past it.
	var r admin.Redelivery
	decode(t, e.send("POST", "/admin/v1/redeliveries", e.m1, `{"event_id":"`+useEvent+`","webhook_id":"`+mine.WebhookID+`"}`), 202, &r)
	if r.EventID != useEvent || strings.Join(r.WebhookIDs, ",") != mine.WebhookID {
		t.Errorf("redelivered %+v", r)
	}
	decode(t, e.send("POST", "/admin/v1/redeliveries", e.all, `{"event_id":"`+useEvent+`"}`), 202, &r)
	if strings.Join(r.WebhookIDs, ",") != mine.WebhookID {
		t.Errorf("redelivered to every webhook of m1: %+v", r)
	}
	if reds := e.w.StoredRedeliveries(); len(reds) != 1 || reds[0].EventID != useEvent || reds[0].WebhookID != mine.WebhookID {
		t.Errorf("redeliveries queued: %+v", reds)
	}

	// Never a secret but in the answer that added the webhook.
	for _, a := range []answer{e.get("/admin/v1/webhooks", e.all), e.get("/admin/v1/webhooks/"+mine.WebhookID, e.m1),
		e.get("/admin/v1/webhooks/"+mine.WebhookID+"/deliveries", e.m1), e.get("/admin/v1/overview", e.m1)} {
		if strings.Contains(a.body, mine.Secret) || strings.Contains(a.body, theirs.Secret) || strings.Contains(a.body, `"secret"`) {
			t.Errorf("an answer shows a secret: %s", a.body)
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, mine.Secret) || strings.Contains(logs, theirs.Secret) {
		t.Errorf("the log holds a webhook's secret:\n%s", logs)
	}

	var removed admin.RemovedWebhook
	decode(t, e.send("DELETE", "/admin/v1/webhooks/"+mine.WebhookID, e.m1, ""), 200, &removed)
	if removed != (admin.RemovedWebhook{WebhookID: mine.WebhookID, Removed: true}) {
		t.Errorf("removed %+v", removed)
	}
	if got := list(e.all, ""); got != m2Line {
		t.Errorf("after the removal: %s", got)
	}
	if a := e.get("/admin/v1/webhooks/"+mine.WebhookID+"/deliveries", e.m1); a.status != 404 {
		t.Errorf("deliveries of a removed webhook: %d %s", a.status, a.body)
	}
	if stored := e.w.StoredWebhooks(); len(stored) != 1 || stored[0].ID != theirs.WebhookID {
		t.Errorf("stored after the removal: %+v", stored)
	}
}

// TestWebhooksErrors: every refusal of the webhook endpoints, with its status
// and code; none changes anything.
func TestWebhooksErrors(t *testing.T) {
	e := newEnv(t, admin.Config{})
	mine := e.addWebhook(e.m1, `{"url":"http://127.0.0.1:9/hook","types":["ticket.refunded"]}`)
	theirs := e.addWebhook(e.m2, `{"url":"http://127.0.0.1:9/hook"}`)
	e.w.MustUse(e.w.A, e.t1.Code, 1, "u3") // after mine's cursor: not reached yet
	var evs admin.EventPage
	e.getJSON("/admin/v1/events?after="+mine.Cursor, e.m1, &evs)
	notReached := evs.Events[0].EventID
	var m2evs admin.EventPage
	e.getJSON("/admin/v1/events", e.m2, &m2evs)
	m2Event := m2evs.Events[0].EventID
	const missing = "2100000000000999999"
	hook, hook2 := "/admin/v1/webhooks/"+mine.WebhookID, "/admin/v1/webhooks/"+theirs.WebhookID
	e.refuse(t, []refusal{
		{"no token, list", "GET", "/admin/v1/webhooks", "", "", "", 401, "unauthorized"},
		{"no token, add", "POST", "/admin/v1/webhooks", "", `{"url":"http://127.0.0.1:9/"}`, "", 401, "unauthorized"},
		{"no token, redeliver", "POST", "/admin/v1/redeliveries", "", `{"event_id":"1"}`, "", 401, "unauthorized"},
		{"revoked token, remove", "DELETE", hook, "REVOKED", "", "", 401, "unauthorized"},
		{"list of another merchant", "GET", "/admin/v1/webhooks?merchant=m2", "M1", "", "", 403, "forbidden"},
		{"list of an unknown merchant, scoped", "GET", "/admin/v1/webhooks?merchant=nope", "M1", "", "", 403, "forbidden"},
		{"list of an unknown merchant", "GET", "/admin/v1/webhooks?merchant=nope", "ALL", "", "", 404, "not_found"},
		{"list with an unknown parameter", "GET", "/admin/v1/webhooks?url=x", "M1", "", "", 400, "invalid_parameter"},
		{"PUT webhooks", "PUT", "/admin/v1/webhooks", "ALL", "", "", 405, "method_not_allowed"},
		{"add for another merchant", "POST", "/admin/v1/webhooks", "M1", `{"merchant":"m2","url":"http://127.0.0.1:9/"}`, "", 403, "forbidden"},
		{"add without a merchant, all merchants", "POST", "/admin/v1/webhooks", "ALL", `{"url":"http://127.0.0.1:9/"}`, "", 400, "invalid_parameter"},
		{"add for an unknown merchant", "POST", "/admin/v1/webhooks", "ALL", `{"merchant":"nope","url":"http://127.0.0.1:9/"}`, "", 404, "not_found"},
		{"add without a URL", "POST", "/admin/v1/webhooks", "M1", `{}`, "", 400, "invalid_parameter"},
		{"add with an ftp URL", "POST", "/admin/v1/webhooks", "M1", `{"url":"ftp://127.0.0.1/"}`, "", 400, "invalid_parameter"},
		{"add with a user and password", "POST", "/admin/v1/webhooks", "M1", `{"url":"https://pos:hunter2-pass@backoffice.example/"}`, "", 400, "invalid_parameter"},
		{"add with a fragment", "POST", "/admin/v1/webhooks", "M1", `{"url":"https://backoffice.example/#x"}`, "", 400, "invalid_parameter"},
		{"add with a space", "POST", "/admin/v1/webhooks", "M1", `{"url":"https://backoffice.example/a b"}`, "", 400, "invalid_parameter"},
		{"add without a host", "POST", "/admin/v1/webhooks", "M1", `{"url":"http:///x"}`, "", 400, "invalid_parameter"},
		{"add with an unknown type", "POST", "/admin/v1/webhooks", "M1", `{"url":"http://127.0.0.1:9/","types":["ticket.eaten"]}`, "", 400, "invalid_parameter"},
		{"add with types as text", "POST", "/admin/v1/webhooks", "M1", `{"url":"http://127.0.0.1:9/","types":"ticket.used"}`, "", 400, "invalid_parameter"},
		{"add with an unknown member", "POST", "/admin/v1/webhooks", "M1", `{"url":"http://127.0.0.1:9/","secret":"mine"}`, "", 400, "invalid_parameter"},
		{"add with a member twice", "POST", "/admin/v1/webhooks", "M1", `{"url":"http://127.0.0.1:9/","url":"http://127.0.0.1:8/"}`, "", 400, "invalid_parameter"},
		{"add as a form", "POST", "/admin/v1/webhooks", "M1", `url=http://127.0.0.1:9/`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"add with a query parameter", "POST", "/admin/v1/webhooks?merchant=m1", "M1", `{"url":"http://127.0.0.1:9/"}`, "", 400, "invalid_parameter"},
		{"a webhook of another merchant", "GET", hook2, "M1", "", "", 404, "not_found"},
		{"a missing webhook", "GET", "/admin/v1/webhooks/" + missing, "M1", "", "", 404, "not_found"},
		{"a webhook id not digits", "GET", "/admin/v1/webhooks/12ab", "M1", "", "", 400, "invalid_parameter"},
		{"a webhook, naming another merchant", "GET", hook + "?merchant=m2", "M1", "", "", 403, "forbidden"},
		{"a webhook outside the named merchant", "GET", hook2 + "?merchant=m1", "ALL", "", "", 404, "not_found"},
		{"POST a webhook", "POST", hook, "M1", "", "", 405, "method_not_allowed"},
		{"remove another merchant's", "DELETE", hook2, "M1", "", "", 404, "not_found"},
		{"remove a missing one", "DELETE", "/admin/v1/webhooks/" + missing, "M1", "", "", 404, "not_found"},
		{"remove, naming another merchant", "DELETE", hook + "?merchant=m2", "M1", "", "", 403, "forbidden"},
		{"deliveries of another merchant's", "GET", hook2 + "/deliveries", "M1", "", "", 404, "not_found"},
		{"deliveries of a missing one", "GET", "/admin/v1/webhooks/" + missing + "/deliveries", "M1", "", "", 404, "not_found"},
		{"deliveries, failed=yes", "GET", hook + "/deliveries?failed=yes", "M1", "", "", 400, "invalid_parameter"},
		{"deliveries, limit 0", "GET", hook + "/deliveries?limit=0", "M1", "", "", 400, "invalid_parameter"},
		{"deliveries, limit too large", "GET", hook + "/deliveries?limit=1001", "M1", "", "", 400, "invalid_parameter"},
		{"deliveries, before not digits", "GET", hook + "/deliveries?before=x", "M1", "", "", 400, "invalid_parameter"},
		{"deliveries, limit twice", "GET", hook + "/deliveries?limit=1&limit=2", "M1", "", "", 400, "invalid_parameter"},
		{"deliveries, naming another merchant", "GET", hook + "/deliveries?merchant=m2", "M1", "", "", 403, "forbidden"},
		{"POST deliveries", "POST", hook + "/deliveries", "M1", "", "", 405, "method_not_allowed"},
		{"redeliver without an event", "POST", "/admin/v1/redeliveries", "M1", `{}`, "", 400, "invalid_parameter"},
		{"redeliver an event id not digits", "POST", "/admin/v1/redeliveries", "M1", `{"event_id":"x1"}`, "", 400, "invalid_parameter"},
		{"redeliver another merchant's event", "POST", "/admin/v1/redeliveries", "M1", `{"event_id":"` + m2Event + `"}`, "", 404, "not_found"},
		{"redeliver a missing event", "POST", "/admin/v1/redeliveries", "M1", `{"event_id":"` + missing + `"}`, "", 404, "not_found"},
		{"redeliver to another merchant's webhook", "POST", "/admin/v1/redeliveries", "M1", `{"event_id":"` + notReached + `","webhook_id":"` + theirs.WebhookID + `"}`, "", 404, "not_found"},
		{"redeliver, naming another merchant", "POST", "/admin/v1/redeliveries", "M1", `{"event_id":"` + m2Event + `","merchant":"m2"}`, "", 403, "forbidden"},
		{"redeliver an event outside the named merchant", "POST", "/admin/v1/redeliveries", "ALL", `{"event_id":"` + m2Event + `","merchant":"m1"}`, "", 404, "not_found"},
		{"redeliver an event not reached", "POST", "/admin/v1/redeliveries", "M1", `{"event_id":"` + notReached + `"}`, "", 409, "conflict"},
		{"redeliver to a webhook not receiving it", "POST", "/admin/v1/redeliveries", "M1", `{"event_id":"` + notReached + `","webhook_id":"` + mine.WebhookID + `"}`, "", 409, "conflict"},
		{"redeliver, an unknown member", "POST", "/admin/v1/redeliveries", "M1", `{"event":"1"}`, "", 400, "invalid_parameter"},
		{"GET redeliveries", "GET", "/admin/v1/redeliveries", "M1", "", "", 405, "method_not_allowed"},
	}, func(t *testing.T, a answer) {
		if strings.Contains(a.body, "hunter2") {
			t.Errorf("the answer echoes a URL's password: %s", a.body)
		}
	})
	if stored := e.w.StoredWebhooks(); len(stored) != 2 {
		t.Errorf("refused requests changed the webhooks: %+v", stored)
	}
	if reds := e.w.StoredRedeliveries(); len(reds) != 0 {
		t.Errorf("refused redeliveries queued %+v", reds)
	}
	if strings.Contains(e.logs.String(), "hunter2") {
		t.Error("the log holds a URL's password")
	}
}

// TestWebhookOfAnotherMerchantLooksMissing: a scoped token naming another
// merchant's webhook or event, whatever it asks, gets exactly the answer of
// one that does not exist.
func TestWebhookOfAnotherMerchantLooksMissing(t *testing.T) {
	e := newEnv(t, admin.Config{})
	e.addWebhook(e.m1, `{"url":"http://127.0.0.1:9/hook"}`)
	theirs := e.addWebhook(e.all, `{"merchant":"m2","url":"http://127.0.0.1:9/hook"}`)
	var m1evs, m2evs admin.EventPage
	e.getJSON("/admin/v1/events", e.m1, &m1evs)
	e.getJSON("/admin/v1/events", e.m2, &m2evs)
	const missing = "2100000000000999999"
	for _, c := range []struct {
		method, path, body string
	}{
		{"GET", "/admin/v1/webhooks/{}", ""},
		{"GET", "/admin/v1/webhooks/{}/deliveries?failed=true", ""},
		{"DELETE", "/admin/v1/webhooks/{}", ""},
		{"POST", "/admin/v1/redeliveries", `{"event_id":"` + m1evs.Events[0].EventID + `","webhook_id":"{}"}`},
		{"POST", "/admin/v1/redeliveries", `{"event_id":"{}"}`},
	} {
		foreignID, missingID := theirs.WebhookID, missing
		if c.body == `{"event_id":"{}"}` {
			foreignID = m2evs.Events[0].EventID
		}
		send := func(id string) answer {
			return e.send(c.method, strings.Replace(c.path, "{}", id, 1), e.m1, strings.Replace(c.body, "{}", id, 1))
		}
		foreign, absent := send(foreignID), send(missingID)
		if foreign.status != 404 || foreign.status != absent.status || foreign.body != absent.body {
			t.Errorf("%s %s: another merchant's: %d %s; a missing one: %d %s", c.method, c.path, foreign.status, foreign.body, absent.status, absent.body)
		}
	}
	if stored := e.w.StoredWebhooks(); len(stored) != 2 {
		t.Errorf("a scoped DELETE of another merchant's webhook removed it: %+v", stored)
	}
}

// TestWebhookURLsAsTheCLI: the API accepts exactly the URLs `daodian webhook
// add` accepts (daodian.CheckWebhookURL): http(s), a host, no user or
// password, no fragment. Where a URL may point (not link-local nor a cloud
// metadata address) is checked at delivery, on the address dialled, for the
// webhooks of both alike.
func TestWebhookURLsAsTheCLI(t *testing.T) {
	e := newEnv(t, admin.Config{})
	for _, u := range []string{
		"http://127.0.0.1:8080/hook", "https://backoffice.example/daodian?token=x", "http://[::1]:9/x", "http://169.254.169.254/latest",
		"http://192.168.1.20/pos", "https://pos-operator@backoffice.example/", "https://:pw@backoffice.example/", "javascript:alert(1)",
		"//backoffice.example/x", "https://backoffice.example:0/", "https://backoffice.example:99999/", "http://[::1/", "http://[fe80::zz]/",
		"https://backoffice.example/\u00e9", "http://x/" + strings.Repeat("a", daodian.MaxWebhookURLLen),
	} {
		body, err := json.Marshal(map[string]string{"url": u})
		if err != nil {
			t.Fatal(err)
		}
		a := e.send("POST", "/admin/v1/webhooks", e.m1, string(body))
		_, cliErr := daodian.CheckWebhookURL(u)
		if (a.status == 201) != (cliErr == nil) || (a.status != 201 && a.status != 400) {
			t.Errorf("%.60q: %d %.200s; the CLI's check: %v", u, a.status, a.body, cliErr)
		}
		if pu, err := url.Parse(u); err == nil && pu.User != nil && strings.Contains(a.body, pu.User.String()) {
			t.Errorf("%q: the answer echoes its user: %s", u, a.body)
		}
	}
}

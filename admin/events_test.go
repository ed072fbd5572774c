package admin_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/storetest"
)

// TestEvents: GET /admin/v1/events lists a merchant's events in order, each
// the record it tells of; paged by after=next_after it lists the same events
// once; an empty page keeps the position; a scoped token sees its merchant's.
func TestEvents(t *testing.T) {
	e := newEnv(t, admin.Config{})
	var whole admin.EventPage
	e.getJSON("/admin/v1/events?merchant=m1", e.all, &whole)
	var types []string
	for _, ev := range whole.Events {
		types = append(types, ev.Type)
		if ev.EventID != ev.Data.RecordID || ev.OccurredAt != ev.Data.At || ev.MerchantID != storetest.M1 || ev.Data.MerchantID != storetest.M1 {
			t.Errorf("event %+v is not its record", ev)
		}
	}
	if got := strings.Join(types, ","); got != "ticket.issued,ticket.used,ticket.used,ticket.use_reversed" {
		t.Fatalf("m1's events: %s", got)
	}
	if last := whole.Events[len(whole.Events)-1].EventID; whole.NextAfter != last {
		t.Fatalf("next_after %q, want the last event %q", whole.NextAfter, last)
	}
	var records admin.RecordPage
	e.getJSON("/admin/v1/records?merchant=m1", e.all, &records)
	for i, r := range records.Records {
		if fmt.Sprint(whole.Events[i].Data) != fmt.Sprint(r) {
			t.Errorf("event %d's data %+v, record %+v", i, whole.Events[i].Data, r)
		}
	}
	var paged []admin.Event
	after := ""
	for range len(whole.Events) + 2 {
		var p admin.EventPage
		e.getJSON("/admin/v1/events?limit=1&after="+after, e.m1, &p)
		if len(p.Events) == 0 {
			if p.NextAfter != after {
				t.Fatalf("an empty page moved the position from %q to %q", after, p.NextAfter)
			}
			break
		}
		paged = append(paged, p.Events...)
		after = p.NextAfter
	}
	if fmt.Sprint(paged) != fmt.Sprint(whole.Events) {
		t.Errorf("paged by one: %+v\nwant %+v", paged, whole.Events)
	}
	// The answer of an empty page is an empty list, not null.
	a := e.get("/admin/v1/events?after="+whole.NextAfter, e.m1)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(a.body), &raw); err != nil || string(raw["events"]) != "[]" {
		t.Errorf("an empty page: %s", a.body)
	}
	// New events follow the position.
	e.w.MustUse(e.w.A, e.t1.Code, 1, "u3")
	var next admin.EventPage
	e.getJSON("/admin/v1/events?after="+whole.NextAfter, e.m1, &next)
	if len(next.Events) != 1 || next.Events[0].Type != "ticket.used" || next.Events[0].Data.RequestID != "u3" {
		t.Errorf("after a new use: %+v", next)
	}
	var m2 admin.EventPage
	e.getJSON("/admin/v1/events", e.m2, &m2)
	if len(m2.Events) != 2 || m2.Events[0].MerchantID != storetest.M2 {
		t.Errorf("m2's events: %+v", m2)
	}
}

// TestEventsErrors: the events endpoint's refusals, each with its status and
// code.
func TestEventsErrors(t *testing.T) {
	e := newEnv(t, admin.Config{})
	for _, c := range []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"no token", "GET", "/admin/v1/events?merchant=m1", "", 401, "unauthorized"},
		{"another merchant", "GET", "/admin/v1/events?merchant=m2", "M1", 403, "forbidden"},
		{"unknown merchant", "GET", "/admin/v1/events?merchant=nope", "ALL", 404, "not_found"},
		{"POST", "POST", "/admin/v1/events?merchant=m1", "ALL", 405, "method_not_allowed"},
		{"no merchant, every merchant's token", "GET", "/admin/v1/events", "ALL", 400, "invalid_parameter"},
		{"after not digits", "GET", "/admin/v1/events?after=1x", "M1", 400, "invalid_parameter"},
		{"limit 0", "GET", "/admin/v1/events?limit=0", "M1", 400, "invalid_parameter"},
		{"limit too large", "GET", "/admin/v1/events?limit=1001", "M1", 400, "invalid_parameter"},
		{"a records parameter", "GET", "/admin/v1/events?cursor=x", "M1", 400, "invalid_parameter"},
		{"after twice", "GET", "/admin/v1/events?after=1&after=2", "M1", 400, "invalid_parameter"},
	} {
		t.Run(c.name, func(t *testing.T) {
			token := strings.NewReplacer("ALL", e.all, "M1", e.m1).Replace(c.token)
			a := e.req(c.method, c.path, token, nil)
			if a.status != c.status || a.errorCode(t) != c.code {
				t.Fatalf("%s %s: %d %s, want %d %s", c.method, c.path, a.status, a.body, c.status, c.code)
			}
		})
	}
}

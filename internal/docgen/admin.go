package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/daodian/daodian/client"
)

// The admin API's examples (SPEC §10), sent to the same demo server after the
// methods' examples, so that the ledger has a history to show: the 5-times
// card used, reversed, used again and refunded; the group-buy order used and
// partly reversed.

// adminGen sends admin API requests.
type adminGen struct {
	*gen
	bin, db, base string
	// scoped sees the demo merchant only; all sees every merchant.
	scoped, all string
}

// runAdmin sends every admin example request.
func (g *gen) runAdmin(bin, db, cardID, cardCode string) {
	base := strings.TrimSuffix(g.url, "/router/rest")
	a := &adminGen{gen: g, bin: bin, db: db, base: base}
	created := a.cli("admin token create", "admin", "token", "create", "--name", "back-office", "--merchant", "demo-merchant", "--json")
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(created), &tok); err != nil {
		log.Fatalf("admin token create: %v: %s", err, created)
	}
	a.scoped = tok.Token
	a.all = a.tokenOf(a.cli("", "admin", "token", "create", "--name", "ops", "--json"))
	today := time.Now().In(time.FixedZone("GMT+8", 8*3600)).Format(time.DateOnly)

	a.do("admin ticket", a.scoped, http.MethodGet, "/admin/v1/tickets/"+cardID, "", "")
	a.do("admin records", a.scoped, http.MethodGet, "/admin/v1/records?kind=use,reversal&limit=2", "", "")
	a.do("admin statement", a.scoped, http.MethodGet, "/admin/v1/statements?date="+today, "", "")
	a.do("admin statement csv", a.scoped, http.MethodGet, "/admin/v1/statements?date="+today+"&format=csv", "", "")
	a.do("admin reconciliation", a.scoped, http.MethodPost, "/admin/v1/reconciliations?date="+today, "text/csv",
		"ticket_request_id,status,units\nu-1,used,2\nu-2,used,1\nu-5,refunded,1\nu-9,used,1\n")
	a.do("admin events", a.scoped, http.MethodGet, "/admin/v1/events?limit=3", "", "")
	a.do("admin forbidden", a.scoped, http.MethodGet, "/admin/v1/records?merchant=another", "", "")
	a.do("admin bad file", a.scoped, http.MethodPost, "/admin/v1/reconciliations?date="+today, "text/csv",
		"ticket_request_id,status\nu-1,done\n")

	a.do("admin merchants", a.all, http.MethodGet, "/admin/v1/merchants", "", "")
	a.do("admin apps", a.scoped, http.MethodGet, "/admin/v1/apps", "", "")
	newApp := a.do("admin app create", a.scoped, http.MethodPost, "/admin/v1/apps", "application/json",
		`{"name":"front-desk-2","methods":["alibaba.alsc.merchant.ext.ticketcode.use","alibaba.alsc.daodian.ticket.reserve"],"rate_limit_per_s":20}`)
	var app struct {
		AppKey string `json:"app_key"`
	}
	if err := json.Unmarshal([]byte(newApp), &app); err != nil || app.AppKey == "" {
		log.Fatalf("app create: %v: %s", err, newApp)
	}
	a.do("admin rotate", a.scoped, http.MethodPost, "/admin/v1/apps/"+app.AppKey+"/rotate-secret", "application/json", `{"grace_s":3600}`)
	a.do("admin shops", a.scoped, http.MethodGet, "/admin/v1/shops", "", "")
	a.do("admin shop add", a.scoped, http.MethodPost, "/admin/v1/shops", "application/json", `{"shop_id":"demo-shop-2","name":"二号店"}`)
	a.do("admin shop twice", a.scoped, http.MethodPost, "/admin/v1/shops", "application/json", `{"shop_id":"demo-shop-2"}`)
	rule := a.do("admin fault add", a.scoped, http.MethodPost, "/admin/v1/faults", "application/json",
		`{"app_key":"`+g.key+`","kind":"error","method":"alibaba.alsc.daodian.ticket.reserve","count":2}`)
	var r struct {
		RuleID string `json:"rule_id"`
	}
	if err := json.Unmarshal([]byte(rule), &r); err != nil || r.RuleID == "" {
		log.Fatalf("fault add: %v: %s", err, rule)
	}
	a.do("admin faults", a.scoped, http.MethodGet, "/admin/v1/faults", "", "")
	hook := a.webhooks(cardID, cardCode)
	a.do("admin overview", a.scoped, http.MethodGet, "/admin/v1/overview", "", "")
	a.do("admin fault clear", a.scoped, http.MethodDelete, "/admin/v1/faults/"+r.RuleID, "", "")
	a.do("admin requests", a.scoped, http.MethodGet, "/admin/v1/requests?limit=2", "", "")
	a.do("admin webhook remove", a.scoped, http.MethodDelete, "/admin/v1/webhooks/"+hook, "", "")
}

// receiverAddr is where the webhook examples' receiver listens when it can
// (the address docs/operations.md's example uses), so that the examples'
// URLs stay the same from one run to the next.
const receiverAddr = "127.0.0.1:18097"

// webhooks adds a webhook of the demo merchant to a receiver this program
// runs, which refuses its first delivery (a back office restarting) and
// takes the rest; makes a use of the card and its reversal, waits until the
// demo server has delivered both, and records the webhook endpoints'
// examples. It returns the webhook's id.
func (a *adminGen) webhooks(cardID, cardCode string) string {
	ln, err := net.Listen("tcp", receiverAddr)
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		log.Fatal(err)
	}
	var calls atomic.Int32
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 1 {
			http.Error(w, "back office restarting", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	added := a.do("admin webhook add", a.scoped, http.MethodPost, "/admin/v1/webhooks", "application/json",
		`{"url":"http://`+ln.Addr().String()+`/daodian/events","types":["ticket.used","ticket.use_reversed"]}`)
	var wh struct {
		WebhookID string `json:"webhook_id"`
	}
	if err := json.Unmarshal([]byte(added), &wh); err != nil || wh.WebhookID == "" {
		log.Fatalf("webhook add: %v: %s", err, added)
	}
	a.do("admin webhook bad url", a.scoped, http.MethodPost, "/admin/v1/webhooks", "application/json", `{"url":"https://pos:pa55@backoffice.example/daodian"}`)

	c := client.New(a.url, a.key, a.secret)
	use, err := c.Call(context.Background(), "alibaba.alsc.merchant.ext.ticketcode.use",
		map[string]string{"use_request": `{"ticket_code":"` + cardCode + `","shop_id":"demo-shop","ticket_request_id":"u-6"}`})
	if err != nil {
		log.Fatal(err)
	}
	trans := regexp.MustCompile(`"ticket_trans_id":"(\d+)"`).FindStringSubmatch(string(use))
	if trans == nil {
		log.Fatalf("use: %s", use)
	}
	if _, err := c.Call(context.Background(), "alibaba.alsc.daodian.ticket.reserve",
		map[string]string{"ticket_reverse_top_request": `{"request_id":"r-6","ticket_id":"` + cardID + `","ticket_use_trans_id":"` + trans[1] + `"}`}); err != nil {
		log.Fatal(err)
	}
	// Both delivered: the use refused once, retried, then the reversal.
	var page struct {
		Deliveries []struct {
			EventID string `json:"event_id"`
			Outcome string `json:"outcome"`
		} `json:"deliveries"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b := a.get(a.scoped, "/admin/v1/webhooks/"+wh.WebhookID+"/deliveries")
		if err := json.Unmarshal(b, &page); err != nil {
			log.Fatalf("deliveries: %v: %s", err, b)
		}
		if len(page.Deliveries) == 3 {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("the demo server did not deliver the webhook's events: %s", b)
		}
	}
	a.do("admin webhooks", a.scoped, http.MethodGet, "/admin/v1/webhooks", "", "")
	a.do("admin deliveries", a.scoped, http.MethodGet, "/admin/v1/webhooks/"+wh.WebhookID+"/deliveries", "", "")
	used := page.Deliveries[len(page.Deliveries)-1].EventID
	a.do("admin redeliver", a.scoped, http.MethodPost, "/admin/v1/redeliveries", "application/json",
		`{"event_id":"`+used+`","webhook_id":"`+wh.WebhookID+`"}`)
	a.do("admin redeliver unknown", a.scoped, http.MethodPost, "/admin/v1/redeliveries", "application/json", `{"event_id":"2100000000000999999"}`)
	return wh.WebhookID
}

// get sends a GET with the token and returns the answer, recording nothing.
func (a *adminGen) get(token, path string) []byte {
	req, err := http.NewRequest(http.MethodGet, a.base+path, nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return readAll(http.DefaultClient.Do(req))
}

func (a *adminGen) tokenOf(out string) string {
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Token == "" {
		log.Fatalf("admin token create: %v: %s", err, out)
	}
	return tok.Token
}

// cli runs a daodian command on the demo's database and records it under
// name (unless name is empty) with its output.
func (a *adminGen) cli(name string, args ...string) string {
	out, err := exec.Command(a.bin, append(args, "--db", a.db)...).Output()
	if err != nil {
		log.Fatalf("daodian %s: %v", strings.Join(args, " "), err)
	}
	if name != "" {
		a.examples[name] = example{curl: "daodian " + strings.Join(args, " "), body: indentJSON(out), lang: "json"}
	}
	return string(out)
}

// do sends an admin request with the token and a body of type ctype, records
// it under name as curl and the answer, and returns the answer.
func (a *adminGen) do(name, token, method, path, ctype, body string) string {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	b := readAll(resp, err)
	var cb strings.Builder
	fmt.Fprintf(&cb, "curl -s")
	if method != http.MethodGet && !(method == http.MethodPost && body != "") {
		fmt.Fprintf(&cb, " -X %s", method)
	}
	fmt.Fprintf(&cb, " -H 'Authorization: Bearer %s'", token)
	switch {
	case ctype == "text/csv":
		fmt.Fprintf(&cb, " \\\n  -H 'Content-Type: text/csv' --data-binary @pos.csv")
	case body != "":
		fmt.Fprintf(&cb, " \\\n  -H 'Content-Type: application/json' -d '%s'", body)
	}
	fmt.Fprintf(&cb, " \\\n  '%s%s'", "http://127.0.0.1:8080", path)
	lang, shown := "json", string(b)
	switch {
	case strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv"):
		lang = "csv"
		shown = strings.TrimSuffix(shown, "\n")
	case resp.StatusCode >= 400:
		shown = strings.TrimSuffix(shown, "\n") // errors are shown as sent: one line
	case name == "admin overview":
		shown = shortTraffic(b)
	default:
		shown = indentJSON(b)
	}
	a.examples[name] = example{curl: cb.String(), body: shown, lang: lang}
	if body != "" && ctype == "text/csv" {
		a.examples[name+" file"] = example{body: strings.TrimSuffix(body, "\n"), lang: "csv"}
	}
	return string(b)
}

// shortTraffic lays out an overview with its traffic cut to its last two
// minutes (of 60), for the page's length; the template says so.
func shortTraffic(b []byte) string {
	var o map[string]json.RawMessage
	var traffic []json.RawMessage
	if err := json.Unmarshal(b, &o); err != nil {
		log.Fatalf("overview: %v: %s", err, b)
	}
	if err := json.Unmarshal(o["traffic"], &traffic); err != nil || len(traffic) != 60 {
		log.Fatalf("overview's traffic: %v: %s", err, o["traffic"])
	}
	// Re-encoded in the answer's order of members.
	var out bytes.Buffer
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		log.Fatal(err)
	}
	out.WriteString("{")
	for first := true; dec.More(); first = false {
		k, err := dec.Token()
		if err != nil {
			log.Fatal(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			log.Fatal(err)
		}
		if k == "traffic" {
			v, _ = json.Marshal(traffic[58:])
		}
		if !first {
			out.WriteString(",")
		}
		key, _ := json.Marshal(k)
		out.Write(key)
		out.WriteString(":")
		out.Write(v)
	}
	out.WriteString("}")
	return indentJSON(out.Bytes())
}

// indentJSON lays out JSON for reading.
func indentJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, bytes.TrimSpace(b), "", "  "); err != nil {
		log.Fatalf("answer is not JSON: %s", b)
	}
	return out.String()
}

package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
)

// The webhooks page (SPEC §10, page 6): the merchant's endpoints with how far
// behind each is, the recent delivery attempts of one, a redelivery, adding
// (the secret shown once, on the page answering the form) and removing. All
// through the admin API's Go methods, under the session's token.

// deliveriesShown is how many attempts the page shows at once.
const deliveriesShown = 50

// typeChoice is an event type in the add form's list.
type typeChoice struct {
	Name, Label string
}

func typeChoices() []typeChoice {
	out := make([]typeChoice, len(daodian.EventTypes))
	for i, t := range daodian.EventTypes {
		out[i] = typeChoice{Name: string(t), Label: eventLabel(string(t))}
	}
	return out
}

// deliveryRow is an attempt as the page lists it.
type deliveryRow struct {
	admin.DeliveryAttempt
	// Redeliverable: the webhook has gone past the event, so it can be sent
	// again (an event not reached yet is delivered in turn).
	Redeliverable bool
}

type webhooksData struct {
	L     admin.WebhookList
	Types []typeChoice
	// Sel is the webhook whose deliveries are shown, if any.
	Sel    *admin.WebhookState
	Rows   []deliveryRow
	Failed bool
	// Older is the link to the attempts before these ("" for none).
	Older string
	Error string
}

func (c *Console) webhooks(p *page) {
	q := p.r.URL.Query()
	l, aerr := c.api.Webhooks(p.r.Context(), p.who, p.merchant)
	if aerr != nil {
		p.fail(aerr)
		return
	}
	d := webhooksData{L: l, Types: typeChoices(), Failed: q.Get("failed") == "1"}
	sel := q.Get("webhook")
	for i := range l.Webhooks {
		if w := &l.Webhooks[i]; w.WebhookID == sel || (sel == "" && i == 0) {
			d.Sel = w
		}
	}
	if sel != "" && d.Sel == nil {
		d.Error = "No such webhook " + sel + " among this merchant's."
		p.render("webhooks", "Webhooks", http.StatusNotFound, d)
		return
	}
	if d.Sel != nil {
		page, aerr := c.api.Deliveries(p.r.Context(), p.who, admin.DeliveriesQuery{Webhook: d.Sel.WebhookID, Merchant: p.merchant,
			Failed: d.Failed, Limit: deliveriesShown, Before: q.Get("before")})
		if aerr != nil {
			if aerr.Status() >= 500 || aerr.Status() == http.StatusUnauthorized {
				p.fail(aerr)
				return
			}
			d.Error = aerr.Message()
			p.render("webhooks", "Webhooks", aerr.Status(), d)
			return
		}
		for _, a := range page.Deliveries {
			d.Rows = append(d.Rows, deliveryRow{DeliveryAttempt: a, Redeliverable: !daodian.IDAfter(a.EventID, d.Sel.Cursor)})
		}
		if page.NextBefore != "" {
			failed := ""
			if d.Failed {
				failed = "1"
			}
			d.Older = p.link("webhooks", "webhook", d.Sel.WebhookID, "failed", failed, "before", page.NextBefore)
		}
	}
	p.render("webhooks", "Webhooks", http.StatusOK, d)
}

type webhookSecretData struct {
	W admin.WebhookWithSecret
}

// addWebhook adds a webhook and answers its secret on this page alone: not
// in a redirect's URL, not in the session, not in a log.
func (c *Console) addWebhook(p *page) {
	f := p.r.PostForm
	merchant := f.Get("merchant")
	if p.who.Token.MerchantID != "" {
		merchant = ""
	}
	w, aerr := c.api.AddWebhook(p.r.Context(), p.who, admin.NewWebhook{Merchant: merchant, URL: strings.TrimSpace(f.Get("url")), Types: f["types"]})
	if aerr != nil {
		p.formFailed(aerr, "webhooks")
		return
	}
	p.merchant = w.MerchantID
	p.render("webhooksecret", "New webhook", http.StatusOK, webhookSecretData{W: w})
}

func (c *Console) removeWebhook(p *page) {
	id := p.r.PostForm.Get("webhook_id")
	if _, aerr := c.api.RemoveWebhook(p.r.Context(), p.who, id, p.merchant); aerr != nil {
		p.formFailed(aerr, "webhooks")
		return
	}
	p.redirect(p.link("webhooks"), &flash{Text: "Webhook " + id + " removed, with its delivery attempts; every server stops delivering to it within a second."})
}

func (c *Console) redeliver(p *page) {
	f := p.r.PostForm
	hook := f.Get("webhook_id")
	r, aerr := c.api.Redeliver(p.r.Context(), p.who, admin.NewRedelivery{EventID: strings.TrimSpace(f.Get("event_id")), WebhookID: hook, Merchant: p.merchant})
	if aerr != nil {
		p.formFailed(aerr, "webhooks", "webhook", hook)
		return
	}
	p.redirect(p.link("webhooks", "webhook", hook), &flash{Text: "Event " + r.EventID + " queued for redelivery to webhook " +
		strings.Join(r.WebhookIDs, ", ") + ": it is sent within a second, before the webhook's next events."})
}

// eventLabel names an event type with its kind of record as merchants know
// it (ticket.used 核销).
func eventLabel(t string) string {
	k := string(daodian.EventType(t).Kind())
	if l, ok := kindLabels[k]; ok {
		zh, _, _ := strings.Cut(l, " ")
		return t + " " + zh
	}
	return t
}

// outcomeLabels name the outcomes of delivery attempts.
var outcomeLabels = map[string]string{
	string(daodian.Delivered): "delivered 已送达",
	string(daodian.Retrying):  "retry 重试",
	string(daodian.Failed):    "failed 失败",
}

func outcomeLabel(o string) string {
	if l, ok := outcomeLabels[o]; ok {
		return l
	}
	return o
}

// lagText says how long ago an event waiting for its delivery was committed.
func lagText(s float64) string {
	switch {
	case s <= 0:
		return "0 s"
	case s < 10:
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	case s < 60:
		return strconv.Itoa(int(s)) + " s"
	case s < 3600:
		return strconv.Itoa(int(s)/60) + " min " + strconv.Itoa(int(s)%60) + " s"
	case s < 86400:
		return strconv.Itoa(int(s)/3600) + " h " + strconv.Itoa(int(s)%3600/60) + " min"
	}
	return strconv.Itoa(int(s)/86400) + " d " + strconv.Itoa(int(s)%86400/3600) + " h"
}

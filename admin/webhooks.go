package admin

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/top"
)

// Webhook is a webhook as `daodian webhook list` shows it: never its secret,
// which is shown once, when the webhook is added.
type Webhook struct {
	WebhookID  string `json:"webhook_id"`
	MerchantID string `json:"merchant_id"`
	URL        string `json:"url"`
	// Types are the event types delivered; [] for every type.
	Types     []string `json:"types"`
	CreatedAt string   `json:"created_at"`
	// Cursor is the last event_id the webhook is done with (delivered or
	// failed); "" before its first.
	Cursor string `json:"cursor"`
	// Retrying is the event held back by failed attempts, if any.
	Retrying *Retrying `json:"retrying,omitempty"`
}

// Retrying is the state of an event whose attempts have failed so far.
type Retrying struct {
	EventID        string `json:"event_id"`
	Attempts       int    `json:"attempts"`
	FirstAttemptAt string `json:"first_attempt_at"`
	NextAttemptAt  string `json:"next_attempt_at"`
}

// WebhookOf renders a webhook.
func WebhookOf(w *daodian.Webhook) Webhook {
	out := Webhook{WebhookID: w.ID, MerchantID: w.MerchantID, URL: w.URL, Types: []string{}, CreatedAt: top.FormatTime(w.CreatedAt), Cursor: w.Cursor}
	for _, t := range w.Types {
		out.Types = append(out.Types, string(t))
	}
	if h := w.Head; h.EventID != "" && daodian.IDAfter(h.EventID, w.Cursor) {
		out.Retrying = &Retrying{EventID: h.EventID, Attempts: h.Attempts, FirstAttemptAt: top.FormatTime(h.FirstAt), NextAttemptAt: top.FormatTime(h.NextAt)}
	}
	return out
}

// DeliveryAttempt is one attempt of a delivery as `daodian webhook
// deliveries` shows it. At is yyyy-MM-dd HH:mm:ss in GMT+8.
type DeliveryAttempt struct {
	AttemptID  string  `json:"attempt_id"`
	EventID    string  `json:"event_id"`
	Type       string  `json:"type"`
	Attempt    int     `json:"attempt"`
	At         string  `json:"at"`
	Outcome    string  `json:"outcome"`
	HTTPStatus int     `json:"http_status"`
	LatencyMS  float64 `json:"latency_ms"`
	Error      string  `json:"error"`
	Redelivery bool    `json:"redelivery"`
}

// DeliveryAttemptOf renders an attempt.
func DeliveryAttemptOf(a *daodian.DeliveryAttempt) DeliveryAttempt {
	return DeliveryAttempt{
		AttemptID: a.ID, EventID: a.EventID, Type: string(a.EventType), Attempt: a.Attempt, At: top.FormatTime(a.At),
		Outcome: string(a.Outcome), HTTPStatus: a.HTTPStatus, LatencyMS: math.Round(float64(a.Latency.Microseconds())) / 1000,
		Error: a.Error, Redelivery: a.Redelivery,
	}
}

// The webhooks of SPEC §9 through the admin API, as `daodian webhook`
// manages them, under the scope rules of the other endpoints: a webhook is
// its merchant's; another merchant's webhook or event, named by id, is
// answered exactly like one that does not exist.

const msgWebhookNotFound = "no such webhook"

// WebhookWithSecret is a webhook and its signing secret: the answer to adding
// it, the one time the secret is shown (`daodian webhook add --json` prints
// the same).
type WebhookWithSecret struct {
	Webhook
	Secret string `json:"secret"`
}

// WebhookState is a webhook as the admin API lists it: as `daodian webhook
// list --json` shows it, and how far behind it is.
type WebhookState struct {
	Webhook
	// LagS is the age in seconds of the oldest event the webhook has yet to
	// deliver (PendingEventID); 0 when it is up to date.
	LagS float64 `json:"lag_s"`
	// PendingEventID is the oldest event the webhook has yet to deliver: the
	// one being delivered or retried; absent when it is up to date.
	PendingEventID string `json:"pending_event_id,omitempty"`
}

// lagOf is the age of a pending event at now, in seconds to the millisecond;
// 0 for none (or one stamped ahead of this server's clock).
func lagOf(pending *daodian.Record, now time.Time) float64 {
	if pending == nil {
		return 0
	}
	return max(0, math.Round(float64(now.Sub(pending.At).Milliseconds()))/1000)
}

func (a *API) webhookStateOf(st *daodian.WebhookStatus, now time.Time) WebhookState {
	out := WebhookState{Webhook: WebhookOf(&st.Webhook), LagS: lagOf(st.Pending, now)}
	if st.Pending != nil {
		out.PendingEventID = st.Pending.ID
	}
	return out
}

// WebhookList is `{"webhooks": […]}` (a store holds at most
// daodian.MaxWebhooks).
type WebhookList struct {
	Webhooks []WebhookState `json:"webhooks"`
}

// Webhooks lists the webhooks of a merchant (under the caller's scope; "" for
// a token of every merchant: every webhook), never their secrets, each with
// its lag read from the store.
func (a *API) Webhooks(ctx context.Context, who Caller, merchant string) (WebhookList, *Error) {
	m, aerr := scopeMerchant(who.Token, merchant, false)
	if aerr != nil {
		return WebhookList{}, aerr
	}
	var sts []daodian.WebhookStatus
	var err error
	if m != "" {
		_, err = a.ledger.Merchant(ctx, m)
	}
	if err == nil {
		sts, err = a.ledger.WebhookStatuses(ctx, m, "")
	}
	if err != nil {
		return WebhookList{}, a.errorOf(err, who.RequestID, msgMerchantNotFound)
	}
	now := a.ledger.Now()
	out := WebhookList{Webhooks: make([]WebhookState, len(sts))}
	for i := range sts {
		out.Webhooks[i] = a.webhookStateOf(&sts[i], now)
	}
	return out, nil
}

func (a *API) listWebhooks(c *call, _ string) {
	q, ok := parse(c, false)
	if !ok {
		return
	}
	out, err := a.Webhooks(c.r.Context(), c.caller(), q.merchant)
	answer(c, http.StatusOK, out, err)
}

// Webhook answers one webhook the caller sees (of merchant, when it names
// one), with its lag; another merchant's is 404 like a missing one.
func (a *API) Webhook(ctx context.Context, who Caller, id, merchant string) (WebhookState, *Error) {
	m, aerr := scopeMerchant(who.Token, merchant, false)
	if aerr != nil {
		return WebhookState{}, aerr
	}
	sts, err := a.ledger.WebhookStatuses(ctx, m, id)
	if err != nil {
		return WebhookState{}, a.errorOf(err, who.RequestID, msgWebhookNotFound)
	}
	return a.webhookStateOf(&sts[0], a.ledger.Now()), nil
}

func (a *API) getWebhook(c *call, id string) {
	q, ok := parse(c, false)
	if !ok {
		return
	}
	out, err := a.Webhook(c.r.Context(), c.caller(), id, q.merchant)
	answer(c, http.StatusOK, out, err)
}

// visibleWebhook returns the webhook with the id, without its secret, if the
// caller sees it (of merchant, when it names one), else a 404 exactly like a
// missing webhook's.
func (a *API) visibleWebhook(ctx context.Context, who Caller, id, merchant string) (*daodian.Webhook, *Error) {
	m, aerr := scopeMerchant(who.Token, merchant, false)
	if aerr != nil {
		return nil, aerr
	}
	w, err := a.ledger.Webhook(ctx, id)
	if err == nil && m != "" && w.MerchantID != m {
		err = daodian.ErrNotFound
	}
	if err != nil {
		return nil, a.errorOf(err, who.RequestID, msgWebhookNotFound)
	}
	return w, nil
}

// NewWebhook is the body of POST /admin/v1/webhooks: the flags of `daodian
// webhook add`.
type NewWebhook struct {
	Merchant string `json:"merchant"`
	URL      string `json:"url"`
	// Types are the event types to deliver; none: every type.
	Types []string `json:"types"`
}

// AddWebhook registers a webhook for a merchant, which must exist, and
// returns it with its signing secret, shown nowhere else. The URL is checked
// as `daodian webhook add` checks it (daodian.CheckWebhookURL); where it may
// point is checked on each delivery, on the address dialled (package
// webhook), for every webhook alike.
func (a *API) AddWebhook(ctx context.Context, who Caller, n NewWebhook) (WebhookWithSecret, *Error) {
	m, aerr := scopeMerchant(who.Token, n.Merchant, true)
	if aerr != nil {
		return WebhookWithSecret{}, aerr
	}
	types := make([]daodian.EventType, len(n.Types))
	for i, t := range n.Types {
		types[i] = daodian.EventType(t)
	}
	wh, err := a.ledger.AddWebhook(ctx, daodian.WebhookSpec{MerchantID: m, URL: n.URL, Types: types})
	if errors.Is(err, daodian.ErrTooManyWebhooks) {
		return WebhookWithSecret{}, &apiError{http.StatusConflict, codeConflict, err.Error()}
	}
	if err != nil {
		return WebhookWithSecret{}, a.errorOf(err, who.RequestID, msgMerchantNotFound)
	}
	return WebhookWithSecret{Webhook: WebhookOf(wh), Secret: wh.Secret}, nil
}

func (a *API) addWebhook(c *call, _ string) { posted(c, http.StatusCreated, a.AddWebhook) }

// RemovedWebhook is `{"webhook_id", "removed": true}`.
type RemovedWebhook struct {
	WebhookID string `json:"webhook_id"`
	Removed   bool   `json:"removed"`
}

// RemoveWebhook deletes a webhook the caller sees, with its delivery attempts
// and pending redeliveries; every server stops delivering to it within a poll
// (webhook.DefaultPoll).
func (a *API) RemoveWebhook(ctx context.Context, who Caller, id, merchant string) (RemovedWebhook, *Error) {
	if _, aerr := a.visibleWebhook(ctx, who, id, merchant); aerr != nil {
		return RemovedWebhook{}, aerr
	}
	if err := a.ledger.RemoveWebhook(ctx, id); err != nil {
		return RemovedWebhook{}, a.errorOf(err, who.RequestID, msgWebhookNotFound)
	}
	return RemovedWebhook{WebhookID: id, Removed: true}, nil
}

func (a *API) removeWebhook(c *call, id string) {
	q, ok := parse(c, false)
	if !ok {
		return
	}
	out, err := a.RemoveWebhook(c.r.Context(), c.caller(), id, q.merchant)
	answer(c, http.StatusOK, out, err)
}

// DeliveriesQuery selects a webhook's delivery attempts, newest first.
type DeliveriesQuery struct {
	Webhook, Merchant string
	// Failed keeps the attempts that marked their event failed.
	Failed bool
	// Limit: 1 to daodian.MaxAttemptsPage; 0: daodian.DefaultAttemptsPage.
	Limit int
	// Before, if set, keeps the attempts older than that attempt_id.
	Before string
}

// DeliveryPage is a page of a webhook's delivery attempts, newest first, and
// the attempt_id to pass as before for older ones ("" when the page is not
// full: there are none).
type DeliveryPage struct {
	WebhookID  string            `json:"webhook_id"`
	Deliveries []DeliveryAttempt `json:"deliveries"`
	NextBefore string            `json:"next_before"`
}

// Deliveries lists the delivery attempts of a webhook the caller sees, as
// `daodian webhook deliveries`.
func (a *API) Deliveries(ctx context.Context, who Caller, q DeliveriesQuery) (DeliveryPage, *Error) {
	if _, aerr := a.visibleWebhook(ctx, who, q.Webhook, q.Merchant); aerr != nil {
		return DeliveryPage{}, aerr
	}
	if q.Limit == 0 {
		q.Limit = daodian.DefaultAttemptsPage
	}
	as, err := a.ledger.DeliveryAttempts(ctx, daodian.AttemptQuery{WebhookID: q.Webhook, FailedOnly: q.Failed, BeforeID: q.Before, Limit: q.Limit})
	if err != nil {
		return DeliveryPage{}, a.errorOf(err, who.RequestID, msgWebhookNotFound)
	}
	out := DeliveryPage{WebhookID: q.Webhook, Deliveries: make([]DeliveryAttempt, len(as))}
	for i := range as {
		out.Deliveries[i] = DeliveryAttemptOf(&as[i])
	}
	if len(as) == q.Limit {
		out.NextBefore = as[len(as)-1].ID
	}
	return out, nil
}

func (a *API) deliveries(c *call, id string) {
	q, ok := parse(c, false, "failed", "limit", "before")
	if !ok {
		return
	}
	dq := DeliveriesQuery{Webhook: id, Merchant: q.merchant, Before: q.Get("before")}
	switch q.Get("failed") {
	case "", "false":
	case "true":
		dq.Failed = true
	default:
		c.fail(errInvalid("failed must be true or false"))
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > daodian.MaxAttemptsPage {
			c.fail(errInvalid("limit must be a whole number from 1 to " + strconv.Itoa(daodian.MaxAttemptsPage)))
			return
		}
		dq.Limit = n
	}
	out, err := a.Deliveries(c.r.Context(), c.caller(), dq)
	answer(c, http.StatusOK, out, err)
}

// NewRedelivery is the body of POST /admin/v1/redeliveries: the flags of
// `daodian webhook redeliver`.
type NewRedelivery struct {
	EventID string `json:"event_id"`
	// WebhookID, if set, is the one webhook to send the event to again; else
	// every webhook of the event's merchant that receives its type and has
	// gone past it.
	WebhookID string `json:"webhook_id"`
	Merchant  string `json:"merchant"`
}

// Redelivery is the answer to a redelivery: the event and the webhooks it is
// queued for.
type Redelivery struct {
	EventID    string   `json:"event_id"`
	WebhookIDs []string `json:"webhook_ids"`
}

// Redeliver queues an event of the caller's merchant (of n.Merchant, when it
// names one) to be sent again, before the webhooks' next events; an event or
// a webhook of another merchant is 404 like a missing one, and an event that
// cannot be sent again (the webhook has not reached it yet, does not receive
// its type; too many redeliveries waiting) is 409, saying why.
func (a *API) Redeliver(ctx context.Context, who Caller, n NewRedelivery) (Redelivery, *Error) {
	m, aerr := scopeMerchant(who.Token, n.Merchant, false)
	if aerr != nil {
		return Redelivery{}, aerr
	}
	if n.EventID == "" {
		return Redelivery{}, errInvalid("event_id is required")
	}
	queued, err := a.ledger.RedeliverFor(ctx, m, n.EventID, n.WebhookID)
	if errors.Is(err, daodian.ErrNotRedeliverable) {
		return Redelivery{}, &apiError{http.StatusConflict, codeConflict, err.Error()}
	}
	if err != nil {
		return Redelivery{}, a.errorOf(err, who.RequestID, "no such event")
	}
	return Redelivery{EventID: n.EventID, WebhookIDs: queued}, nil
}

func (a *API) redeliver(c *call, _ string) { posted(c, http.StatusAccepted, a.Redeliver) }

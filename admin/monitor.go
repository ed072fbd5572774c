package admin

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/top"
)

// What the admin API shows of the running server (SPEC §10): the last
// requests of each app, and the overview of a merchant's day. Both come from
// this server's memory (gateway.RequestLog): with several servers on one
// store, each shows what it answered.

// Bounds of the requests endpoint.
const (
	// DefaultRequests is how many requests a listing holds unless it asks.
	DefaultRequests = 50
	// MaxRequests bounds a listing.
	MaxRequests = 1000
)

// LoggedRequest is a request of the request log.
type LoggedRequest struct {
	At        string  `json:"at"` // yyyy-MM-dd HH:mm:ss.SSS, GMT+8
	RequestID string  `json:"request_id"`
	AppKey    string  `json:"app_key"`
	Method    string  `json:"method"`
	Outcome   string  `json:"outcome"`
	LatencyMS float64 `json:"latency_ms"`
	// Params are the parameters as sent, without sign and with credentials
	// replaced by "[removed]".
	Params          map[string]string `json:"params"`
	ParamsTruncated bool              `json:"params_truncated,omitempty"`
	Answer          string            `json:"answer"`
	AnswerTruncated bool              `json:"answer_truncated,omitempty"`
	// CodesMasked is set when ticket codes are masked: the app is bound to
	// merchants the caller does not see as well.
	CodesMasked bool `json:"ticket_codes_masked,omitempty"`
}

// RequestApp is an app of the request log.
type RequestApp struct {
	AppKey    string   `json:"app_key"`
	Merchants []string `json:"merchants"`
	// RequestsTotal counts the app's requests since this server started
	// logging it.
	RequestsTotal uint64 `json:"requests_total"`
}

// RequestList is `{"apps": […], "requests": […]}`: the apps of the log the
// caller sees, and their last requests, newest first. Log is false when this
// server keeps no request log.
type RequestList struct {
	Log      bool            `json:"request_log"`
	Apps     []RequestApp    `json:"apps"`
	Requests []LoggedRequest `json:"requests"`
}

// msTime is the time of a logged request: to the millisecond, since several
// requests of one POS fall in one second.
const msTime = "2006-01-02 15:04:05.000"

// Requests lists the last requests of the apps the caller sees (bound to its
// merchant, or to merchant when it names one), of appKey alone when set, at
// most limit (DefaultRequests when 0), newest first. An app the caller does
// not see has, to it, no requests. Ticket codes are masked unless the caller
// sees every merchant of the request's app.
func (a *API) Requests(ctx context.Context, who Caller, merchant, appKey string, limit int) (RequestList, *Error) {
	m, aerr := scopeMerchant(who.Token, merchant, false)
	if aerr != nil {
		return RequestList{}, aerr
	}
	if limit == 0 {
		limit = DefaultRequests
	}
	out := RequestList{Log: a.cfg.RequestLog != nil, Apps: []RequestApp{}, Requests: []LoggedRequest{}}
	if a.cfg.RequestLog == nil {
		return out, nil
	}
	// One app's requests, and whether its codes are masked to the caller.
	type logged struct {
		r    *gateway.LoggedRequest
		mask bool
	}
	var all []logged
	for _, la := range a.cfg.RequestLog.Apps() {
		if !seesApp(who.Token, la.Merchants) || (m != "" && !slices.Contains(la.Merchants, m)) {
			continue
		}
		out.Apps = append(out.Apps, RequestApp{AppKey: la.Key, Merchants: la.Merchants, RequestsTotal: la.Requests})
		if appKey != "" && la.Key != appKey {
			continue
		}
		mask := !seesAll(who.Token, la.Merchants)
		rs := a.cfg.RequestLog.Requests(la.Key)
		for i := range rs {
			all = append(all, logged{&rs[i], mask})
		}
	}
	// Newest first across apps: times may tie, the log's sequence does not.
	slices.SortFunc(all, func(x, y logged) int { return cmp.Compare(y.r.Seq, x.r.Seq) })
	for _, l := range all[:min(len(all), limit)] {
		out.Requests = append(out.Requests, loggedRequestOf(l.r, l.mask))
	}
	return out, nil
}

func loggedRequestOf(r *gateway.LoggedRequest, mask bool) LoggedRequest {
	out := LoggedRequest{
		At: r.At.In(top.CST).Format(msTime), RequestID: r.TraceID, AppKey: r.AppKey, Method: r.Method, Outcome: r.Outcome,
		LatencyMS: float64(r.Latency.Microseconds()) / 1000, Params: make(map[string]string, len(r.Params)),
		ParamsTruncated: r.ParamsTruncated, Answer: r.Answer, AnswerTruncated: r.AnswerTruncated, CodesMasked: mask,
	}
	for _, p := range r.Params {
		v := p.Value
		if mask {
			v = MaskCodes(v)
		}
		out.Params[p.Name] = v
	}
	if mask {
		out.Answer = MaskCodes(out.Answer)
	}
	return out
}

// MaskCodes masks every ticket code in s: a run of exactly 12 digits keeps
// its last 4 (********4139). Ids (19 digits) and other numbers are left.
func MaskCodes(s string) string {
	var b []byte
	run := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			run++
			continue
		}
		if run == 12 {
			if b == nil {
				b = []byte(s)
			}
			for j := i - 12; j < i-4; j++ {
				b[j] = '*'
			}
		}
		run = 0
	}
	if b == nil {
		return s
	}
	return string(b)
}

func (a *API) listRequests(c *call, _ string) {
	q, ok := parse(c, false, "app_key", "limit")
	if !ok {
		return
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxRequests {
			c.fail(errInvalid("limit must be a whole number from 1 to " + strconv.Itoa(MaxRequests)))
			return
		}
		limit = n
	}
	out, err := a.Requests(c.r.Context(), c.caller(), q.merchant, q.Get("app_key"), limit)
	answer(c, http.StatusOK, out, err)
}

// TrafficMinute is one minute of a merchant's requests.
type TrafficMinute struct {
	Minute   string  `json:"minute"` // yyyy-MM-dd HH:mm, GMT+8
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	P99MS    float64 `json:"p99_ms"`
}

// Overview is a merchant's day at a glance: today's statement per shop, the
// last hour of its apps' requests minute by minute (absent when this server
// keeps no request log), the fault rules armed for its apps, and how far
// behind its webhooks are.
type Overview struct {
	MerchantID string          `json:"merchant_id"`
	Date       string          `json:"date"`
	Today      Statement       `json:"today"`
	Traffic    []TrafficMinute `json:"traffic,omitempty"`
	Faults     []FaultRule     `json:"faults"`
	// FaultInjection is false when this server ignores fault rules.
	FaultInjection bool `json:"fault_injection"`
	// Webhooks is how far behind the merchant's webhooks are.
	Webhooks WebhookLag `json:"webhooks"`
}

// WebhookLag is how far behind a merchant's webhooks are. It is read from
// the store — what every server of the store has delivered — for this
// merchant's webhooks alone: the deliverer's own lag (the metric
// daodian_webhook_lag_seconds) spans every merchant's webhooks that this
// server delivers, which a merchant's token must not see.
type WebhookLag struct {
	// Webhooks counts the merchant's webhooks.
	Webhooks int `json:"webhooks"`
	// Retrying counts those whose next event has failed attempts.
	Retrying int `json:"retrying"`
	// LagS is the age in seconds of the oldest event a webhook of the
	// merchant has yet to deliver; 0 when every one is up to date.
	LagS float64 `json:"lag_s"`
	// OldestEventID is that event; absent when every webhook is up to date.
	OldestEventID string `json:"oldest_event_id,omitempty"`
}

// webhookLag sums up the merchant's webhooks.
func (a *API) webhookLag(ctx context.Context, who Caller, m string) (WebhookLag, *Error) {
	sts, err := a.ledger.WebhookStatuses(ctx, m, "")
	if err != nil {
		return WebhookLag{}, a.errorOf(err, who.RequestID, msgMerchantNotFound)
	}
	now := a.ledger.Now()
	out := WebhookLag{Webhooks: len(sts)}
	for i := range sts {
		st := a.webhookStateOf(&sts[i], now)
		if st.Retrying != nil {
			out.Retrying++
		}
		if st.PendingEventID != "" && (out.OldestEventID == "" || st.LagS > out.LagS) {
			out.LagS, out.OldestEventID = st.LagS, st.PendingEventID
		}
	}
	return out, nil
}

// Overview answers a merchant's overview (a token of every merchant names
// one).
func (a *API) Overview(ctx context.Context, who Caller, merchant string) (Overview, *Error) {
	m, aerr := scopeMerchant(who.Token, merchant, true)
	if aerr != nil {
		return Overview{}, aerr
	}
	now := a.ledger.Now()
	date := now.In(top.CST).Format(time.DateOnly)
	st, err := a.ledger.Statement(ctx, m, date, "")
	if err != nil {
		return Overview{}, a.errorOf(err, who.RequestID, msgMerchantNotFound)
	}
	faults, aerr := a.Faults(ctx, who, m, "")
	if aerr != nil {
		return Overview{}, aerr
	}
	hooks, aerr := a.webhookLag(ctx, who, m)
	if aerr != nil {
		return Overview{}, aerr
	}
	out := Overview{MerchantID: m, Date: date, Today: StatementOf(st), Faults: faults.Rules, FaultInjection: faults.Injection, Webhooks: hooks}
	if log := a.cfg.RequestLog; log != nil {
		minutes := log.Traffic(func(_ string, merchants []string) bool { return slices.Contains(merchants, m) })
		out.Traffic = make([]TrafficMinute, len(minutes))
		for i, t := range minutes {
			out.Traffic[i] = TrafficMinute{Minute: t.Start.In(top.CST).Format("2006-01-02 15:04"), Requests: t.Requests,
				Errors: t.Errors, P99MS: float64(t.P99.Microseconds()) / 1000}
		}
	}
	return out, nil
}

func (a *API) overview(c *call, _ string) {
	q, ok := parse(c, true)
	if !ok {
		return
	}
	out, err := a.Overview(c.r.Context(), c.caller(), q.merchant)
	answer(c, http.StatusOK, out, err)
}

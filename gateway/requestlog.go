package gateway

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
)

// The request log (SPEC §10, the console's requests page) keeps, in memory, the
// last requests of each app this process answered — what an integrator needs to
// see what their POS actually sent — and, for the overview's charts, the
// requests, errors and latencies of the last hour minute by minute.
//
// It is on the hot path of every request, so writing costs a few small copies
// and atomic stores, never a lock shared by requests: each app has a ring of
// slots written by an atomic counter (a reader may see a slot being replaced,
// never a torn entry), and its minutes are atomic counters. The set of apps is
// a copy-on-write map, changed under a lock only when an app first appears.
//
// Everything is bounded: RequestLogOptions.PerApp entries per app, MaxApps apps
// (the app written least recently is dropped for a new one), an entry's
// parameters cut at MaxLoggedParamsBytes and its answer at
// MaxLoggedAnswerBytes. What is kept never holds a secret: `sign` is dropped,
// and a parameter whose name says it is a credential (secret, password, token,
// session) or whose value holds the app's secret or the word "secret" has its
// value replaced by Removed, before the entry is stored. Ticket codes are kept
// (they are what the POS sent); who may see them is the admin API's rule.

// RequestLogOptions configures the request log (Config.RequestLog).
type RequestLogOptions struct {
	// Disabled keeps neither requests nor traffic.
	Disabled bool
	// PerApp is how many requests are kept for each app (default
	// DefaultRequestLogPerApp).
	PerApp int
	// MaxApps bounds the apps kept (default DefaultRequestLogMaxApps).
	MaxApps int
}

// Bounds of the request log. With the defaults an entry holds at most about 6
// KiB, so the log holds at most about 256 × 50 × 6 KiB = 75 MiB, and typically
// (requests of a few hundred bytes) a few MiB.
const (
	DefaultRequestLogPerApp  = 50
	DefaultRequestLogMaxApps = 256
	// MaxLoggedParamsBytes bounds the parameter values kept of one request.
	MaxLoggedParamsBytes = 2 << 10
	// MaxLoggedAnswerBytes bounds the answer kept of one request.
	MaxLoggedAnswerBytes = 4 << 10
	// maxLoggedParams bounds the parameters kept of one request.
	maxLoggedParams = 32
	// maxLoggedName bounds a parameter's name and the method's.
	maxLoggedName = 64
)

// Removed replaces the value of a parameter that may hold a credential.
const Removed = "[removed]"

// LoggedRequest is one request as the log keeps it.
type LoggedRequest struct {
	At time.Time
	// TraceID is the request's trace id (request_id in its answer and log line).
	TraceID string
	AppKey  string
	Method  string
	// Outcome is the request's outcome, as in its log line and the metrics:
	// success, a business error code, a sub_code or code_N.
	Outcome string
	Latency time.Duration
	// Params are the request's parameters in name order, without sign, and
	// with the values of credentials replaced by Removed. ParamsTruncated is
	// set when values or parameters were cut to the bounds.
	Params          []LoggedParam
	ParamsTruncated bool
	// Answer is the answer the gateway wrote (or, under a lose_response fault,
	// would have), cut at MaxLoggedAnswerBytes (AnswerTruncated).
	Answer          string
	AnswerTruncated bool
	// Seq numbers the requests in the order this log recorded them, across
	// apps: times may tie.
	Seq uint64
}

// LoggedParam is one parameter of a logged request.
type LoggedParam struct {
	Name, Value string
}

// LoggedApp is an app of the request log.
type LoggedApp struct {
	Key string
	// Merchants are the app's merchants when it was last logged.
	Merchants []string
	// Requests counts the app's requests since the log first saw it.
	Requests uint64
}

// TrafficMinute is one minute of traffic.
type TrafficMinute struct {
	// Start is the minute's start.
	Start time.Time
	// Requests counts the answered requests; Errors those whose outcome was
	// not success (a refusal, a platform error or a failure).
	Requests, Errors uint64
	// P99 is the 99th percentile of latency (the upper bound of its
	// histogram bucket: at most 26 % high); zero without requests.
	P99 time.Duration
}

// RequestLog is the gateway's request log; Gateway.RequestLog returns it. It is
// safe for concurrent use.
type RequestLog struct {
	perApp, maxApps int
	clock           func() time.Time

	mu   sync.Mutex // serialises changes of apps
	apps atomic.Pointer[map[string]*appLog]
	seq  atomic.Uint64 // numbers the entries across apps (LoggedRequest.Seq)
}

// appLog is the log of one app.
type appLog struct {
	key       string
	merchants atomic.Pointer[[]string]
	next      atomic.Uint64
	slots     []atomic.Pointer[LoggedRequest]
	lastWrite atomic.Int64 // Unix nanoseconds, for the choice of the app to drop
	traffic   traffic
}

func newRequestLog(o RequestLogOptions, clock func() time.Time) *RequestLog {
	if o.Disabled {
		return nil
	}
	if o.PerApp <= 0 {
		o.PerApp = DefaultRequestLogPerApp
	}
	if o.MaxApps <= 0 {
		o.MaxApps = DefaultRequestLogMaxApps
	}
	l := &RequestLog{perApp: o.PerApp, maxApps: o.MaxApps, clock: clock}
	empty := map[string]*appLog{}
	l.apps.Store(&empty)
	return l
}

// RequestLog returns the gateway's request log; nil when it is disabled.
func (g *Gateway) RequestLog() *RequestLog { return g.reqlog }

// record logs one answered request: called once per request, after its answer.
func (l *RequestLog) record(c *call, answer []byte, now time.Time, d time.Duration) {
	if c.app == nil {
		return // no app's: /metrics counts it
	}
	failed := c.outcome != "success"
	a := l.app(c.app, now)
	a.traffic.add(now, d, failed)
	e := &LoggedRequest{At: now, TraceID: c.requestID, AppKey: a.key, Latency: d}
	if len(answer) > MaxLoggedAnswerBytes {
		answer, e.AnswerTruncated = answer[:MaxLoggedAnswerBytes], true
	}
	e.fill(c, answer)
	e.Seq = l.seq.Add(1)
	a.slots[(a.next.Add(1)-1)%uint64(len(a.slots))].Store(e)
	a.lastWrite.Store(now.UnixNano())
}

// app returns the log of an app, creating it (and dropping the app written
// least recently, beyond MaxApps) on its first request.
func (l *RequestLog) app(app *daodian.App, now time.Time) *appLog {
	a, ok := (*l.apps.Load())[app.Key]
	if !ok {
		l.mu.Lock()
		defer l.mu.Unlock()
		old := *l.apps.Load()
		if a, ok = old[app.Key]; !ok {
			a = &appLog{key: strings.Clone(app.Key), slots: make([]atomic.Pointer[LoggedRequest], l.perApp)}
			next := make(map[string]*appLog, len(old)+1)
			var oldest string
			for k, v := range old {
				next[k] = v
				if oldest == "" || v.lastWrite.Load() < old[oldest].lastWrite.Load() {
					oldest = k
				}
			}
			if len(next) >= l.maxApps {
				delete(next, oldest)
			}
			next[a.key] = a
			a.lastWrite.Store(now.UnixNano())
			l.apps.Store(&next)
		}
	}
	// The app as the gateway's cache holds it: its merchants change rarely, and
	// a pointer store is all a request pays.
	if m := a.merchants.Load(); m == nil || !slices.Equal(*m, app.Merchants) {
		ms := slices.Clone(app.Merchants)
		a.merchants.Store(&ms)
	}
	return a
}

// fill copies the texts of a request into the entry, within the bounds,
// without sign and without credentials. Every text lands in one string (one
// allocation, and nothing of the request's body kept alive), of which the
// entry's fields are parts.
func (e *LoggedRequest) fill(c *call, answer []byte) {
	var kept [maxLoggedParams]LoggedParam
	n, budget := 0, MaxLoggedParamsBytes
	size := min(len(c.method), maxLoggedName) + len(c.outcome) + len(answer)
	c.params.Each(func(name, value string) {
		if name == "sign" {
			return
		}
		if n == maxLoggedParams {
			e.ParamsTruncated = true
			return
		}
		if credential(name, value, c.app) {
			value = Removed
		}
		if len(value) > budget {
			value, e.ParamsTruncated = value[:budget], true
		}
		budget -= len(value)
		name = name[:min(len(name), maxLoggedName)]
		kept[n] = LoggedParam{Name: name, Value: value}
		n++
		size += len(name) + len(value)
	})
	var b strings.Builder
	b.Grow(size)
	e.Method = part(&b, c.method[:min(len(c.method), maxLoggedName)])
	e.Outcome = part(&b, c.outcome)
	if n > 0 {
		e.Params = make([]LoggedParam, n)
		for i, p := range kept[:n] {
			e.Params[i] = LoggedParam{Name: part(&b, p.Name), Value: part(&b, p.Value)}
		}
	}
	start := b.Len()
	b.Write(answer)
	all := b.String()
	e.Answer = all[start:]
	// The parts written before were taken from the builder's buffer as it
	// grew; all is that buffer (it never grew past size), so they are its
	// parts too.
}

// part writes s to b and returns the text b now holds for it. b must have
// room for s (Grow): then its buffer never moves and the text stays b's.
func part(b *strings.Builder, s string) string {
	start := b.Len()
	b.WriteString(s)
	return b.String()[start:]
}

// credential reports whether a parameter may hold a credential: by its name
// (secret, password, token, session: any name but those of the protocol and
// the methods is looked at), or by its value holding one of the app's secrets
// or the word secret as programs spell it (app_secret, appSecret,
// APP_SECRET: a business object with an app_secret member, say). It runs for
// every parameter of every request: a value is scanned at most three times,
// each a vectorised search, and a name of the protocol not at all.
func credential(name, value string, app *daodian.App) bool {
	switch name {
	case "method", "app_key", "timestamp", "v", "format", "sign_method", "simplify", "partner_id", "target_app_key",
		alsc.ParamConsultRequest, alsc.ParamUseRequest, alsc.ParamReverseRequest, alsc.ParamTransID, alsc.ParamTicketCode,
		alsc.ParamTicketRequestID:
	default:
		if name == "session" || credentialName(name) {
			return true
		}
	}
	if strings.Contains(value, "ecret") || strings.Contains(value, "ECRET") {
		return true
	}
	return (app.Secret != "" && len(value) >= len(app.Secret) && strings.Contains(value, app.Secret)) ||
		(app.PreviousSecret != "" && len(value) >= len(app.PreviousSecret) && strings.Contains(value, app.PreviousSecret))
}

// credentialName reports whether a parameter's name says it holds a
// credential, in any case.
func credentialName(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "secret") || strings.Contains(n, "password") || strings.Contains(n, "token")
}

// Requests returns the logged requests of an app, newest first; none for an
// app the log does not hold.
func (l *RequestLog) Requests(appKey string) []LoggedRequest {
	a, ok := (*l.apps.Load())[appKey]
	if !ok {
		return nil
	}
	out := make([]LoggedRequest, 0, len(a.slots))
	for i := range a.slots {
		if e := a.slots[i].Load(); e != nil {
			out = append(out, *e)
		}
	}
	slices.SortFunc(out, func(x, y LoggedRequest) int { return cmp.Compare(y.Seq, x.Seq) })
	return out
}

// Apps returns the apps of the log in key order.
func (l *RequestLog) Apps() []LoggedApp {
	m := *l.apps.Load()
	out := make([]LoggedApp, 0, len(m))
	for _, a := range m {
		la := LoggedApp{Key: a.key, Requests: a.next.Load()}
		if ms := a.merchants.Load(); ms != nil {
			la.Merchants = *ms
		}
		out = append(out, la)
	}
	slices.SortFunc(out, func(x, y LoggedApp) int { return strings.Compare(x.Key, y.Key) })
	return out
}

// Traffic returns the last hour minute by minute, oldest first, ending with
// the current minute: the requests of the apps that keep accepts (given each
// app's key and merchants). Requests that named no known app are in no app's
// traffic (the metrics count them).
func (l *RequestLog) Traffic(keep func(appKey string, merchants []string) bool) []TrafficMinute {
	now := l.clock().Unix() / 60
	var sum [trafficMinutes]minuteSum
	for _, a := range *l.apps.Load() {
		var ms []string
		if p := a.merchants.Load(); p != nil {
			ms = *p
		}
		if keep(a.key, ms) {
			a.traffic.sumInto(&sum, now)
		}
	}
	out := make([]TrafficMinute, trafficMinutes)
	for i := range out {
		m := now - trafficMinutes + 1 + int64(i)
		s := &sum[i]
		out[i] = TrafficMinute{Start: time.Unix(m*60, 0), Requests: s.requests, Errors: s.errors, P99: s.quantile(0.99)}
	}
	return out
}

// Traffic is kept per minute for trafficMinutes minutes, latencies in
// latencyBuckets buckets growing by 2^(1/3) (26 %) from latencyFloor: the
// last bucket's bound is about 100 s, beyond any request the server lets run.
const (
	trafficMinutes = 60
	latencyBuckets = 60
	latencyFloor   = 100 * time.Microsecond
)

// traffic is the last trafficMinutes minutes of one app. Each minute's bucket
// is reset by the first request of a new minute that lands on it (under mu,
// taken once a minute); every other request only adds atomically.
type traffic struct {
	mu      sync.Mutex
	minutes [trafficMinutes]trafficBucket
}

type trafficBucket struct {
	minute           atomic.Int64 // the Unix minute the counts are of
	requests, errors atomic.Uint64
	latency          [latencyBuckets]atomic.Uint64
}

func (t *traffic) add(now time.Time, d time.Duration, failed bool) {
	m := now.Unix() / 60
	b := &t.minutes[m%trafficMinutes]
	if b.minute.Load() != m {
		t.mu.Lock()
		if b.minute.Load() != m {
			b.requests.Store(0)
			b.errors.Store(0)
			for i := range b.latency {
				b.latency[i].Store(0)
			}
			b.minute.Store(m)
		}
		t.mu.Unlock()
	}
	b.requests.Add(1)
	if failed {
		b.errors.Add(1)
	}
	b.latency[latencyBucket(d)].Add(1)
}

// latencyBucket is the bucket of a latency: the first whose bound is at
// least d.
func latencyBucket(d time.Duration) int {
	if d <= latencyFloor {
		return 0
	}
	i := int(math.Ceil(3 * math.Log2(float64(d)/float64(latencyFloor))))
	return min(i, latencyBuckets-1)
}

// latencyBound is the upper bound of bucket i.
func latencyBound(i int) time.Duration {
	return time.Duration(float64(latencyFloor) * math.Exp2(float64(i)/3))
}

// minuteSum is one minute summed over apps.
type minuteSum struct {
	requests, errors uint64
	latency          [latencyBuckets]uint64
}

func (s *minuteSum) quantile(q float64) time.Duration {
	if s.requests == 0 {
		return 0
	}
	var total uint64
	for _, n := range s.latency {
		total += n
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, n := range s.latency {
		if seen += n; seen >= rank && n > 0 {
			return latencyBound(i)
		}
	}
	return latencyBound(latencyBuckets - 1)
}

// sumInto adds the minutes of the hour ending at the Unix minute now into sum
// (sum[0] the oldest).
func (t *traffic) sumInto(sum *[trafficMinutes]minuteSum, now int64) {
	for i := range sum {
		m := now - trafficMinutes + 1 + int64(i)
		b := &t.minutes[m%trafficMinutes]
		if b.minute.Load() != m {
			continue
		}
		s := &sum[i]
		s.requests += b.requests.Load()
		s.errors += b.errors.Load()
		for j := range b.latency {
			s.latency[j] += b.latency[j].Load()
		}
	}
}

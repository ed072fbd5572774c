// Package gateway serves the TOP protocol over HTTP: /router/rest with the method
// registry, authentication, limits and the fixed check order of SPEC §3.5, plus the
// health endpoints. Handlers see only decoded, validated input.
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/internal/traceid"
	"github.com/daodian/daodian/top"
)

// Config holds the gateway's settings.
type Config struct {
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64
	// TimestampSkew is the accepted distance between `timestamp` and server time
	// (default 10 minutes).
	TimestampSkew time.Duration
	// AppCacheTTL is how long an app read from the store is trusted before it is
	// read again, so that a disabled app stops working within this time on every
	// process (default 2s).
	AppCacheTTL time.Duration
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// Logger receives one line per request (default slog.Default()).
	Logger *slog.Logger
	// Observer, if set, is told about every answered request, in addition to
	// Metrics.
	Observer Observer
	// Metrics is the gateway's Prometheus instrumentation, served at GET
	// /metrics (metrics.go). Default: NewMetrics(), a registry of this gateway's
	// own. Set it to also feed it from elsewhere, such as the store's commits.
	Metrics *Metrics
	// MaxConcurrent bounds the requests of /router/rest in their method at once;
	// beyond it a signed request is answered at once with code 15
	// isp.server-busy (limits.go). A request takes a slot only once its body is
	// read and its signature verified. Default DefaultMaxConcurrent; negative
	// means unbounded.
	MaxConcurrent int
	// BodyReadTimeout is how long a client may take to send a request body once
	// its headers have arrived; beyond it the request is answered code 41 and the
	// connection closed. Default DefaultBodyReadTimeout; negative leaves only the
	// server's own ReadTimeout.
	BodyReadTimeout time.Duration
	// Faults configures the injection of the store's fault rules (faults.go).
	Faults FaultOptions
	// RequestLog configures the log of recent requests and the traffic of the
	// last hour (requestlog.go).
	RequestLog RequestLogOptions
}

// Observer is told about every answered request. Implementations must be fast and
// safe for concurrent use.
type Observer interface {
	Observe(method, outcome string, d time.Duration)
}

// Gateway is the HTTP handler of the TOP endpoint.
type Gateway struct {
	cfg     Config
	ledger  *daodian.Ledger
	methods map[string]*Method
	apps    *appCache
	limits  *limiter
	slots   slots // nil when unbounded
	ready   func(ctx context.Context) error
	faults  *faults     // nil when fault injection is disabled
	reqlog  *RequestLog // nil when disabled
	// run runs a method whose checks passed: the handler, wrapped by fault
	// injection when it is enabled.
	run runFunc

	bufs sync.Pool
	// jsonType and xmlType are the Content-Type values of answers, made once
	// and given to every answer's header: Header.Set would allocate a slice for
	// each. Nothing changes a header's values in place (net/http copies them
	// out, Header.Add appends beyond their capacity of one).
	jsonType, xmlType []string
}

// New returns a gateway serving the methods of alsc.Specs on ledger.
func New(ledger *daodian.Ledger, cfg Config) *Gateway {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = top.DefaultMaxBodyBytes
	}
	if cfg.TimestampSkew <= 0 {
		cfg.TimestampSkew = 10 * time.Minute
	}
	if cfg.AppCacheTTL <= 0 {
		cfg.AppCacheTTL = 2 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.BodyReadTimeout == 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Observer == nil {
		cfg.Observer = cfg.Metrics
	} else {
		cfg.Observer = observers{cfg.Metrics, cfg.Observer}
	}
	g := &Gateway{
		cfg:     cfg,
		ledger:  ledger,
		methods: make(map[string]*Method),
		apps:    newAppCache(ledger.App, cfg.AppCacheTTL, cfg.Clock),
		limits:  newLimiter(),
		slots:   newSlots(cfg.MaxConcurrent),
		ready:   ledger.Ping,
		faults:  newFaults(ledger, cfg),
		reqlog:  newRequestLog(cfg.RequestLog, cfg.Clock),
		run:     runMethod,
	}
	if g.faults != nil {
		g.run = g.faults.wrap(runMethod)
	}
	g.bufs.New = func() any { b := make([]byte, 0, 2048); return &b }
	g.jsonType = []string{"application/json;charset=UTF-8"}
	g.xmlType = []string{"text/xml;charset=UTF-8"}
	for _, m := range g.builtinMethods() {
		g.Register(m)
	}
	return g
}

// Register adds or replaces a method.
func (g *Gateway) Register(m *Method) {
	g.methods[m.Spec.Name] = m
}

// Handler returns the HTTP handler with every route of the process: /router/rest,
// /healthz, /readyz and /metrics.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/router/rest", g)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := g.ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("store unreachable\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", g.cfg.Metrics.Handler())
	return mux
}

// Metrics returns the gateway's Prometheus instrumentation.
func (g *Gateway) Metrics() *Metrics { return g.cfg.Metrics }

// newRequestID returns a per-request trace id (SPEC §3.4), random: unlike a
// counter, consecutive ids tell a caller nothing about how many requests the
// gateway served in between.
var newRequestID = traceid.New

// call is the state of one request as it passes the checks.
type call struct {
	requestID string
	format    top.Format
	simplify  bool
	method    string
	appKey    string
	outcome   string
	// app is the request's app once it is known and enabled; params its
	// parameters once they parsed (for the request log).
	app    *daodian.App
	params *top.Params
	// previousSecret: the request was signed with the secret a rotation replaced.
	previousSecret bool
	// answer is the encoded answer (in a buffer of Gateway.bufs), in the
	// method's input. Both live here because a call escapes to the heap anyway
	// (the method is called through a function value): held in it, they cost no
	// allocation of their own.
	answer []byte
	in     Input
}

// runFunc runs the method of a request whose checks passed. It returns the
// answer and, when the answer must be delivered other than by writing it, a
// deliverer.
type runFunc func(r *http.Request, w http.ResponseWriter, c *call, m *Method, in *Input) (top.Body, *top.Error, deliverer)

// A deliverer writes a request's answer in its own way (fault injection,
// faults.go): write writes it as usual.
type deliverer interface {
	deliver(w http.ResponseWriter, c *call, write func())
}

// runMethod is the plain runFunc: the method's handler.
func runMethod(r *http.Request, _ http.ResponseWriter, _ *call, m *Method, in *Input) (top.Body, *top.Error, deliverer) {
	body, terr := m.Handle(r.Context(), in)
	return body, terr, nil
}

// ServeHTTP answers one TOP request. Every protocol-level answer is HTTP 200, as on
// the real platform.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	g.cfg.Metrics.inFlight.Inc()
	defer g.cfg.Metrics.inFlight.Dec()
	c := &call{requestID: newRequestID()}
	bp := g.bufs.Get().(*[]byte)
	c.answer = (*bp)[:0]
	defer func() {
		if p := recover(); p != nil {
			g.cfg.Logger.Error("panic in request", "request_id", c.requestID, "method", c.method, "panic", p)
			c.outcome = "code_15"
			c.answer = top.AppendError(c.answer[:0], c.format, top.ErrRemoteService(), c.requestID)
			g.write(w, c.format, c.answer)
		}
		d := time.Since(start)
		if g.reqlog != nil {
			g.reqlog.record(c, c.answer, g.cfg.Clock(), d)
		}
		if cap(c.answer) <= 64<<10 {
			*bp = c.answer[:0]
			g.bufs.Put(bp)
		}
		level := slog.LevelInfo
		if c.outcome == OutcomeServerBusy {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String("request_id", c.requestID), slog.String("app_key", c.appKey),
			slog.String("method", c.method), slog.String("outcome", c.outcome),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		}
		if c.previousSecret {
			attrs = append(attrs, slog.Bool("previous_secret", true))
		}
		g.cfg.Logger.LogAttrs(r.Context(), level, "request", attrs...)
		if g.cfg.Observer != nil {
			g.cfg.Observer.Observe(c.method, c.outcome, d)
		}
	}()
	body, terr, d := g.serve(w, r, c)
	if terr != nil {
		switch {
		case terr.SubCode == SubCodeServerBusy:
			c.outcome = OutcomeServerBusy
		case terr.SubCode != "" && terr.Code == 50:
			c.outcome = terr.SubCode
		default:
			c.outcome = "code_" + strconv.Itoa(terr.Code)
		}
		c.answer = top.AppendError(c.answer, c.format, terr, c.requestID)
	} else {
		c.answer = top.AppendSuccess(c.answer, c.format, c.simplify, c.method, body, c.requestID)
	}
	if d == nil {
		g.write(w, c.format, c.answer)
		return
	}
	d.deliver(w, c, func() { g.write(w, c.format, c.answer) })
}

func (g *Gateway) write(w http.ResponseWriter, f top.Format, buf []byte) {
	h := w.Header()
	if f == top.JSON {
		h["Content-Type"] = g.jsonType
	} else {
		h["Content-Type"] = g.xmlType
	}
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	_, _ = w.Write(buf)
}

// serve runs the checks of SPEC §3.5 in their fixed order, then the method. Only
// a request that passed every check takes a concurrency slot, and only around
// its method (limits.go).
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, c *call) (top.Body, *top.Error, deliverer) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, top.ErrInvalidArguments("HTTP method must be GET or POST"), nil
	}
	p, perr := g.readParams(w, r)
	if p != nil {
		// Answer in the caller's format whenever it named a valid one, even when a
		// later check fails.
		if f, ok := top.ParseFormat(p.Get("format")); ok {
			c.format = f
		}
		c.simplify = p.Get("simplify") == "true"
	}
	if perr != nil {
		if p == nil {
			// Unparseable as a whole (a repeated name, a body over the limit, …): the
			// query alone may still name the format, as it does for the official SDKs,
			// which put the public parameters there. Without this, a JSON client
			// could not read the 41 and would take it for a lost answer.
			c.format, c.simplify = formatFromQuery(r.URL)
		}
		return nil, perr, nil
	}
	c.params = p
	c.method = p.Get("method")
	if c.method == "" {
		return nil, top.ErrMissingMethod(), nil
	}
	m, ok := g.methods[c.method]
	if !ok {
		c.method = "unknown"
		return nil, top.ErrInvalidMethod(), nil
	}
	key := p.Get("app_key")
	if key == "" {
		return nil, top.ErrMissingAppKey(), nil
	}
	app, err := g.apps.get(r.Context(), key)
	if err != nil {
		switch {
		case errors.Is(err, daodian.ErrNotFound):
			return nil, top.ErrInvalidAppKey(), nil
		case errors.Is(err, errLookupBusy):
			return nil, errServerBusy(), nil
		}
		g.cfg.Logger.Error("app lookup failed", "request_id", c.requestID, "err", err)
		return nil, top.ErrRemoteService(), nil
	}
	if !app.Enabled {
		return nil, top.ErrInvalidAppKey(), nil
	}
	c.appKey, c.app = app.Key, app.App
	switch v := p.Get("v"); {
	case !p.Has("v") || v == "":
		return nil, top.ErrMissingVersion(), nil
	case !versionLike(v):
		return nil, top.ErrInvalidVersion(), nil
	case v != "2.0":
		return nil, top.ErrUnsupportedVersion(), nil
	}
	if _, ok := top.ParseFormat(p.Get("format")); !ok {
		return nil, top.ErrInvalidFormat(), nil
	}
	now := g.cfg.Clock()
	ts := p.Get("timestamp")
	if ts == "" {
		return nil, top.ErrMissingTimestamp(), nil
	}
	t, err := top.ParseTimestamp(ts)
	if err != nil || t.Sub(now) > g.cfg.TimestampSkew || now.Sub(t) > g.cfg.TimestampSkew {
		return nil, top.ErrInvalidTimestamp(), nil
	}
	sign := p.Get("sign")
	if sign == "" {
		return nil, top.ErrMissingSignature(), nil
	}
	switch signedWith(p, app, sign, now) {
	case secretNone:
		return nil, top.ErrInvalidSignature(), nil
	case secretPrevious:
		c.previousSecret = true
	}
	if ok, wait := g.limits.allow(app.Key, app.RateLimitPerS, now); !ok {
		return nil, top.ErrAppCallLimited(wait), nil
	}
	// taobao.time.get is the protocol's smoke test: an app restricted to some
	// methods may still check its clock and its signing.
	if c.method != alsc.MethodTimeGet && !app.Allows(c.method) {
		return nil, top.ErrInsufficientPermissions(), nil
	}
	c.in = Input{App: app.App, Params: p, RequestID: c.requestID, Now: now}
	in := &c.in
	if terr := decodeParams(m, p, in); terr != nil {
		return nil, terr, nil
	}
	if !g.admit() {
		return nil, errServerBusy(), nil
	}
	defer g.leave()
	body, terr, d := g.run(r, w, c, m, in)
	if terr == nil {
		c.outcome = m.outcome(body)
	}
	return body, terr, d
}

// Which secret signed a request.
const (
	secretNone = iota
	secretCurrent
	secretPrevious
)

// signedWith tells which of the app's secrets signed p: the current one, tried
// first, or, only while a rotation's grace period lasts, the one it replaced.
func signedWith(p *top.Params, app *cachedApp, sign string, now time.Time) int {
	method := p.Get("sign_method")
	switch {
	case app.key.Verify(p, method, sign):
		return secretCurrent
	case app.PreviousSecretValid(now) && app.previous.Verify(p, method, sign):
		return secretPrevious
	}
	return secretNone
}

// formatFromQuery returns the format and simplify named by the query string of u,
// when each is given once with a valid value; XML otherwise.
func formatFromQuery(u *url.URL) (top.Format, bool) {
	if u == nil {
		return top.XML, false
	}
	q, _ := url.ParseQuery(u.RawQuery) // keeps the pairs that parse
	fs := q["format"]
	if len(fs) != 1 {
		return top.XML, false
	}
	f, ok := top.ParseFormat(fs[0])
	if !ok {
		return top.XML, false
	}
	ss := q["simplify"]
	return f, len(ss) == 1 && ss[0] == "true"
}

// versionLike reports whether v looks like a version number (digits and dots).
func versionLike(v string) bool {
	if len(v) > 16 {
		return false
	}
	dot := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '.':
			if i == 0 || i == len(v)-1 || v[i-1] == '.' {
				return false
			}
			dot = true
		case c < '0' || c > '9':
			return false
		}
	}
	return dot
}

package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/keycache"
	"github.com/daodian/daodian/internal/traceid"
)

// Prefix is the path under which the admin API is served (SPEC §10).
const Prefix = "/admin/v1/"

// Defaults of Config.
const (
	// DefaultTokenCacheTTL is how long a token read from the store is trusted:
	// a revoked token is refused by every server within it.
	DefaultTokenCacheTTL = 2 * time.Second
	// DefaultMaxReconcileBytes bounds the POS file of one reconciliation: about
	// daodian.MaxPOSLines lines of 64 bytes.
	DefaultMaxReconcileBytes = 128 << 20
	// DefaultMaxDifferences bounds the differences one reconciliation answer
	// lists; the answer says when there were more ("truncated").
	DefaultMaxDifferences = 100_000
	// DefaultMaxReconciliations bounds the reconciliations running at once: each
	// holds its POS file's lines in memory.
	DefaultMaxReconciliations = 2
)

// Bounds on the store reads of tokens the cache does not hold, as for the
// gateway's app keys (gateway/apps.go): any client can send random tokens.
const (
	maxCachedTokens  = 10_000
	maxTokenLookups  = 2
	tokenLookupWait  = time.Second
	maxLoggedPathLen = 256
)

// Config holds the admin API's settings.
type Config struct {
	// Logger receives one line per request (default slog.Default()).
	Logger *slog.Logger
	// Clock is the time source of the token cache (default time.Now).
	Clock func() time.Time
	// TokenCacheTTL: default DefaultTokenCacheTTL.
	TokenCacheTTL time.Duration
	// MaxReconcileBytes: default DefaultMaxReconcileBytes.
	MaxReconcileBytes int64
	// MaxDifferences: default DefaultMaxDifferences.
	MaxDifferences int
	// MaxReconciliations: default DefaultMaxReconciliations.
	MaxReconciliations int
	// RequestLog is the gateway's log of recent requests and traffic, which
	// the requests endpoint and the overview show; nil: this server keeps
	// none (gateway.RequestLogOptions.Disabled).
	RequestLog *gateway.RequestLog
	// FaultsDisabled tells that this server ignores fault rules (serve
	// --no-faults): the rules are still listed and managed, for the servers
	// that apply them.
	FaultsDisabled bool
}

// API is the HTTP handler of the admin API: JSON over HTTP under Prefix,
// authenticated by admin tokens (Authorization: Bearer dd_…). Every
// answer, an error included, is JSON (CSV where the caller asks for it); an
// error is {"error": {"code", "message"}} with a stable code (errors.go).
type API struct {
	ledger *daodian.Ledger
	cfg    Config
	tokens *keycache.Cache[*daodian.AdminToken]
	// reconciling bounds the reconciliations running at once.
	reconciling chan struct{}
	routes      []route
}

// New returns the admin API over ledger.
func New(ledger *daodian.Ledger, cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.TokenCacheTTL <= 0 {
		cfg.TokenCacheTTL = DefaultTokenCacheTTL
	}
	if cfg.MaxReconcileBytes <= 0 {
		cfg.MaxReconcileBytes = DefaultMaxReconcileBytes
	}
	if cfg.MaxDifferences <= 0 {
		cfg.MaxDifferences = DefaultMaxDifferences
	}
	if cfg.MaxReconciliations <= 0 {
		cfg.MaxReconciliations = DefaultMaxReconciliations
	}
	a := &API{
		ledger: ledger,
		cfg:    cfg,
		tokens: keycache.New[*daodian.AdminToken](keycache.Config{
			TTL: cfg.TokenCacheTTL, Clock: cfg.Clock, MaxEntries: maxCachedTokens,
			MaxLookups: maxTokenLookups, LookupWait: tokenLookupWait,
		}),
		reconciling: make(chan struct{}, cfg.MaxReconciliations),
	}
	a.routes = a.table()
	return a
}

// call is one request as it is answered.
type call struct {
	w         http.ResponseWriter
	r         *http.Request
	requestID string
	token     *daodian.AdminToken
	status    int
	code      string // the error code, if the answer is an error
	written   bool
}

// ServeHTTP answers one admin API request: authentication first, so that a
// client without a valid token learns nothing (not even which paths exist),
// then the route and its method.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{w: w, r: r, requestID: traceid.New()}
	h := w.Header()
	h.Set("X-Request-Id", c.requestID)
	// Answers hold ledger data and, when asked by code, ticket codes.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	defer func() {
		if p := recover(); p != nil {
			a.cfg.Logger.Error("panic in admin request", "request_id", c.requestID, "panic", p)
			if !c.written {
				c.fail(errInternal(c.requestID))
			}
		}
		a.log(c, time.Since(start))
	}()
	tok, err := a.authenticate(c)
	if err != nil {
		c.fail(err)
		return
	}
	c.token = tok
	a.route(c)
}

// log writes the request's line. The query is never logged: it may hold a
// ticket code. Nor is the token: its id is.
func (a *API) log(c *call, d time.Duration) {
	path := c.r.URL.Path
	if len(path) > maxLoggedPathLen {
		path = path[:maxLoggedPathLen] + "…"
	}
	attrs := []slog.Attr{
		slog.String("request_id", c.requestID), slog.String("method", c.r.Method), slog.String("path", path),
		slog.Int("status", c.status), slog.Float64("duration_ms", float64(d.Microseconds())/1000),
	}
	if c.token != nil {
		attrs = append(attrs, slog.String("token_id", c.token.ID))
	}
	if c.code != "" {
		attrs = append(attrs, slog.String("code", c.code))
	}
	level := slog.LevelInfo
	if c.status >= 500 {
		level = slog.LevelWarn
	}
	a.cfg.Logger.LogAttrs(c.r.Context(), level, "admin request", attrs...)
}

// route is one endpoint: a path under Prefix (a segment "{}" takes any
// non-empty segment, the id) and a method it answers.
type route struct {
	path   string
	method string
	serve  func(c *call, id string)
}

func (a *API) table() []route {
	return []route{
		{"tickets/{}", http.MethodGet, a.ticketByID},
		{"tickets", http.MethodGet, a.ticketByCode},
		{"records", http.MethodGet, a.records},
		{"statements", http.MethodGet, a.statement},
		{"reconciliations", http.MethodPost, a.reconcile},
		{"merchants", http.MethodGet, a.listMerchants},
		{"apps", http.MethodGet, a.listApps},
		{"apps", http.MethodPost, a.createApp},
		{"apps/{}/rotate-secret", http.MethodPost, a.rotateSecret},
		{"shops", http.MethodGet, a.listShops},
		{"shops", http.MethodPost, a.addShop},
		{"faults", http.MethodGet, a.listFaults},
		{"faults", http.MethodPost, a.addFault},
		{"faults", http.MethodDelete, a.clearFaults},
		{"faults/{}", http.MethodDelete, a.clearFault},
		{"requests", http.MethodGet, a.listRequests},
		{"overview", http.MethodGet, a.overview},
		{"events", http.MethodGet, a.events},
		{"webhooks", http.MethodGet, a.listWebhooks},
		{"webhooks", http.MethodPost, a.addWebhook},
		{"webhooks/{}", http.MethodGet, a.getWebhook},
		{"webhooks/{}", http.MethodDelete, a.removeWebhook},
		{"webhooks/{}/deliveries", http.MethodGet, a.deliveries},
		{"redeliveries", http.MethodPost, a.redeliver},
	}
}

func (a *API) route(c *call) {
	rest, ok := strings.CutPrefix(c.r.URL.Path, Prefix)
	if !ok {
		c.fail(errNotFound("no such endpoint of the admin API"))
		return
	}
	var allow []string
	for _, rt := range a.routes {
		id, ok := match(rt.path, rest)
		if !ok {
			continue
		}
		if c.r.Method == rt.method {
			rt.serve(c, id)
			return
		}
		allow = append(allow, rt.method)
	}
	if allow == nil {
		c.fail(errNotFound("no such endpoint of the admin API"))
		return
	}
	methods := strings.Join(allow, ", ")
	c.w.Header().Set("Allow", methods)
	c.fail(&apiError{http.StatusMethodNotAllowed, codeMethodNotAllowed, "this endpoint answers " + methods + " only"})
}

// match reports whether path matches pattern, and the segment its "{}" took.
func match(pattern, path string) (id string, ok bool) {
	for {
		p, prest, pmore := strings.Cut(pattern, "/")
		s, srest, smore := strings.Cut(path, "/")
		switch {
		case p == "{}":
			if s == "" {
				return "", false
			}
			id = s
		case p != s:
			return "", false
		}
		if !pmore || !smore {
			return id, pmore == smore
		}
		pattern, path = prest, srest
	}
}

// json answers v as JSON with status 200.
func (c *call) json(v any) { c.jsonStatus(http.StatusOK, v) }

// jsonStatus answers v as JSON with status.
func (c *call) jsonStatus(status int, v any) {
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.status, c.written = status, true
	c.w.WriteHeader(status)
	enc := json.NewEncoder(c.w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // a write error is the client's connection: nothing to answer
}

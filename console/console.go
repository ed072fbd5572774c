// Package console is the web console of SPEC §10: server-rendered HTML pages
// (html/template, with the templates and one stylesheet embedded in the
// binary: no front-end build, no CDN, no script at all) over the admin API's
// Go methods, so that what a page shows and changes obeys exactly the API's
// scope rules. A browser signs in with an admin token into a session cookie.
//
// Security, in one place:
//   - the session cookie holds an opaque random id, never the token; it is
//     HttpOnly, SameSite=Strict, Path=/console/, and Secure when the browser
//     came over TLS (X-Forwarded-Proto is believed only with TrustProxy);
//   - every POST carries the session's CSRF token in a hidden field, compared
//     in constant time (the sign-in form a double-submit cookie's), and is
//     refused when the browser says it came from another site
//     (Sec-Fetch-Site);
//   - every answer has a Content-Security-Policy without 'unsafe-inline' and
//     without any script source, frame-ancestors 'none' and X-Frame-Options
//     DENY, Referrer-Policy no-referrer, nosniff, and Cache-Control no-store
//     (the stylesheet excepted);
//   - failed sign-ins are bounded per client address;
//   - an app secret (created or rotated) or a webhook's secret appears only
//     in the answer to that POST, never in a URL or a log line; no query
//     string is logged (a ticket lookup's holds a code);
//   - html/template escapes every value; nothing is marked safe HTML.
package console

import (
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/internal/traceid"
	"golang.org/x/time/rate"
)

// Prefix is the path under which the console is served.
const Prefix = "/console/"

// Defaults of Config.
const (
	DefaultMaxSessions = 10_000
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
	// DefaultLoginBurst failed sign-ins at once per client address, then one
	// per DefaultLoginEvery.
	DefaultLoginBurst = 5
	DefaultLoginEvery = 12 * time.Second
	// maxThrottled bounds the client addresses whose failures are counted.
	maxThrottled = 10_000
	// maxForm bounds a form's body.
	maxForm = 64 << 10
)

// Config holds the console's settings.
type Config struct {
	// API is the admin API whose Go methods the pages call (required).
	API *admin.API
	// Logger receives one line per request (default slog.Default()).
	Logger *slog.Logger
	// Clock is the time source of sessions and sign-in throttling (default
	// time.Now).
	Clock func() time.Time
	// TrustProxy believes the X-Forwarded-Proto (for the Secure cookie) and
	// X-Forwarded-For (for sign-in throttling) headers of a proxy in front.
	TrustProxy bool
	// MaxSessions bounds the sessions kept (default DefaultMaxSessions).
	MaxSessions int
	// IdleTimeout ends a session unused this long (default
	// DefaultIdleTimeout); MaxAge ends any session this long after sign-in
	// (default DefaultMaxAge).
	IdleTimeout, MaxAge time.Duration
	// LoginBurst and LoginEvery bound failed sign-ins per client address.
	LoginBurst int
	LoginEvery time.Duration
}

// Console is the HTTP handler of the console.
type Console struct {
	cfg      Config
	api      *admin.API
	sessions *sessions
	throttle *throttle
	pages    map[string]*template.Template
	mux      *http.ServeMux
	css      asset
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/console.css
var consoleCSS []byte

// New returns the console over the admin API cfg.API.
func New(cfg Config) *Console {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.LoginBurst <= 0 {
		cfg.LoginBurst = DefaultLoginBurst
	}
	if cfg.LoginEvery <= 0 {
		cfg.LoginEvery = DefaultLoginEvery
	}
	c := &Console{
		cfg: cfg,
		api: cfg.API,
		sessions: &sessions{m: map[string]*session{}, max: cfg.MaxSessions, idle: cfg.IdleTimeout, maxAge: cfg.MaxAge,
			clock: cfg.Clock},
		throttle: &throttle{m: map[string]*rate.Limiter{}, max: maxThrottled, every: cfg.LoginEvery, burst: cfg.LoginBurst},
		pages:    parsePages(),
		css:      newAsset(consoleCSS, "text/css; charset=utf-8"),
	}
	c.mux = c.routes()
	return c
}

func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"{$}", c.authed(c.overview))
	mux.HandleFunc("GET "+Prefix+"login", c.loginForm)
	mux.HandleFunc("POST "+Prefix+"login", c.login)
	mux.HandleFunc("POST "+Prefix+"logout", c.authed(c.logout))
	mux.HandleFunc("GET "+Prefix+"ticket", c.authed(c.ticket))
	mux.HandleFunc("GET "+Prefix+"records", c.authed(c.records))
	mux.HandleFunc("GET "+Prefix+"records.csv", c.authed(c.recordsCSV))
	mux.HandleFunc("GET "+Prefix+"requests", c.authed(c.requests))
	mux.HandleFunc("GET "+Prefix+"faults", c.authed(c.faults))
	mux.HandleFunc("POST "+Prefix+"faults", c.authed(c.addFault))
	mux.HandleFunc("POST "+Prefix+"faults/clear", c.authed(c.clearFaults))
	mux.HandleFunc("GET "+Prefix+"webhooks", c.authed(c.webhooks))
	mux.HandleFunc("POST "+Prefix+"webhooks", c.authed(c.addWebhook))
	mux.HandleFunc("POST "+Prefix+"webhooks/remove", c.authed(c.removeWebhook))
	mux.HandleFunc("POST "+Prefix+"webhooks/redeliver", c.authed(c.redeliver))
	mux.HandleFunc("GET "+Prefix+"apps", c.authed(c.apps))
	mux.HandleFunc("POST "+Prefix+"apps", c.authed(c.createApp))
	mux.HandleFunc("POST "+Prefix+"apps/rotate", c.authed(c.rotateSecret))
	mux.HandleFunc("POST "+Prefix+"shops", c.authed(c.addShop))
	mux.HandleFunc("GET "+Prefix+"static/console.css", c.css.serve)
	return mux
}

// ServeHTTP answers one console request, with the security headers on every
// answer (a 404 included) and one log line.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w, status: http.StatusOK}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	requestID := traceid.New()
	h.Set("X-Request-Id", requestID)
	r = r.WithContext(withRequestID(r.Context(), requestID))
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			c.cfg.Logger.Error("panic in console request", "request_id", requestID, "panic", p)
			if !rw.wrote {
				http.Error(rw, "internal error; the server's log has it under request_id "+requestID, http.StatusInternalServerError)
			}
		}
		c.log(r, rw, requestID, time.Since(start))
	}()
	if r.URL.Path == "/console" {
		http.Redirect(rw, r, Prefix, http.StatusMovedPermanently)
		return
	}
	c.mux.ServeHTTP(rw, r)
}

// log writes the request's line: its path (never its query, which may hold
// a ticket code) and the token's id.
func (c *Console) log(r *http.Request, rw *recorder, requestID string, d time.Duration) {
	path := r.URL.Path
	if len(path) > 256 {
		path = path[:256] + "…"
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestID), slog.String("method", r.Method), slog.String("path", path),
		slog.Int("status", rw.status), slog.Float64("duration_ms", float64(d.Microseconds())/1000),
	}
	if rw.tokenID != "" {
		attrs = append(attrs, slog.String("token_id", rw.tokenID))
	}
	level := slog.LevelInfo
	if rw.status >= 500 {
		level = slog.LevelWarn
	}
	c.cfg.Logger.LogAttrs(r.Context(), level, "console request", attrs...)
}

// recorder keeps what the log line says of an answer.
type recorder struct {
	http.ResponseWriter
	status  int
	wrote   bool
	tokenID string
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// errForm is a form that could not be read.
var errForm = errors.New("the form could not be read")

package gateway

import (
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/daodian/daodian/top"
)

// DefaultMaxConcurrent is the default bound on the TOP requests one process
// serves at once (Config.MaxConcurrent).
const DefaultMaxConcurrent = 1024

// SubCodeServerBusy is the sub_code of the code-15 answer to a request refused
// because the process already serves Config.MaxConcurrent requests.
const SubCodeServerBusy = "isp.server-busy"

// concurrencyLimit bounds the requests of /router/rest in flight at once. Beyond
// the bound a request is answered at once, before its body is read, without
// waiting in any queue: a queue would only turn an overload into latency for
// every caller and memory for the server, while an immediate answer lets the
// client back off or try another gateway.
//
// The answer is the TOP error_response code 15 "Remote service error" with
// sub_code isp.server-busy, over HTTP 200:
//   - code 7 (App Call Limited) says that this app exceeded its own rate; an
//     overloaded process is not the app's fault, and a caller that reads 7 may
//     throttle itself for the ban time instead of simply retrying;
//   - HTTP 503 would break SPEC §3.1 (every protocol-level answer is HTTP 200),
//     and the official SDKs turn a non-200 into a transport failure without
//     reading the body, which loses the request_id;
//   - code 15 is what the platform answers for an outage, the SDK
//     (client.RetryableError) and the official SDKs already treat it as
//     retryable, and for a reversal it means, as SYSTEM_ERROR does, that nothing
//     was done and the same request may be sent again.
type concurrencyLimit struct {
	g    *Gateway
	sem  chan struct{}
	next http.Handler
}

// limit wraps next with the concurrency bound of the configuration; n ≤ 0
// (after defaults, only a negative Config.MaxConcurrent) means unbounded.
func (g *Gateway) limit(n int, next http.Handler) http.Handler {
	if n <= 0 {
		return next
	}
	return &concurrencyLimit{g: g, sem: make(chan struct{}, n), next: next}
}

func (l *concurrencyLimit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case l.sem <- struct{}{}:
		defer func() { <-l.sem }()
		l.next.ServeHTTP(w, r)
	default:
		l.g.busy(w, r)
	}
}

// busy answers a request shed by the concurrency limit. It reads nothing but the
// query string (bounded by the server's MaxHeaderBytes), so that shedding stays
// cheap: the format and the method name come from there, as the official SDKs
// send them.
func (g *Gateway) busy(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := g.newRequestID()
	f, _ := formatFromQuery(r.URL)
	method := ""
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil {
		if ms := q["method"]; len(ms) == 1 {
			if _, ok := g.methods[ms[0]]; ok {
				method = ms[0]
			} else {
				method = "unknown"
			}
		}
	}
	e := top.ErrRemoteService()
	e.SubCode, e.SubMsg = SubCodeServerBusy, "服务繁忙,请稍后重试"
	buf := top.AppendError(nil, f, e, rid)
	// The body was not read: tell the client this connection will not be reused,
	// so that an unread request body is never taken for the next request.
	w.Header().Set("Connection", "close")
	g.write(w, f, buf)
	const outcome = "server_busy"
	d := time.Since(start)
	g.cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, "request",
		slog.String("request_id", rid), slog.String("method", method), slog.String("outcome", outcome),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000))
	if g.cfg.Observer != nil {
		g.cfg.Observer.Observe(method, outcome, d)
	}
}

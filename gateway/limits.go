package gateway

import (
	"net/http"
	"time"

	"github.com/daodian/daodian/top"
)

// DefaultMaxConcurrent is the default bound on the TOP requests one process
// serves at once (Config.MaxConcurrent).
const DefaultMaxConcurrent = 1024

// DefaultBodyReadTimeout is the default time a client has to send a request body
// once its headers have arrived (Config.BodyReadTimeout).
const DefaultBodyReadTimeout = 5 * time.Second

// SubCodeServerBusy is the sub_code of the code-15 answer to a request refused
// because the process already serves Config.MaxConcurrent requests.
const SubCodeServerBusy = "isp.server-busy"

// OutcomeServerBusy is the outcome, in the request log line and the request
// metrics, of an answer with SubCodeServerBusy.
const OutcomeServerBusy = "server_busy"

// What an unauthenticated client can hold (SPEC §3.6). A client that has not
// proved it knows an app's secret must never hold what signed callers need, so
// the request path is, in order:
//
//  1. headers, within the server's ReadHeaderTimeout and MaxHeaderBytes;
//  2. the body, within Config.BodyReadTimeout and Config.MaxBodyBytes, read into
//     a buffer that grows only as bytes arrive (top.ParseRequest);
//  3. the checks of SPEC §3.5 up to the signature. The app lookup they need is
//     served from the app cache; a key the cache has never held (any client can
//     send random ones) reads the store through at most maxAppLookups reads at
//     once, waiting at most appLookupWait for one (appCache.get);
//  4. only a request whose signature, rate limit and permission passed takes one
//     of the MaxConcurrent slots, and only around its method (and the fault
//     injected into it), never while it sends its body or reads its answer.
//
// So a slow or idle connection costs one goroutine, the server's buffers and at
// most the body bytes it actually sent, for at most the header and body
// timeouts (and the server's IdleTimeout between requests); it never holds a
// slot, and the number of such connections is bounded only by the process's
// file descriptors: per-client connection limits belong in front of the
// gateway (a load balancer or firewall).

// slots bounds the requests in their method at once. Beyond the bound a request
// is answered at once, without waiting in any queue: a queue would only turn an
// overload into latency for every caller and memory for the server, while an
// immediate answer lets the client back off or try another gateway.
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
type slots chan struct{}

// newSlots returns n slots; n ≤ 0 (after defaults, only a negative
// Config.MaxConcurrent) means unbounded, a nil slots.
func newSlots(n int) slots {
	if n <= 0 {
		return nil
	}
	return make(slots, n)
}

// admit takes a slot if one is free, counting the request as admitted until
// leave is called; false when none is. It never waits.
func (g *Gateway) admit() bool {
	if g.slots != nil {
		select {
		case g.slots <- struct{}{}:
		default:
			return false
		}
	}
	g.cfg.Metrics.admitted.Inc()
	return true
}

// leave gives back the slot taken by admit.
func (g *Gateway) leave() {
	g.cfg.Metrics.admitted.Dec()
	if g.slots != nil {
		<-g.slots
	}
}

// errServerBusy is the answer to a request beyond the concurrency limit, or one
// whose app could not be looked up within appLookupWait.
func errServerBusy() *top.Error {
	e := top.ErrRemoteService()
	e.SubCode, e.SubMsg = SubCodeServerBusy, "服务繁忙,请稍后重试"
	return e
}

// readParams parses the request's parameters, giving the client
// Config.BodyReadTimeout to send its body. The deadline is that of the
// connection, so that a client trickling bytes is cut off too, not only one that
// stops.
func (g *Gateway) readParams(w http.ResponseWriter, r *http.Request) (*top.Params, *top.Error) {
	if r.Method != http.MethodPost || r.ContentLength == 0 || g.cfg.BodyReadTimeout < 0 {
		return top.ParseRequest(r, g.cfg.MaxBodyBytes)
	}
	rc := http.NewResponseController(w)
	// Without a connection deadline (a ResponseWriter that cannot set one), the
	// server's own ReadTimeout still bounds the body.
	deadline := rc.SetReadDeadline(time.Now().Add(g.cfg.BodyReadTimeout)) == nil
	p, err := top.ParseRequest(r, g.cfg.MaxBodyBytes)
	if err != nil {
		// The body may be left unread: close the connection after the answer,
		// so that the server neither reads the rest of it (under no deadline)
		// nor takes it for the next request.
		w.Header().Set("Connection", "close")
		return p, err
	}
	if deadline {
		// The body was read to its end. Lift the deadline: the server's
		// background read, which watches for the client going away while the
		// method runs, would take its expiry for a broken connection and cancel
		// the request's context mid-method. The next request on the connection
		// gets the server's deadlines again.
		_ = rc.SetReadDeadline(time.Time{})
	}
	return p, nil
}

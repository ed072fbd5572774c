package webhook

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// link is a worker's connection to its webhook's receiver. The worker writes
// each request and reads its answer itself, on one connection kept alive
// between deliveries: a delivery then costs the worker one wake-up (its
// answer arriving), where net/http's Transport would add two hand-offs to its
// writing and reading goroutines. On a busy machine each hand-off waits for a
// processor, and a webhook's deliveries are one after the other: those waits
// are what bound its deliveries per second. Requests and answers are written
// and parsed by net/http itself (Request.Write, ReadResponse); deliveries speak
// HTTP/1.1.
type link struct {
	dialer *net.Dialer
	conn   net.Conn
	// addr is the scheme and host:port conn is connected to.
	addr string
	used time.Time
}

// linkIdle is how long a connection may sit unused before it is dialled
// again rather than trusted (a receiver closes idle connections).
const linkIdle = 30 * time.Second

// errMetadataAddress is a dial refused by the address policy.
var errMetadataAddress = errors.New("refused: a link-local or cloud metadata address (serve --webhook-allow-metadata allows it)")

// newLink returns a link whose dials check every address against the policy
// (after name resolution, so a name resolving to a refused address is refused
// too), and that uses no proxy: a proxy would hide the address reached.
func newLink(allowMetadata bool) *link {
	d := &net.Dialer{Timeout: dialTimeout}
	if !allowMetadata {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return err
			}
			if Refused(ip) {
				return errMetadataAddress
			}
			return nil
		}
	}
	return &link{dialer: d}
}

func (l *link) close() {
	if l.conn != nil {
		_ = l.conn.Close()
		l.conn, l.addr = nil, ""
	}
}

// answer is what is read of a receiver's answer.
type answer struct {
	status  int
	snippet []byte
	// cut is set when the body could not be read to its end within the
	// bounds (too long, or too slow).
	cut bool
}

// roundTrip sends req (whose body is GetBody's) and reads its answer by
// ctx's deadline. A connection that had been idle and turns out closed by the
// receiver before any byte of the answer came is dialled again, once.
func (l *link) roundTrip(ctx context.Context, req *http.Request) (answer, error) {
	addr := req.URL.Scheme + "://" + net.JoinHostPort(req.URL.Hostname(), port(req))
	for attempt := 0; ; attempt++ {
		reused := l.conn != nil && l.addr == addr && time.Since(l.used) < linkIdle
		if !reused {
			l.close()
			if err := l.dial(ctx, req, addr); err != nil {
				return answer{}, err
			}
		}
		a, fresh, err := l.exchange(ctx, req)
		if err == nil {
			l.used = time.Now()
			return a, nil
		}
		l.close()
		if !reused || !fresh || attempt > 0 || ctx.Err() != nil {
			return answer{}, err
		}
	}
}

func (l *link) dial(ctx context.Context, req *http.Request, addr string) error {
	c, err := l.dialer.DialContext(ctx, "tcp", net.JoinHostPort(req.URL.Hostname(), port(req)))
	if err != nil {
		return err
	}
	if req.URL.Scheme == "https" {
		tc := tls.Client(c, &tls.Config{ServerName: req.URL.Hostname(), MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return err
		}
		c = tc
	}
	l.conn, l.addr = c, addr
	return nil
}

func port(req *http.Request) string {
	if p := req.URL.Port(); p != "" {
		return p
	}
	if req.URL.Scheme == "https" {
		return "443"
	}
	return "80"
}

// exchange writes req on the connection and reads the answer. fresh reports
// that not one byte of an answer arrived (the receiver may have closed the
// connection before it read the request).
func (l *link) exchange(ctx context.Context, req *http.Request) (a answer, fresh bool, err error) {
	c := l.conn
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) }) // a stopping deliverer unblocks
	defer stop()
	body, err := req.GetBody()
	if err != nil {
		return a, false, err
	}
	r := *req
	r.Body = body
	if err := r.Write(c); err != nil {
		return a, true, err
	}
	lr := &io.LimitedReader{R: c, N: maxAnswerHeader + maxAnswerBytes}
	resp, err := http.ReadResponse(bufio.NewReaderSize(lr, 4<<10), &r)
	if err != nil {
		return a, lr.N == maxAnswerHeader+maxAnswerBytes, err
	}
	a.status = resp.StatusCode
	a.snippet = make([]byte, maxSnippet)
	n, _ := io.ReadFull(resp.Body, a.snippet)
	a.snippet = a.snippet[:n]
	// Read on, bounded, so that the connection can carry the next delivery.
	rest := maxAnswerBytes - int64(n)
	copied, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, rest+1))
	resp.Body.Close()
	a.cut = rerr != nil || copied > rest
	if a.cut || resp.Close {
		l.close()
	}
	return a, false, nil
}

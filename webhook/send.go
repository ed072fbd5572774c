package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/webhooksig"
)

// What a delivery reads of the receiver's answer: its status, and at most
// maxAnswerBytes of its body (a snippet of which explains a failure), within
// the attempt's timeout. A receiver that answers slowly, endlessly or never
// costs one attempt's timeout and one connection, nothing more.
const (
	maxAnswerBytes      = 4 << 10
	maxAnswerHeader     = 16 << 10
	maxSnippet          = 128
	dialTimeout         = 5 * time.Second
	userAgent           = "daodian-webhook/1"
	maxIdlePerReceiver  = 4
	idleConnTimeout     = 60 * time.Second
	tlsHandshakeTimeout = 5 * time.Second
)

// Addresses a delivery never connects to unless Config.AllowMetadata: where
// clouds serve instance metadata and credentials. Link-local ranges (AWS, GCP,
// Azure, Oracle, Tencent: 169.254.169.254), Alibaba Cloud's 100.100.100.200
// and AWS's IPv6 fd00:ec2::254. Private and loopback addresses stay allowed:
// daodian is self-hosted, and the POS back offices it notifies live on the
// same LAN or machine.
var metadataPrefixes = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("100.100.100.200/32"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

// errMetadataAddress is a dial refused by the address policy.
var errMetadataAddress = errors.New("refused: a link-local or cloud metadata address (serve --webhook-allow-metadata allows it)")

// Refused reports whether the deliverer refuses to connect to ip unless told
// to allow metadata addresses.
func Refused(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range metadataPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// newClient returns the deliveries' HTTP client: no redirects followed (a
// 3xx is an answer, and not a 2xx), no proxy (a proxy would hide the address
// actually reached from the policy), every dialled address checked after name
// resolution (so a name that resolves to a metadata address is refused too),
// and bounded answers.
func newClient(allowMetadata bool) *http.Client {
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
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		MaxIdleConnsPerHost:    maxIdlePerReceiver,
		IdleConnTimeout:        idleConnTimeout,
		MaxResponseHeaderBytes: maxAnswerHeader,
		DisableCompression:     true,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// attempt is the outcome of one POST.
type attempt struct {
	status  int
	latency time.Duration
	err     string // "" when delivered
}

// send POSTs one event to a webhook and reports what happened. It returns
// errCancelled, and no attempt, when ctx ended (the deliverer is stopping): an
// attempt cut short by ourselves says nothing about the receiver.
func (d *Deliverer) send(ctx context.Context, w *daodian.Webhook, ev *daodian.Record, body []byte) (attempt, error) {
	actx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return attempt{err: "the webhook's URL cannot be requested"}, nil
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", userAgent)
	h.Set(webhooksig.HeaderEventID, ev.ID)
	h.Set(webhooksig.HeaderEventType, string(daodian.EventTypeOf(ev.Kind)))
	h.Set(webhooksig.HeaderSignature, webhooksig.Sign(w.Secret, d.clock.Now(), body))
	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return attempt{}, errCancelled
		}
		return attempt{latency: time.Since(start), err: describe(err, actx, d.cfg.Timeout)}, nil
	}
	snippet := make([]byte, maxSnippet)
	n, _ := io.ReadFull(resp.Body, snippet)
	// Read on, bounded, so that a small answer leaves the connection reusable.
	_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes-int64(n)))
	resp.Body.Close()
	a := attempt{status: resp.StatusCode, latency: time.Since(start)}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return a, nil
	}
	if ctx.Err() != nil {
		return attempt{}, errCancelled
	}
	a.err = "HTTP " + strconv.Itoa(resp.StatusCode)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		a.err += " (redirects are not followed)"
	}
	if s := printable(snippet[:n]); s != "" {
		a.err += ": " + s
	}
	if rerr != nil && actx.Err() != nil {
		a.err += " (the answer's body did not arrive in time)"
	}
	return a, nil
}

var errCancelled = errors.New("webhook: delivery cancelled")

// describe says why a request failed, without the URL (its query may hold a
// receiver's token) and within MaxAttemptError.
func describe(err error, actx context.Context, timeout time.Duration) string {
	if errors.Is(err, errMetadataAddress) {
		return errMetadataAddress.Error()
	}
	if actx.Err() != nil {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return clip(err.Error(), daodian.MaxAttemptError)
}

// printable returns the valid UTF-8 prefix of b with control characters as
// spaces, for an error message.
func printable(b []byte) string {
	out := make([]rune, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			break
		}
		if r < ' ' || r == 0x7f {
			r = ' '
		}
		out = append(out, r)
		b = b[size:]
	}
	return string(bytes.TrimSpace([]byte(string(out))))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

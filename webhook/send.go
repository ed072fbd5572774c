package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
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
	maxAnswerBytes  = 4 << 10
	maxAnswerHeader = 16 << 10
	maxSnippet      = 128
	dialTimeout     = 5 * time.Second
	userAgent       = "daodian-webhook/1"
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

// attempt is the outcome of one POST.
type attempt struct {
	status  int
	latency time.Duration
	err     string // "" when delivered
}

// send POSTs one event to a webhook on the worker's link and reports what
// happened. It returns errCancelled, and no attempt, when ctx ended (the
// deliverer is stopping): an attempt cut short by ourselves says nothing about
// the receiver.
func (d *Deliverer) send(ctx context.Context, l *link, w *daodian.Webhook, ev *daodian.Record, body []byte) (attempt, error) {
	start := time.Now() // before the deadline is set: a timeout's latency is the timeout
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
	ans, err := l.roundTrip(actx, req)
	if ctx.Err() != nil {
		return attempt{}, errCancelled
	}
	a := attempt{status: ans.status, latency: time.Since(start)}
	if err != nil {
		a.status, a.err = 0, describe(err, actx, d.cfg.Timeout)
		return a, nil
	}
	if a.status >= 200 && a.status < 300 {
		return a, nil
	}
	a.err = "HTTP " + strconv.Itoa(a.status)
	if a.status >= 300 && a.status < 400 {
		a.err += " (redirects are not followed)"
	}
	if s := printable(ans.snippet); s != "" {
		a.err += ": " + s
	}
	if ans.cut && actx.Err() != nil {
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
	if actx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
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

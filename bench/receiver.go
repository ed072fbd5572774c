package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daodian/daodian/webhooksig"
)

// Receiver is a webhook receiver run by the load generator (SPEC §6: the
// events lag under load): it verifies each delivery's signature, dedupes on
// event_id, and answers at once (ReceiverFast) or after 10 s (ReceiverSleep,
// a receiver as slow as a delivery's timeout, to show it does not slow the
// ledger).
type Receiver struct {
	Mode string
	srv  *http.Server
	ln   net.Listener

	mu         sync.Mutex
	secret     string
	seen       map[string]bool
	deliveries int64
	bad        int64
}

// The receiver modes of `daodian bench --webhook-receiver`.
const (
	ReceiverFast  = "fast"
	ReceiverSleep = "sleep10s"
)

// receiverSleep is how long a ReceiverSleep receiver takes to answer.
const receiverSleep = 10 * time.Second

// StartReceiver listens on a free loopback port and serves deliveries.
func StartReceiver(mode string) (*Receiver, error) {
	if mode != ReceiverFast && mode != ReceiverSleep {
		return nil, fmt.Errorf("a webhook receiver is %s or %s, not %q", ReceiverFast, ReceiverSleep, mode)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Receiver{Mode: mode, ln: ln, seen: map[string]bool{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// URL is where the receiver listens.
func (r *Receiver) URL() string { return "http://" + r.ln.Addr().String() + "/hook" }

// SetSecret gives the receiver the webhook's secret, to verify deliveries.
func (r *Receiver) SetSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	r.mu.Lock()
	secret := r.secret
	r.mu.Unlock()
	var ev struct {
		EventID string `json:"event_id"`
	}
	if err == nil {
		err = webhooksig.Verify(secret, req.Header.Get(webhooksig.HeaderSignature), body, time.Minute, time.Now())
	}
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	r.mu.Lock()
	r.deliveries++
	if err != nil {
		r.bad++
	} else {
		r.seen[ev.EventID] = true
	}
	r.mu.Unlock()
	if r.Mode == ReceiverSleep {
		select {
		case <-time.After(receiverSleep):
		case <-req.Context().Done():
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Counts returns the distinct events received, the deliveries, and the
// deliveries that did not verify.
func (r *Receiver) Counts() (events int, deliveries, bad int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen), r.deliveries, r.bad
}

// Has reports whether an event was received.
func (r *Receiver) Has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[id]
}

// Close stops the receiver.
func (r *Receiver) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		_ = r.srv.Close()
	}
}

// ScrapeGauge reads one unlabelled gauge from base/metrics.
func ScrapeGauge(ctx context.Context, base, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New(name + " is not among the metrics")
}

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daodian/daodian/webhooksig"
)

// Receiver is the webhook receiver of a bench run (SPEC §6: the events' lag
// under load). It runs in a process of its own, as a POS back office would,
// so that its answers do not wait for the load generator's goroutines: it
// verifies each delivery's signature, dedupes on event_id, and answers at once
// (ReceiverFast) or after 10 s (ReceiverSleep: a receiver as slow as a
// delivery's timeout, to show that it does not slow the ledger).
//
// Deliveries come to /hook; the load generator sets the webhook's secret and
// reads the counts and the event ids received under /control/ (loopback only,
// like the whole receiver).
type Receiver struct {
	mode string

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

// NewReceiver returns a receiver of the mode.
func NewReceiver(mode string) (*Receiver, error) {
	if mode != ReceiverFast && mode != ReceiverSleep {
		return nil, fmt.Errorf("a webhook receiver is %s or %s, not %q", ReceiverFast, ReceiverSleep, mode)
	}
	return &Receiver{mode: mode, seen: map[string]bool{}}, nil
}

// Handler serves the deliveries and the controls.
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", r.deliver)
	mux.HandleFunc("POST /control/secret", func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(io.LimitReader(req.Body, 1024))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.secret = string(b)
		r.mu.Unlock()
	})
	mux.HandleFunc("GET /control/stats", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		_ = json.NewEncoder(w).Encode(ReceiverStats{Events: len(r.seen), Deliveries: r.deliveries, Bad: r.bad})
	})
	mux.HandleFunc("GET /control/ids", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		ids := make([]string, 0, len(r.seen))
		for id := range r.seen {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		sort.Strings(ids)
		bw := bufio.NewWriter(w)
		for _, id := range ids {
			bw.WriteString(id + "\n")
		}
		_ = bw.Flush()
	})
	return mux
}

func (r *Receiver) deliver(w http.ResponseWriter, req *http.Request) {
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
	if r.mode == ReceiverSleep {
		select {
		case <-time.After(receiverSleep):
		case <-req.Context().Done():
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// ReceiverStats are a receiver's counts: distinct events, deliveries, and
// deliveries that did not verify.
type ReceiverStats struct {
	Events     int   `json:"events"`
	Deliveries int64 `json:"deliveries"`
	Bad        int64 `json:"bad"`
}

// ReceiverClient is the load generator's handle on a receiver running at Base
// (http://host:port).
type ReceiverClient struct {
	Base string
	Mode string
}

// URL is the webhook's URL.
func (c *ReceiverClient) URL() string { return c.Base + "/hook" }

// SetSecret gives the receiver the webhook's secret, to verify deliveries.
func (c *ReceiverClient) SetSecret(ctx context.Context, secret string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+"/control/secret", strings.NewReader(secret))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("the receiver refused the secret: " + resp.Status)
	}
	return nil
}

// Stats returns the receiver's counts.
func (c *ReceiverClient) Stats(ctx context.Context) (ReceiverStats, error) {
	var s ReceiverStats
	body, err := c.get(ctx, "/control/stats")
	if err == nil {
		err = json.Unmarshal(body, &s)
	}
	return s, err
}

// IDs returns the event ids the receiver got.
func (c *ReceiverClient) IDs(ctx context.Context) (map[string]bool, error) {
	body, err := c.get(ctx, "/control/ids")
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, id := range strings.Fields(string(body)) {
		ids[id] = true
	}
	return ids, nil
}

func (c *ReceiverClient) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 256<<20))
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

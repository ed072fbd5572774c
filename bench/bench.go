// Package bench is the load generator of SPEC §6: signed use-then-reverse pairs plus
// replays over keep-alive HTTP from C concurrent clients, and the baseline — a bare
// net/http handler answering a fixed body — driven by the same client.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/top"
)

// Ticket is a ticket the load may use.
type Ticket struct {
	ID, Code string
}

// Config describes one load run.
type Config struct {
	URL         string // gateway endpoint, …/router/rest
	AppKey      string
	AppSecret   string
	ShopID      string
	Tickets     []Ticket
	Concurrency int
	Duration    time.Duration
	// RunID makes request ids unique across runs on one ledger.
	RunID string
}

// Result is what a run measured.
type Result struct {
	Requests    int64   `json:"requests"`
	OpsPerS     float64 `json:"ops_per_s"`
	UsesPerS    float64 `json:"uses_per_s"`
	ReversePerS float64 `json:"reversals_per_s"`
	ReplayPerS  float64 `json:"replays_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	MaxMs       float64 `json:"max_ms"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	DurationS   float64 `json:"duration_s"`
}

// MaxConcurrency bounds the clients of one run.
const MaxConcurrency = 4096

// maxSamplesPerWorker bounds the latency samples one worker keeps; a steady load's
// percentiles are well estimated by its first million requests per client.
const maxSamplesPerWorker = 1 << 20

// NewHTTPClient returns a keep-alive client with one idle connection per worker.
func NewHTTPClient(concurrency int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency * 2,
		MaxConnsPerHost:     concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// signer builds signed request bodies as an SDK does: md5 signing over the
// sorted parameters (top.Sign), urlencoded POST.
type signer struct {
	appKey, secret string
}

func (s *signer) body(method string, business [][2]string, now time.Time) []byte {
	m := make(map[string]string, 8)
	m["app_key"] = s.appKey
	m["format"] = "json"
	m["method"] = method
	m["sign_method"] = top.SignMD5
	m["timestamp"] = top.FormatTime(now)
	m["v"] = "2.0"
	for _, p := range business {
		m[p[0]] = p[1]
	}
	p := top.NewParams(m)
	sign, err := top.Sign(p, s.secret, top.SignMD5)
	if err != nil {
		panic(err) // md5 is a known method
	}
	b := make([]byte, 0, 512)
	p.Each(func(name, value string) {
		b = append(b, name...)
		b = append(b, '=')
		b = append(b, url.QueryEscape(value)...)
		b = append(b, '&')
	})
	b = append(b, "sign="...)
	b = append(b, sign...)
	return b
}

type worker struct {
	cfg     *Config
	client  *http.Client
	signer  signer
	samples []time.Duration
	errors  int64
	first   string
	uses    int64
	revs    int64
	replays int64
}

func (w *worker) record(d time.Duration) {
	if len(w.samples) < maxSamplesPerWorker {
		w.samples = append(w.samples, d)
	}
}

func (w *worker) fail(msg string) {
	w.errors++
	if w.first == "" {
		w.first = msg
	}
}

// post sends one request and returns its body (nil on a transport failure).
func (w *worker) post(ctx context.Context, body []byte, buf *bytes.Buffer) ([]byte, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		w.fail(err.Error())
		return nil, false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			w.fail(err.Error())
		}
		return nil, false
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		if ctx.Err() == nil {
			w.fail(err.Error())
		}
		return nil, false
	}
	w.record(time.Since(start))
	return buf.Bytes(), true
}

var (
	errorResponse = []byte(`"error_response"`)
	successTrue   = []byte(`"success":true`)
	transIDKey    = []byte(`"ticket_trans_id":"`)
)

// run drives use → reverse → replay-of-the-reverse cycles over this worker's
// tickets until ctx ends.
func (w *worker) run(ctx context.Context, id int, tickets []Ticket) {
	var buf bytes.Buffer
	for cycle := 0; ctx.Err() == nil; cycle++ {
		t := tickets[cycle%len(tickets)]
		now := time.Now()
		uid := w.cfg.RunID + "-" + strconv.Itoa(id) + "-" + strconv.Itoa(cycle)
		useReq := `{"ticket_code":"` + t.Code + `","shop_id":"` + w.cfg.ShopID + `","ticket_request_id":"u` + uid + `"}`
		resp, ok := w.post(ctx, w.signer.body(alsc.MethodUse, [][2]string{{alsc.ParamUseRequest, useReq}}, now), &buf)
		if !ok {
			continue
		}
		w.uses++
		i := bytes.Index(resp, transIDKey)
		if i < 0 || bytes.Contains(resp, errorResponse) {
			w.fail("use: " + string(resp))
			continue
		}
		rest := resp[i+len(transIDKey):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			w.fail("use: " + string(resp))
			continue
		}
		trans := string(rest[:j])
		revReq := `{"request_id":"r` + uid + `","ticket_id":"` + t.ID + `","ticket_use_trans_id":"` + trans + `"}`
		body := w.signer.body(alsc.MethodReserve, [][2]string{{alsc.ParamReverseRequest, revReq}}, now)
		for k := 0; k < 2 && ctx.Err() == nil; k++ {
			resp, ok = w.post(ctx, body, &buf)
			if !ok {
				break
			}
			if k == 0 {
				w.revs++
			} else {
				w.replays++
			}
			if !bytes.Contains(resp, successTrue) {
				w.fail("reserve: " + string(resp))
				break
			}
		}
	}
}

// Run drives the ledger load of cfg and measures it.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency {
		return nil, fmt.Errorf("concurrency must be between 1 and %d", MaxConcurrency)
	}
	if len(cfg.Tickets) < cfg.Concurrency {
		return nil, fmt.Errorf("need at least one ticket per client: %d tickets, %d clients", len(cfg.Tickets), cfg.Concurrency)
	}
	client := NewHTTPClient(cfg.Concurrency)
	defer client.CloseIdleConnections()
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		workers[i] = &worker{cfg: &cfg, client: client, signer: signer{cfg.AppKey, cfg.AppSecret}}
	}
	// Each client owns every C-th ticket, so pairs of one client never race with
	// another's on a ticket: the load measures throughput, not contention.
	shares := make([][]Ticket, cfg.Concurrency)
	for i, t := range cfg.Tickets {
		shares[i%cfg.Concurrency] = append(shares[i%cfg.Concurrency], t)
	}
	// Each client visits its tickets in its own random order, so that a run
	// touches tickets all over the ledger, as a till's customers do, and a
	// ledger larger than the caches costs what it costs (in id order, the
	// clients together would sweep one narrow, cache-friendly band of it).
	for i, share := range shares {
		r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
		r.Shuffle(len(share), func(a, b int) { share[a], share[b] = share[b], share[a] })
	}
	elapsed := drive(ctx, cfg.Duration, len(workers), func(ctx context.Context, i int) { workers[i].run(ctx, i, shares[i]) })
	res := &Result{DurationS: elapsed.Seconds()}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.samples...)
		res.Errors += w.errors
		if res.FirstError == "" {
			res.FirstError = w.first
		}
		res.UsesPerS += float64(w.uses)
		res.ReversePerS += float64(w.revs)
		res.ReplayPerS += float64(w.replays)
	}
	res.Requests = int64(res.UsesPerS + res.ReversePerS + res.ReplayPerS)
	s := elapsed.Seconds()
	res.OpsPerS = float64(res.Requests) / s
	res.UsesPerS /= s
	res.ReversePerS /= s
	res.ReplayPerS /= s
	fillPercentiles(res, all)
	if res.Requests == 0 {
		return res, errors.New("no request was answered")
	}
	return res, nil
}

// drive runs n copies of fn until d has passed and returns the time they ran.
func drive(ctx context.Context, d time.Duration, n int, fn func(ctx context.Context, i int)) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(ctx, i)
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func fillPercentiles(r *Result, all []time.Duration) {
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	at := func(q float64) float64 {
		i := int(q * float64(len(all)-1))
		return float64(all[i].Microseconds()) / 1000
	}
	r.P50ms, r.P99ms, r.P999ms = at(0.50), at(0.99), at(0.999)
	r.MaxMs = float64(all[len(all)-1].Microseconds()) / 1000
}

// BaselineBody is the fixed answer of the baseline handler: the size of a reversal
// answer.
var BaselineBody = []byte(`{"alibaba_alsc_daodian_ticket_reserve_response":{"result":{"success":true},"request_id":"0123456789abcdef"}}`)

// BaselineHandler is the bare net/http handler of SPEC §6.
func BaselineHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		_, _ = w.Write(BaselineBody)
	})
}

// Baseline drives the baseline handler at url with the same client, the same
// signed request bodies and the same concurrency, and returns requests per second.
func Baseline(ctx context.Context, baseURL string, cfg Config) (*Result, error) {
	client := NewHTTPClient(cfg.Concurrency)
	defer client.CloseIdleConnections()
	workers := make([]*worker, cfg.Concurrency)
	c2 := cfg
	c2.URL = baseURL
	for i := range workers {
		workers[i] = &worker{cfg: &c2, client: client, signer: signer{cfg.AppKey, cfg.AppSecret}}
	}
	elapsed := drive(ctx, cfg.Duration, len(workers), func(ctx context.Context, i int) {
		w := workers[i]
		var buf bytes.Buffer
		for n := 0; ctx.Err() == nil; n++ {
			revReq := `{"request_id":"b` + strconv.Itoa(i) + "-" + strconv.Itoa(n) + `","ticket_id":"2100000000000000001"}`
			if _, ok := w.post(ctx, w.signer.body(alsc.MethodReserve, [][2]string{{alsc.ParamReverseRequest, revReq}}, time.Now()), &buf); ok {
				w.revs++
			}
		}
	})
	res := &Result{DurationS: elapsed.Seconds()}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.samples...)
		res.Requests += w.revs
		res.Errors += w.errors
	}
	res.OpsPerS = float64(res.Requests) / elapsed.Seconds()
	fillPercentiles(res, all)
	return res, nil
}

package gateway

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daodian/daodian/alsc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names, as exported at GET /metrics (docs/operations.md lists them with
// their labels).
const (
	MetricRequests        = "daodian_requests_total"
	MetricRequestDuration = "daodian_request_duration_seconds"
	MetricInFlight        = "daodian_requests_in_flight"
	MetricAdmitted        = "daodian_requests_admitted"
	MetricCommitBatch     = "daodian_store_commit_batch_size"
	MetricCommitDuration  = "daodian_store_commit_duration_seconds"
)

// Label values that stand for a bounded set of others.
const (
	// MethodUnknown labels a request whose method is missing, not registered,
	// or could not be read because the request itself was malformed.
	MethodUnknown = "unknown"
	// OutcomeOther labels the outcomes of a method beyond maxOutcomeLabels; it
	// never appears unless something produces unbounded outcome names.
	OutcomeOther = "other"
)

// Bounds on label values. The gateway only reports registered method names and
// a closed set of outcomes, so these are never reached in practice; they exist
// so that a bug can never turn a label into an unbounded set of time series.
const (
	maxMethodLabels  = 64
	maxOutcomeLabels = 128
)

// DurationBuckets are the upper bounds, in seconds, of the request and commit
// latency histograms: 0.5 ms to 5 s in 1-2-5 steps, so that the SPEC §6 p99
// target (20 ms) is a bucket boundary.
var DurationBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}

// BatchBuckets are the upper bounds of the commit batch size histogram: powers of
// two up to twice the embedded store's default batch bound (256).
var BatchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}

// Metrics is the Prometheus instrumentation of one gateway, on a registry of its
// own (no global state: several gateways in one process, as in tests, do not
// collide). It is the gateway's Observer, and it receives the commit reports of
// the embedded store through ObserveCommit. Safe for concurrent use.
//
// Observe is on the hot path of every request, so the children of the labelled
// metrics are looked up in copy-on-write maps without locks or label hashing;
// a child is created once, the first time its label values are seen.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	inFlight       prometheus.Gauge
	admitted       prometheus.Gauge
	commitBatch    prometheus.Histogram
	commitDuration prometheus.Histogram

	mu      sync.Mutex // serialises the creation of children
	methods atomic.Pointer[map[string]*methodMetrics]
}

// methodMetrics holds the children of one method label value.
type methodMetrics struct {
	label    string
	duration prometheus.Observer
	outcomes atomic.Pointer[map[string]prometheus.Counter]
}

// NewMetrics returns the metrics of one gateway on a fresh registry that also
// holds the Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests,
			Help: "TOP requests answered, by method and outcome: success, a business error_code (result.success=false), the sub_code of a code-50 refusal, code_N for other platform errors, server_busy (shed by the concurrency limit), fault_error or fault_lose_response (injected by a fault rule).",
		}, []string{"method", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricRequestDuration,
			Help:    "Time from receiving a TOP request to having written its answer, by method.",
			Buckets: DurationBuckets,
		}, []string{"method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricInFlight,
			Help: "TOP requests received and not yet answered: sending their body, being checked, or in their method.",
		}),
		admitted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricAdmitted,
			Help: "TOP requests holding one of the --max-concurrent slots now: authenticated and in their method. Never more than the limit.",
		}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricCommitBatch,
			Help:    "Store updates made durable by one commit of the embedded store (group commit). Not recorded on PostgreSQL.",
			Buckets: BatchBuckets,
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricCommitDuration,
			Help:    "Time from BEGIN to durable of one commit of the embedded store. Not recorded on PostgreSQL.",
			Buckets: DurationBuckets,
		}),
	}
	m.reg.MustRegister(
		m.requests, m.duration, m.inFlight, m.admitted, m.commitBatch, m.commitDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	empty := map[string]*methodMetrics{}
	m.methods.Store(&empty)
	// The built-in methods and "unknown" exist from the start, so that every
	// method has its latency series and its success count (at zero) before its
	// first request: rate() and dashboards need no special case for "no data".
	for _, s := range alsc.Specs {
		m.counter(m.method(s.Name), "success")
	}
	m.method(MethodUnknown)
	return m
}

// Registry is the registry behind GET /metrics, for registering more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Observe records one answered request; it implements Observer. An empty method
// (the request named none, or could not be parsed) is labelled "unknown".
func (m *Metrics) Observe(method, outcome string, d time.Duration) {
	mm := m.method(method)
	mm.duration.Observe(d.Seconds())
	m.counter(mm, outcome).Inc()
}

// ObserveCommit records one durable commit of the embedded store: how many
// updates it carried and how long it took from BEGIN to durable. Its signature is
// that of sqlite.Options.OnCommit.
func (m *Metrics) ObserveCommit(batchSize int, d time.Duration) {
	m.commitBatch.Observe(float64(batchSize))
	m.commitDuration.Observe(d.Seconds())
}

// method returns the children of a method label, creating them on first use.
func (m *Metrics) method(name string) *methodMetrics {
	if name == "" {
		name = MethodUnknown
	}
	if mm, ok := (*m.methods.Load())[name]; ok {
		return mm
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.methods.Load()
	if mm, ok := old[name]; ok {
		return mm
	}
	if len(old) >= maxMethodLabels {
		if mm, ok := old[MethodUnknown]; ok {
			return mm
		}
		name = MethodUnknown
	}
	mm := &methodMetrics{label: name, duration: m.duration.WithLabelValues(name)}
	empty := map[string]prometheus.Counter{}
	mm.outcomes.Store(&empty)
	next := make(map[string]*methodMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[name] = mm
	m.methods.Store(&next)
	return mm
}

// counter returns the request counter of (method, outcome), creating it on first
// use.
func (m *Metrics) counter(mm *methodMetrics, outcome string) prometheus.Counter {
	if c, ok := (*mm.outcomes.Load())[outcome]; ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *mm.outcomes.Load()
	if c, ok := old[outcome]; ok {
		return c
	}
	if len(old) >= maxOutcomeLabels {
		if c, ok := old[OutcomeOther]; ok {
			return c
		}
		outcome = OutcomeOther
	}
	c := m.requests.WithLabelValues(mm.label, outcome)
	next := make(map[string]prometheus.Counter, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[outcome] = c
	mm.outcomes.Store(&next)
	return c
}

// observers reports to several observers in turn.
type observers []Observer

func (os observers) Observe(method, outcome string, d time.Duration) {
	for _, o := range os {
		o.Observe(method, outcome, d)
	}
}

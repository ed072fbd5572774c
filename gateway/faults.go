package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/top"
	"github.com/prometheus/client_golang/prometheus"
)

// Fault injection (daodian/faults.go): the gateway reads the store's fault rules
// and, for a request of a rule's app that passed every protocol check (SPEC §3.5)
// and is about to reach its method, injects the rule's fault:
//
//   - error: answers a retryable failure without running the method, so that
//     nothing changes and nothing is recorded, exactly as a real transient
//     failure (SYSTEM_ERROR retry=true for the reversal and the consult, code 15
//     isp.service-busy for the others, or the rule's platform code);
//   - lose_response: runs the method (its effect is durable, as for any answer)
//     and closes the connection without writing a byte;
//   - delay: runs the method, then holds the answer back;
//   - hold: keeps a use request, unexecuted, until another request of the same
//     app that passed the protocol checks has been answered (or a bound passed),
//     then executes it: the use arrives after the request
//     that released it (typically its reversal).
//
// Rules are read from the store, not from flags, so that `daodian fault add` in
// another process (on another host, with PostgreSQL) takes effect without a
// restart. The gateway keeps a copy at most FaultOptions.Reload old: the first
// request that finds it older reads the rules again (one small query, one request
// at a time), so an idle gateway costs nothing and a busy one one query per
// interval. A request of an app without rules pays an atomic load, a clock read
// and a map lookup. With FaultOptions.Disabled (`serve --no-faults`) the rules are
// never read.

// FaultOptions configures fault injection (Config.Faults). The zero value injects
// the store's rules.
type FaultOptions struct {
	// Disabled ignores the store's fault rules: a production deployment's
	// guarantee that no rule added by mistake changes an answer.
	Disabled bool
	// Reload bounds the age of the gateway's copy of the rules (default
	// DefaultFaultReload): a rule added or cleared in the store applies to the
	// requests that arrive this long after, at the latest.
	Reload time.Duration
	// MaxHeld bounds the use requests held by hold rules at once (default
	// DefaultMaxHeld); a hold rule matching beyond it does not fire.
	MaxHeld int
}

// Defaults and bounds of fault injection.
const (
	DefaultFaultReload = 500 * time.Millisecond
	DefaultMaxHeld     = 64
	// faultLoadTimeout bounds the read of the rules that one request makes.
	faultLoadTimeout = 2 * time.Second
	// faultGrace is added to the connection's deadlines while a delay or hold
	// fault waits, so that the server's read and write timeouts (serve.go) do
	// not cut short the answer the fault only meant to make late.
	faultGrace = 30 * time.Second
	// heldRunTimeout bounds the execution of a released use, which no longer
	// depends on its caller still waiting.
	heldRunTimeout = 30 * time.Second
)

// Outcomes of answers replaced by a fault, for the request log line and the
// request metrics: they must never read as a failure of the service.
const (
	OutcomeFaultError        = "fault_error"
	OutcomeFaultLoseResponse = "fault_lose_response"
)

// Metric names of fault injection, registered on the gateway's Metrics registry.
const (
	MetricFaultsInjected = "daodian_faults_injected_total"
	MetricFaultsHeld     = "daodian_faults_held_requests"
)

// FaultObserver is an optional interface of Config.Observer: ObserveFault is
// called once for each injected fault with its kind (error, lose_response, delay,
// hold). The gateway's own Metrics count them without it
// (daodian_faults_injected_total{kind}).
type FaultObserver interface {
	ObserveFault(kind string)
}

// faultCall is the fault state of one request, from the running of its method
// to the writing of its answer: the request's deliverer.
type faultCall struct {
	f *faults
	// kind is the fault injected into this request, "" for none.
	kind daodian.FaultKind
	rule string
	// release is set when the answer to this request must release the held uses
	// of its app.
	release bool
}

// faults is the gateway's injector; nil when disabled.
type faults struct {
	ledger   *daodian.Ledger
	log      *slog.Logger
	obs      []FaultObserver
	injected map[daodian.FaultKind]prometheus.Counter // nil without Metrics
	reload   time.Duration
	maxHeld  int

	set     atomic.Pointer[faultSet]
	loadMu  sync.Mutex  // one reload at a time; TryLock, never waited for
	failing atomic.Bool // the last reload failed (logged once per streak)

	nheld  atomic.Int32 // len of every list in held, read without mu
	mu     sync.Mutex
	held   map[string][]*heldUse // by app key
	closed bool                  // ReleaseHeld ran: no more holds
}

// faultSet is one reading of the rules, grouped by app, in id order.
type faultSet struct {
	byApp   map[string][]daodian.FaultRule
	expires time.Time
}

// heldUse is one use request held by a hold rule.
type heldUse struct {
	release chan struct{} // closed, under faults.mu, when released
	by      string        // request id of the answer that released it; "" on shutdown
}

func newFaults(ledger *daodian.Ledger, cfg Config) *faults {
	if cfg.Faults.Disabled {
		return nil
	}
	f := &faults{
		ledger:  ledger,
		log:     cfg.Logger,
		reload:  cfg.Faults.Reload,
		maxHeld: cfg.Faults.MaxHeld,
		held:    make(map[string][]*heldUse),
	}
	if f.reload <= 0 {
		f.reload = DefaultFaultReload
	}
	if f.maxHeld <= 0 {
		f.maxHeld = DefaultMaxHeld
	}
	f.obs = faultObservers(nil, cfg.Observer)
	if cfg.Metrics != nil {
		f.register(cfg.Metrics.Registry())
	}
	return f
}

// faultObservers returns the FaultObservers among o and the observers it
// multiplexes.
func faultObservers(dst []FaultObserver, o Observer) []FaultObserver {
	switch v := o.(type) {
	case observers:
		for _, e := range v {
			dst = faultObservers(dst, e)
		}
	case FaultObserver:
		dst = append(dst, v)
	}
	return dst
}

// register adds the fault metrics to reg: the injections by kind, each at zero
// from the start so that a rate needs no special case, and the held uses. A
// registry that already has them (one Metrics shared by several gateways) keeps
// its own.
func (f *faults) register(reg prometheus.Registerer) {
	injected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricFaultsInjected,
		Help: "Faults injected by fault rules (daodian fault), by kind: answers that are deliberately wrong, late or missing, not failures of the service.",
	}, []string{"kind"})
	if err := reg.Register(injected); err != nil {
		are, ok := err.(prometheus.AlreadyRegisteredError)
		if !ok {
			f.log.Warn("fault metrics not registered", "err", err)
			return
		}
		if injected, ok = are.ExistingCollector.(*prometheus.CounterVec); !ok {
			return
		}
	}
	f.injected = make(map[daodian.FaultKind]prometheus.Counter, len(daodian.FaultKinds))
	for _, k := range daodian.FaultKinds {
		f.injected[k] = injected.WithLabelValues(string(k))
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricFaultsHeld,
		Help: "Use requests held by hold fault rules now, waiting for a later request of their app.",
	}, func() float64 { return float64(f.nheld.Load()) })
	if err := reg.Register(held); err != nil {
		if _, ok := err.(prometheus.AlreadyRegisteredError); !ok {
			f.log.Warn("fault metrics not registered", "err", err)
		}
	}
}

// current returns the rules, read again if the copy is older than the reload
// interval. A request that finds another one reloading goes on with the copy it
// has rather than waiting.
func (f *faults) current() *faultSet {
	s := f.set.Load()
	if s != nil && time.Now().Before(s.expires) {
		return s
	}
	if !f.loadMu.TryLock() {
		if s == nil {
			return &faultSet{}
		}
		return s
	}
	defer f.loadMu.Unlock()
	if s2 := f.set.Load(); s2 != s {
		return s2 // reloaded between the check and the lock
	}
	ctx, cancel := context.WithTimeout(context.Background(), faultLoadTimeout)
	defer cancel()
	rules, err := f.ledger.FaultRules(ctx)
	ns := &faultSet{byApp: make(map[string][]daodian.FaultRule)}
	switch {
	case err != nil:
		// Keep injecting the last rules read rather than none: a test in progress
		// should not change behaviour because the store was briefly busy.
		if s != nil {
			ns.byApp = s.byApp
		}
		if f.failing.CompareAndSwap(false, true) {
			f.log.Warn("fault rules could not be read; keeping the previous ones", "err", err)
		}
	default:
		if f.failing.CompareAndSwap(true, false) {
			f.log.Info("fault rules read again")
		}
		for _, r := range rules {
			ns.byApp[r.AppKey] = append(ns.byApp[r.AppKey], r)
		}
	}
	ns.expires = time.Now().Add(f.reload)
	f.set.Store(ns)
	return ns
}

// wrap returns run with fault injection: for a request of an app with rules, the
// first rule that matches and fires injects its fault around the method; and
// whatever the app, an answer given while uses are held releases its app's. The
// faultCall it returns, if any, delivers the answer (deliver).
func (f *faults) wrap(run runFunc) runFunc {
	return func(r *http.Request, w http.ResponseWriter, c *call, m *Method, in *Input) (top.Body, *top.Error, deliverer) {
		set := f.current()
		rules := set.byApp[c.appKey]
		release := f.nheld.Load() > 0
		if len(rules) == 0 && !release {
			return run(r, w, c, m, in) // the common road: no allocation
		}
		fc := &faultCall{f: f, release: release}
		if len(rules) == 0 {
			body, terr, _ := run(r, w, c, m, in)
			return body, terr, fc
		}
		rule, h := f.pick(r.Context(), set, c, m, in, rules)
		if rule == nil {
			body, terr, _ := run(r, w, c, m, in)
			return body, terr, fc
		}
		body, terr := f.inject(r, w, c, m, in, run, fc, rule, h)
		return body, terr, fc
	}
}

// inject runs the method of a request under the fault of rule.
func (f *faults) inject(r *http.Request, w http.ResponseWriter, c *call, m *Method, in *Input, run runFunc,
	fc *faultCall, rule *daodian.FaultRule, h *heldUse) (top.Body, *top.Error) {
	fc.kind, fc.rule = rule.Kind, rule.ID
	if ctr := f.injected[rule.Kind]; ctr != nil {
		ctr.Inc()
	}
	for _, o := range f.obs {
		o.ObserveFault(string(rule.Kind))
	}
	attrs := []slog.Attr{
		slog.String("request_id", c.requestID), slog.String("app_key", c.appKey),
		slog.String("method", c.method), slog.String("fault", string(rule.Kind)), slog.String("rule_id", rule.ID),
	}
	warn := func(msg string, more ...slog.Attr) {
		f.log.LogAttrs(r.Context(), slog.LevelWarn, msg, append(attrs, more...)...)
	}
	method := func(r *http.Request) (top.Body, *top.Error) {
		body, terr, _ := run(r, w, c, m, in)
		return body, terr
	}
	switch rule.Kind {
	case daodian.FaultError:
		body, terr := faultAnswer(m, rule.Code)
		code := 0
		if terr != nil {
			code = terr.Code
		}
		warn("fault injected: answering a transient failure without running the method", slog.Int("code", code))
		return body, terr
	case daodian.FaultLoseResponse:
		warn("fault injected: the method runs, then the connection closes without an answer")
		return method(r)
	case daodian.FaultDelay:
		warn("fault injected: the method runs, its answer waits", slog.Duration("delay", rule.Wait))
		extendDeadlines(w, rule.Wait)
		body, terr := method(r)
		t := time.NewTimer(rule.Wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done(): // the caller left: nobody to answer late
		}
		return body, terr
	case daodian.FaultHold:
		// The held use releases nobody: it is the late request, not a later one.
		fc.release = false
		warn("fault injected: use held until the app's next request is answered", slog.Duration("max_hold", rule.Wait))
		extendDeadlines(w, rule.Wait)
		start := time.Now()
		by := f.wait(c.appKey, h, rule.Wait)
		warn("held use released: it executes now", slog.String("released_by", by),
			slog.Float64("held_ms", float64(time.Since(start).Microseconds())/1000))
		// It arrives late whether or not its caller still waits for the answer.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), heldRunTimeout)
		defer cancel()
		return method(r.WithContext(ctx))
	}
	return method(r)
}

// pick returns the first rule of rules that matches the request and fires, and
// for a hold rule the request's place among the held uses. A counted rule's
// injection is taken from the store first, so that its count holds across every
// gateway; a rule the store no longer has (spent elsewhere, cleared) does not
// fire, nor does one whose count cannot be taken now.
func (f *faults) pick(ctx context.Context, set *faultSet, c *call, m *Method, in *Input, rules []daodian.FaultRule) (*daodian.FaultRule, *heldUse) {
	ticketID, ticketCode := m.ticket(in)
	for i := range rules {
		r := &rules[i]
		if !r.Matches(c.method, ticketID, ticketCode) || (r.Kind == daodian.FaultHold && c.method != alsc.MethodUse) {
			continue
		}
		if r.Probability < 1 && rand.Float64() >= r.Probability {
			continue
		}
		var h *heldUse
		if r.Kind == daodian.FaultHold {
			if h = f.hold(c.appKey); h == nil {
				f.log.Warn("hold fault skipped: too many held requests", "request_id", c.requestID,
					"rule_id", r.ID, "max_held", f.maxHeld)
				continue
			}
		}
		if r.Count > 0 {
			ok, err := f.ledger.ConsumeFaultRule(ctx, r.ID)
			if err != nil {
				f.log.Warn("fault rule count could not be taken; not injecting", "request_id", c.requestID,
					"rule_id", r.ID, "err", err)
			}
			if !ok {
				if h != nil {
					f.unhold(c.appKey, h)
				}
				if err == nil {
					// Spent or cleared: read the rules again at the next request
					// rather than pay a store write per request until the reload.
					f.set.CompareAndSwap(set, &faultSet{byApp: set.byApp})
				}
				continue
			}
		}
		return r, h
	}
	return nil, nil
}

// hold registers a held use of app, or returns nil when MaxHeld are held or the
// gateway is shutting down.
func (f *faults) hold(app string) *heldUse {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || int(f.nheld.Load()) >= f.maxHeld {
		return nil
	}
	h := &heldUse{release: make(chan struct{})}
	f.held[app] = append(f.held[app], h)
	f.nheld.Add(1)
	return h
}

// unhold removes h if it is still held (a timeout, or a count that could not be
// taken).
func (f *faults) unhold(app string, h *heldUse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.held[app]
	i := slices.Index(list, h)
	if i < 0 {
		return // released meanwhile
	}
	list = slices.Delete(list, i, i+1)
	if len(list) == 0 {
		delete(f.held, app)
	} else {
		f.held[app] = list
	}
	f.nheld.Add(-1)
}

// wait blocks until h is released or limit passes, and says by what: the request
// id of the releasing answer, "shutdown" or "timeout".
func (f *faults) wait(app string, h *heldUse, limit time.Duration) string {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-h.release:
	case <-t.C:
		f.unhold(app, h) // finds nothing if a release won the race
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-h.release:
		if h.by == "" {
			return "shutdown"
		}
		return h.by
	default:
		return "timeout"
	}
}

// release releases the held uses of app, once the answer of request by has been
// sent.
func (f *faults) release(app, by string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.held[app] {
		h.by = by
		close(h.release)
	}
	f.nheld.Add(-int32(len(f.held[app])))
	delete(f.held, app)
}

// ReleaseHeld releases every use held by a hold rule and holds no more. Call it
// when the server shuts down (http.Server.RegisterOnShutdown): the held uses then
// finish with the other in-flight requests instead of outliving the shutdown.
func (g *Gateway) ReleaseHeld() {
	f := g.faults
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for app, list := range f.held {
		for _, h := range list {
			close(h.release)
		}
		delete(f.held, app)
	}
	f.nheld.Store(0)
}

// HeldRequests returns the number of use requests held by hold rules now.
func (g *Gateway) HeldRequests() int {
	if g.faults == nil {
		return 0
	}
	return int(g.faults.nheld.Load())
}

// deliver writes a request's answer, or, under a lose_response fault, closes the
// connection instead; then it releases the uses its app has held.
func (fc *faultCall) deliver(w http.ResponseWriter, c *call, write func()) {
	switch fc.kind {
	case daodian.FaultError:
		c.outcome = OutcomeFaultError
	case daodian.FaultLoseResponse:
		applied := c.outcome
		c.outcome = OutcomeFaultLoseResponse
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			err = conn.Close()
		} else {
			// HTTP/2 has no connection of its own to close. An empty body is as
			// undecodable to a client as no answer, and as silent about the outcome.
			err = fmt.Errorf("connection not closed (%w); answering an empty body instead", err)
		}
		fc.f.log.LogAttrs(context.Background(), slog.LevelWarn, "fault injected: answer dropped",
			slog.String("request_id", c.requestID), slog.String("app_key", c.appKey),
			slog.String("method", c.method), slog.String("fault", string(fc.kind)),
			slog.String("rule_id", fc.rule), slog.String("applied_outcome", applied), slog.Any("err", err))
		fc.releaseHeld(c)
		return
	}
	write()
	if fc.release {
		// The held use must come after this answer: push it out before releasing.
		_ = http.NewResponseController(w).Flush()
	}
	fc.releaseHeld(c)
}

func (fc *faultCall) releaseHeld(c *call) {
	if fc.release && fc.f.nheld.Load() > 0 {
		fc.f.release(c.appKey, c.requestID)
	}
}

// extendDeadlines moves the connection's deadlines past a fault's wait. Without
// it, the server's ReadTimeout would cancel the request's context mid-wait and its
// WriteTimeout would drop the late answer.
func extendDeadlines(w http.ResponseWriter, wait time.Duration) {
	rc := http.NewResponseController(w)
	d := time.Now().Add(wait + faultGrace)
	_ = rc.SetReadDeadline(d)
	_ = rc.SetWriteDeadline(d)
}

// faultAnswer is the answer of an error fault: the method's own answer to a
// transient failure for code 0, else the platform error code.
func faultAnswer(m *Method, code int) (top.Body, *top.Error) {
	if code == 0 {
		if m.Transient != nil {
			return m.Transient(), nil
		}
		code = 15
	}
	return nil, faultErrors[code]()
}

// faultErrors are the platform errors an error rule may answer (SPEC §3.5): every
// code a well-formed request of a known app can meet, except 40 and 50, which name
// a business parameter.
var faultErrors = map[int]func() *top.Error{
	7:  func() *top.Error { return top.ErrAppCallLimited(time.Second) },
	11: top.ErrInsufficientPermissions,
	15: func() *top.Error {
		e := top.ErrRemoteService()
		e.SubCode, e.SubMsg = "isp.service-busy", "系统繁忙,请稍后重试"
		return e
	},
	21: top.ErrMissingMethod,
	22: top.ErrInvalidMethod,
	23: top.ErrInvalidFormat,
	24: top.ErrMissingSignature,
	25: top.ErrInvalidSignature,
	28: top.ErrMissingAppKey,
	29: top.ErrInvalidAppKey,
	30: top.ErrMissingTimestamp,
	31: top.ErrInvalidTimestamp,
	32: top.ErrMissingVersion,
	33: top.ErrInvalidVersion,
	34: top.ErrUnsupportedVersion,
	41: func() *top.Error { return top.ErrInvalidArguments("injected fault") },
}

// FaultCodes returns the platform codes an error rule may answer, in order.
func FaultCodes() []int {
	codes := make([]int, 0, len(faultErrors))
	for c := range faultErrors {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}

// CheckFaultRule checks what only the gateway knows about a rule (the domain's
// FaultRule.Validate checks the rest): its method is one the gateway serves, a
// hold rule is for the use method (only a use can arrive late to harm), and an
// error rule's code is one of FaultCodes.
func CheckFaultRule(r *daodian.FaultRule) error {
	if r.Method != "" && !slices.ContainsFunc(alsc.Specs, func(s alsc.Spec) bool { return s.Name == r.Method }) {
		return &daodian.InvalidParameter{Field: "method", Reason: strconv.Quote(r.Method) + " is not a method of this gateway"}
	}
	if r.Kind == daodian.FaultHold && r.Method != "" && r.Method != alsc.MethodUse {
		return &daodian.InvalidParameter{Field: "method", Reason: "a hold rule applies to " + alsc.MethodUse + " only"}
	}
	if r.Code != 0 && faultErrors[r.Code] == nil {
		return &daodian.InvalidParameter{Field: "code", Reason: fmt.Sprintf("%d is not one of %v", r.Code, FaultCodes())}
	}
	return nil
}

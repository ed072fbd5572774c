package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/top"
)

// settle waits until no request is in flight. A request is observed (metrics,
// Observer, log line) just after its answer is written and before it leaves
// the in-flight gauge, so once the gauge is 0 every answered request has been
// counted.
func (e *env) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for gaugeValue(t, e.scrape(t), gateway.MetricInFlight) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not return to 0", gateway.MetricInFlight)
		}
		time.Sleep(time.Millisecond)
	}
}

// scrape reads GET /metrics and parses it as the Prometheus text format, which
// also proves that the exposition is well-formed.
func (e *env) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := e.srv.Client().Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// requestCounts returns daodian_requests_total as "method outcome" → count.
func requestCounts(t *testing.T, fams map[string]*dto.MetricFamily) map[string]float64 {
	t.Helper()
	f := fams[gateway.MetricRequests]
	if f == nil {
		t.Fatalf("no %s in /metrics", gateway.MetricRequests)
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		l := labelsOf(m)
		out[l["method"]+" "+l["outcome"]] = m.GetCounter().GetValue()
	}
	return out
}

// durationCounts returns the sample count of daodian_request_duration_seconds by
// method.
func durationCounts(t *testing.T, fams map[string]*dto.MetricFamily) map[string]uint64 {
	t.Helper()
	f := fams[gateway.MetricRequestDuration]
	if f == nil {
		t.Fatalf("no %s in /metrics", gateway.MetricRequestDuration)
	}
	out := map[string]uint64{}
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		out[labelsOf(m)["method"]] = h.GetSampleCount()
		bs := h.GetBucket()
		// The text format lists +Inf as a bucket of its own.
		if len(bs) != len(gateway.DurationBuckets)+1 || bs[0].GetUpperBound() != 0.0005 || bs[len(bs)-2].GetUpperBound() != 5 {
			t.Fatalf("latency buckets %v, want 0.5 ms … 5 s", bs)
		}
	}
	return out
}

func gaugeValue(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil || len(f.GetMetric()) != 1 {
		t.Fatalf("no single %s in /metrics", name)
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

// outcomeOfAnswer is what the outcome of a request must be, computed from its
// answer alone: the sub_code of a code-50 error_response, code_N for any other
// error_response, the error_code of a result with success=false, else success.
func outcomeOfAnswer(t *testing.T, a answer) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("not JSON: %s", a.body)
	}
	if raw, ok := m["error_response"]; ok {
		var te topError
		if err := json.Unmarshal(raw, &te); err != nil {
			t.Fatal(err)
		}
		if te.Code == 50 && te.SubCode != "" {
			return te.SubCode
		}
		return "code_" + strconv.Itoa(te.Code)
	}
	for _, raw := range m {
		var inner struct {
			Result *struct {
				Success   bool   `json:"success"`
				ErrorCode string `json:"error_code"`
			} `json:"result"`
		}
		if json.Unmarshal(raw, &inner) == nil && inner.Result != nil && !inner.Result.Success {
			return inner.Result.ErrorCode
		}
	}
	return "success"
}

// TestMetricsOutcomes: every kind of answer, from each platform code of SPEC §3.5
// to business refusals and successes, is counted under the method that was
// called (or "unknown") and the outcome its answer implies; the latency
// histogram has one sample per request; the Observer of the configuration sees
// the same outcomes as the metrics.
func TestMetricsOutcomes(t *testing.T) {
	var o recordingObserver
	e := stdEnv(t, envOpts{cfg: gateway.Config{Observer: &o}, setup: registerPanic})
	e.addApp(daodian.App{Key: "limited", Secret: "ls", Enabled: true, RateLimitPerS: 1})
	e.addApp(daodian.App{Key: "narrow", Secret: "ns", Enabled: true, Methods: []string{alsc.MethodConsult}})
	ctx := context.Background()
	if err := e.ledger.AddShop(ctx, daodian.Shop{MerchantID: "m1", ID: "s1"}); err != nil {
		t.Fatal(err)
	}
	iss, err := e.ledger.Issue(ctx, daodian.IssueRequest{MerchantID: "m1", Quantity: 3, ValidFrom: t0.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	tk := iss.Tickets[0]
	call := func(method string, kv ...string) map[string]string {
		p := e.pubParams(method, testKey)
		for i := 0; i < len(kv); i += 2 {
			p[kv[i]] = kv[i+1]
		}
		return signed(p, testSecret)
	}
	type req struct {
		label string // the method label expected
		send  func() answer
	}
	reqs := []req{
		{alsc.MethodTimeGet, func() answer { return e.get(e.timeGet()) }},
		{alsc.MethodTimeGet, func() answer { return e.get(signed(e.pubParams(alsc.MethodTimeGet, "limited"), "ls")) }},
		{alsc.MethodTimeGet, func() answer { return e.get(signed(e.pubParams(alsc.MethodTimeGet, "limited"), "ls")) }}, // 7
		{alsc.MethodUse, func() answer { return e.get(signed(e.pubParams(alsc.MethodUse, "narrow"), "ns")) }},          // 11
		{"test.panic", func() answer { return e.get(signed(e.pubParams("test.panic", testKey), testSecret)) }},         // 15
		{"unknown", func() answer { return e.get(without(e.timeGet(), testSecret, "method")) }},                        // 21
		{"unknown", func() answer { return e.get(with(e.timeGet(), testSecret, "method", "no.such.method")) }},         // 22
		{alsc.MethodTimeGet, func() answer { return e.get(with(e.timeGet(), testSecret, "format", "yaml")) }},          // 23 (answered in XML)
		{alsc.MethodTimeGet, func() answer {
			p := e.timeGet()
			delete(p, "sign")
			return e.get(p)
		}}, // 24
		{alsc.MethodTimeGet, func() answer { return e.get(with(e.timeGet(), "wrong", "sign_method", "hmac")) }},       // 25
		{alsc.MethodTimeGet, func() answer { return e.get(without(e.timeGet(), testSecret, "app_key")) }},             // 28
		{alsc.MethodTimeGet, func() answer { return e.get(with(e.timeGet(), testSecret, "app_key", "nobody")) }},      // 29
		{alsc.MethodTimeGet, func() answer { return e.get(without(e.timeGet(), testSecret, "timestamp")) }},           // 30
		{alsc.MethodTimeGet, func() answer { return e.get(with(e.timeGet(), testSecret, "timestamp", "yesterday")) }}, // 31
		{alsc.MethodTimeGet, func() answer { return e.get(without(e.timeGet(), testSecret, "v")) }},                   // 32
		{alsc.MethodTimeGet, func() answer { return e.get(with(e.timeGet(), testSecret, "v", "two")) }},               // 33
		{alsc.MethodTimeGet, func() answer { return e.get(with(e.timeGet(), testSecret, "v", "3.0")) }},               // 34
		{alsc.MethodConsult, func() answer { return e.postAll(call(alsc.MethodConsult)) }},                            // 40
		{"unknown", func() answer { return e.postRaw("format=json", "method=a&method=b") }},                           // 41
		{alsc.MethodConsult, func() answer { return e.postAll(e.consult("x")) }},                                      // 50 invalid
		{alsc.MethodConsult, func() answer { return e.postAll(e.consult(validConsult)) }},                             // TICKET_CODE_INVALID
		{alsc.MethodConsult, func() answer {
			return e.postAll(e.consult(`{"request_id":"c","shop_id":"s1","ticket_code":"` + tk.Code + `"}`))
		}},
		{alsc.MethodUse, func() answer {
			return e.postAll(call(alsc.MethodUse, "use_request", `{"ticket_code":"999999999999","shop_id":"s1","ticket_request_id":"u0"}`))
		}}, // isv.ticket-not-found
		{alsc.MethodUse, func() answer {
			return e.postAll(call(alsc.MethodUse, "use_request", `{"ticket_code":"`+tk.Code+`","shop_id":"s1","ticket_request_id":"u1"}`))
		}},
		{alsc.MethodUse, func() answer {
			return e.postAll(call(alsc.MethodUse, "use_request", `{"ticket_code":"`+tk.Code+`","shop_id":"s1","ticket_request_id":"u1"}`))
		}}, // replay: success, biz_code TICKET_ALREADY_USED
		{alsc.MethodUse, func() answer {
			return e.postAll(call(alsc.MethodUse, "use_request", `{"ticket_code":"`+tk.Code+`","shop_id":"s1","quantity":9,"ticket_request_id":"u2"}`))
		}}, // isv.ticket-not-enough-quantity
		{alsc.MethodReserve, func() answer {
			return e.postAll(call(alsc.MethodReserve, "ticket_reverse_top_request", `{"request_id":"r0","ticket_id":"2100000000000999999"}`))
		}}, // TICKET_NOT_FOUND
		{alsc.MethodReserve, func() answer {
			return e.postAll(call(alsc.MethodReserve, "ticket_reverse_top_request", `{"ticket_id":"`+tk.ID+`"}`))
		}}, // 50 isv.invalid-parameter
		{alsc.MethodReserve, func() answer {
			return e.postAll(call(alsc.MethodReserve, "ticket_reverse_top_request", `{"request_id":"r1","ticket_id":"`+tk.ID+`"}`))
		}},
		{alsc.MethodRefund, func() answer {
			return e.postAll(call(alsc.MethodRefund, "trans_id", "2100000000000999999", "ticket_code", tk.Code, "ticket_request_id", "f1"))
		}},
	}
	want := map[string]float64{}
	wantDur := map[string]uint64{}
	var wantSeq []string
	for _, r := range reqs {
		a := r.send()
		var out string
		if a.isJSON() {
			out = outcomeOfAnswer(t, a)
		} else if te := e.errorResponse(a); te != nil && te.Code == 23 {
			out = "code_23" // the one answer in XML: its format was refused
		} else {
			t.Fatalf("unexpected XML answer: %s", a.body)
		}
		want[r.label+" "+out]++
		wantDur[r.label]++
		wantSeq = append(wantSeq, r.label+" "+out)
	}
	// Every platform code this test means to reach was reached.
	for _, c := range []string{"code_7", "code_11", "code_15", "code_21", "code_22", "code_23", "code_24", "code_25", "code_28", "code_29", "code_30", "code_31", "code_32", "code_33", "code_34", "code_40", "code_41",
		"isv.invalid-parameter", "TICKET_CODE_INVALID", "isv.ticket-not-found", "isv.ticket-not-enough-quantity", "TICKET_NOT_FOUND", "isv.use-trans-not-found", "success"} {
		found := false
		for k := range want {
			if strings.HasSuffix(k, " "+c) {
				found = true
			}
		}
		if !found {
			t.Errorf("no request produced outcome %s: %v", c, want)
		}
	}

	e.settle(t)
	fams := e.scrape(t)
	got := requestCounts(t, fams)
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s{%s} = %v, want %v", gateway.MetricRequests, k, got[k], n)
		}
	}
	for k, n := range got {
		if want[k] != n && !(n == 0 && strings.HasSuffix(k, " success")) {
			t.Errorf("unexpected %s{%s} = %v", gateway.MetricRequests, k, n)
		}
	}
	gotDur := durationCounts(t, fams)
	for k, n := range wantDur {
		if gotDur[k] != n {
			t.Errorf("%s{method=%q} count %d, want %d", gateway.MetricRequestDuration, k, gotDur[k], n)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", gateway.MetricCommitBatch, gateway.MetricCommitDuration} {
		if fams[name] == nil {
			t.Errorf("no %s in /metrics", name)
		}
	}

	// The configured Observer saw the same outcomes, in order; its method is
	// the raw one (empty when the request named none).
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.got) != len(wantSeq) {
		t.Fatalf("observer saw %d requests, want %d", len(o.got), len(wantSeq))
	}
	for i, g := range o.got {
		m, out, _ := strings.Cut(g, " ")
		wm, wout, _ := strings.Cut(wantSeq[i], " ")
		if m == "" {
			m = "unknown"
		}
		if m != wm || out != wout {
			t.Errorf("request %d observed as %q, metrics want %q", i, g, wantSeq[i])
		}
	}
}

// TestMetricsPerGateway: each gateway has its own registry, so that two in one
// process neither collide nor count each other's requests.
func TestMetricsPerGateway(t *testing.T) {
	a := stdEnv(t, envOpts{})
	b := stdEnv(t, envOpts{})
	a.get(a.timeGet())
	a.get(a.timeGet())
	b.get(b.timeGet())
	a.settle(t)
	b.settle(t)
	if n := requestCounts(t, a.scrape(t))[alsc.MethodTimeGet+" success"]; n != 2 {
		t.Fatalf("gateway a counted %v time.get, want 2", n)
	}
	if n := requestCounts(t, b.scrape(t))[alsc.MethodTimeGet+" success"]; n != 1 {
		t.Fatalf("gateway b counted %v time.get, want 1", n)
	}
	if a.gw.Metrics() == b.gw.Metrics() || a.gw.Metrics().Registry() == prometheus.DefaultRegisterer {
		t.Fatal("gateways share metrics or use the global registry")
	}
}

// TestMetricsInFlight: a request inside its method is in flight until answered.
func TestMetricsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	e := stdEnv(t, envOpts{setup: func(g *gateway.Gateway) {
		g.Register(&gateway.Method{
			Spec: alsc.Spec{Name: "test.slow"},
			Handle: func(ctx context.Context, in *gateway.Input) (top.Body, *top.Error) {
				close(entered)
				<-release
				return &alsc.TimeGetResponse{Time: top.FormatTime(in.Now)}, nil
			},
		})
	}})
	done := make(chan answer, 1)
	go func() {
		q := values(signed(e.pubParams("test.slow", testKey), testSecret)).Encode()
		resp, err := e.srv.Client().Get(e.url + "?" + q)
		if err != nil {
			done <- answer{body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- answer{status: resp.StatusCode, body: b}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow method was not entered")
	}
	if v := gaugeValue(t, e.scrape(t), gateway.MetricInFlight); v != 1 {
		t.Fatalf("%s = %v with one request inside its method, want 1", gateway.MetricInFlight, v)
	}
	close(release)
	a := <-done
	e.expectOK(a)
	e.settle(t) // the gauge drops when ServeHTTP returns, just after the answer
	if n := requestCounts(t, e.scrape(t))["test.slow success"]; n != 1 {
		t.Fatalf("test.slow success counted %v, want 1", n)
	}
}

// TestMetricsLabelsBounded: however many distinct methods and outcomes are
// reported, the number of series stays bounded.
func TestMetricsLabelsBounded(t *testing.T) {
	m := gateway.NewMetrics()
	for i := range 1000 {
		m.Observe(fmt.Sprintf("m%d", i), "success", time.Millisecond)
		m.Observe(alsc.MethodReserve, fmt.Sprintf("CODE_%d", i), time.Millisecond)
	}
	m.Observe("", "code_21", time.Millisecond)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		switch f.GetName() {
		case gateway.MetricRequests:
			methods, reserveOutcomes := map[string]bool{}, 0
			sawOther, sawUnknown21 := false, false
			for _, s := range f.GetMetric() {
				l := labelsOf(s)
				methods[l["method"]] = true
				if l["method"] == alsc.MethodReserve {
					reserveOutcomes++
					sawOther = sawOther || l["outcome"] == gateway.OutcomeOther
				}
				sawUnknown21 = sawUnknown21 || (l["method"] == gateway.MethodUnknown && l["outcome"] == "code_21")
			}
			if len(methods) > 65 || reserveOutcomes > 130 || !sawOther || !sawUnknown21 {
				t.Fatalf("%d method labels, %d reserve outcomes (other: %v, unknown code_21: %v); want bounded", len(methods), reserveOutcomes, sawOther, sawUnknown21)
			}
		case gateway.MetricRequestDuration:
			if n := len(f.GetMetric()); n > 65 {
				t.Fatalf("%d latency series, want at most 65", n)
			}
		}
	}
}

// TestObserveCommit: the embedded store's commit reports land in the batch size
// and commit duration histograms.
func TestObserveCommit(t *testing.T) {
	m := gateway.NewMetrics()
	m.ObserveCommit(1, time.Millisecond)
	m.ObserveCommit(40, 3*time.Millisecond)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for _, f := range fams {
		switch f.GetName() {
		case gateway.MetricCommitBatch:
			h := f.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 2 || h.GetSampleSum() != 41 {
				t.Fatalf("batch histogram count %d sum %v, want 2 and 41", h.GetSampleCount(), h.GetSampleSum())
			}
			seen++
		case gateway.MetricCommitDuration:
			h := f.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 2 || h.GetSampleSum() < 0.0039 || h.GetSampleSum() > 0.0041 {
				t.Fatalf("commit duration count %d sum %v, want 2 and 0.004", h.GetSampleCount(), h.GetSampleSum())
			}
			seen++
		}
	}
	if seen != 2 {
		t.Fatalf("found %d of the 2 commit histograms", seen)
	}
}

// BenchmarkMetricsObserve is the cost Observe adds to every request, from many
// goroutines at once.
func BenchmarkMetricsObserve(b *testing.B) {
	m := gateway.NewMetrics()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(alsc.MethodReserve, "success", 1500*time.Microsecond)
		}
	})
}

// BenchmarkMetricsWithLabelValues is the naive alternative to Observe's cached
// children (label hashing and a locked lookup per call), for comparison.
func BenchmarkMetricsWithLabelValues(b *testing.B) {
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"method", "outcome"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "d", Buckets: gateway.DurationBuckets}, []string{"method"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			dur.WithLabelValues(alsc.MethodReserve).Observe(0.0015)
			reqs.WithLabelValues(alsc.MethodReserve, "success").Inc()
		}
	})
}

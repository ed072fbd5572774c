package gateway

import (
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/top"
)

// TestTrafficQuantile: the p99 of a minute is the bound of the bucket holding
// its 99th percentile: never below the true value, at most 26 % above it.
func TestTrafficQuantile(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		name       string
		fast, slow int
		want       time.Duration // the true p99
	}{
		{"one slow in a hundred", 99, 1, time.Millisecond},
		{"two slow in a hundred", 98, 2, time.Second},
		{"all fast", 10, 0, time.Millisecond},
		{"all slow", 0, 3, time.Second},
	} {
		var tr traffic
		for range c.fast {
			tr.add(now, time.Millisecond, false)
		}
		for range c.slow {
			tr.add(now, time.Second, true)
		}
		var sum [trafficMinutes]minuteSum
		tr.sumInto(&sum, now.Unix()/60)
		got := sum[trafficMinutes-1].quantile(0.99)
		if got < c.want || float64(got) > 1.26*float64(c.want) {
			t.Errorf("%s: p99 %v, want %v to 26 %% above", c.name, got, c.want)
		}
		if s := sum[trafficMinutes-1]; s.requests != uint64(c.fast+c.slow) || s.errors != uint64(c.slow) {
			t.Errorf("%s: %d requests, %d errors", c.name, s.requests, s.errors)
		}
	}
	if b := latencyBucket(time.Hour); b != latencyBuckets-1 {
		t.Errorf("an hour falls in bucket %d, want the last", b)
	}
	if latencyBound(latencyBuckets-1) < 60*time.Second {
		t.Errorf("the last bucket's bound %v is below the longest fault wait", latencyBound(latencyBuckets-1))
	}
}

// BenchmarkRequestLogRecord is the request log's cost on the hot path: one
// answered reversal, as the gateway hands it over (its parameters, its
// answer), logged by every core at once into one app's ring.
func BenchmarkRequestLogRecord(b *testing.B) {
	l := newRequestLog(RequestLogOptions{}, time.Now)
	app := &daodian.App{Key: "1cdbbe695f580f9aed2bb3b8ce17fc60", Secret: "39e5d195b5a7b68566cd8d00f5c6ab0e", Merchants: []string{"m1"}}
	p := top.NewParams(map[string]string{
		"method": alsc.MethodReserve, "app_key": app.Key, "timestamp": "2026-11-30 12:00:00", "v": "2.0", "format": "json",
		"sign_method": "md5", "sign": "0123456789ABCDEF0123456789ABCDEF",
		"ticket_reverse_top_request": `{"request_id":"r-000123","ticket_id":"2100000000000000123","ticket_use_trans_id":"2100000000000000456"}`,
	})
	answer := []byte(`{"alibaba_alsc_daodian_ticket_reserve_response":{"result":{"success":true},"request_id":"i0l10lc30e9b4ni8"}}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := &call{requestID: "i0l10lc30e9b4ni8", method: alsc.MethodReserve, outcome: "success", app: app, params: p}
		for pb.Next() {
			l.record(c, answer, time.Now(), 1500*time.Microsecond)
		}
	})
}

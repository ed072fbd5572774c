package gateway

import (
	"testing"
	"time"
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

package testio

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// MetricValue reads one sample of GET base/metrics: the line "series value",
// where series is a metric name with its exact label text ("name{a="b"}", or the
// bare name for none). It reports whether the series is there.
func MetricValue(tb testing.TB, base, series string) (float64, bool) {
	tb.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("%s: %v", sc.Text(), err)
			}
			return f, true
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return 0, false
}

package console

import (
	"strconv"

	"github.com/daodian/daodian/admin"
)

// The overview's charts: one bar per minute of the last hour, drawn as SVG
// markup in the page (no script, no image request), scaled to the hour's
// largest value. A bar's <title> is its tooltip.

// Chart geometry, in the SVG's own units (it stretches to its box).
const (
	chartW   = 600
	chartH   = 100
	chartGap = 2
)

type chart struct {
	Title, Class string
	// Now is the value of the current minute; Max the scale's top.
	Now, Max string
	W, H     int
	Bars     []bar
}

type bar struct {
	X, Y, Width, Height string
	Tip                 string
}

// charts draws requests per second, errors per minute and p99 latency.
func charts(t []admin.TrafficMinute) []chart {
	if len(t) == 0 {
		return nil
	}
	series := []struct {
		title, class string
		value        func(admin.TrafficMinute) float64
		format       func(float64) string
	}{
		{"Requests per second · 每秒请求", "req", func(m admin.TrafficMinute) float64 { return float64(m.Requests) / 60 },
			func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "/s" }},
		{"Errors per minute · 错误", "err", func(m admin.TrafficMinute) float64 { return float64(m.Errors) },
			func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }},
		{"p99 latency · 延迟", "lat", func(m admin.TrafficMinute) float64 { return m.P99MS },
			func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " ms" }},
	}
	out := make([]chart, 0, len(series))
	for _, s := range series {
		top := 0.0
		for _, m := range t {
			top = max(top, s.value(m))
		}
		c := chart{Title: s.title, Class: s.class, Now: s.format(s.value(t[len(t)-1])), Max: s.format(top), W: chartW, H: chartH}
		w := float64(chartW) / float64(len(t))
		for i, m := range t {
			v := s.value(m)
			h := 0.0
			if top > 0 {
				h = v / top * chartH
			}
			if v > 0 {
				h = max(h, 1) // a minute with any value shows
			}
			c.Bars = append(c.Bars, bar{X: num(float64(i) * w), Y: num(chartH - h), Width: num(w - chartGap), Height: num(h),
				Tip: m.Minute + " · " + s.format(v)})
		}
		out = append(out, c)
	}
	return out
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

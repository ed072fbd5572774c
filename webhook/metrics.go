package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/daodian/daodian"
)

// Metric names, as exported at GET /metrics (docs/operations.md).
const (
	MetricDeliveries = "daodian_webhook_deliveries_total"
	MetricLag        = "daodian_webhook_lag_seconds"
)

type metrics struct {
	delivered, retried, failed prometheus.Counter
}

// newMetrics registers the deliverer's metrics on reg (none when nil).
func newMetrics(d *Deliverer, reg prometheus.Registerer) *metrics {
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricDeliveries,
		Help: "Webhook delivery attempts by outcome: delivered (a 2xx within the timeout), retry (failed, to be tried again), failed (failed 24 h after the first attempt: the event is marked failed).",
	}, []string{"outcome"})
	m := &metrics{
		delivered: deliveries.WithLabelValues(string(daodian.Delivered)),
		retried:   deliveries.WithLabelValues(string(daodian.Retrying)),
		failed:    deliveries.WithLabelValues(string(daodian.Failed)),
	}
	if reg != nil {
		lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: MetricLag,
			Help: "Age of the oldest event not yet delivered to a webhook this process delivers (0 when every one is up to date).",
		}, func() float64 { return d.Lag().Seconds() })
		reg.MustRegister(deliveries, lag)
	}
	return m
}

func (m *metrics) count(o daodian.DeliveryOutcome) { m.outcome(o).Inc() }

func (m *metrics) outcome(o daodian.DeliveryOutcome) prometheus.Counter {
	switch o {
	case daodian.Delivered:
		return m.delivered
	case daodian.Retrying:
		return m.retried
	}
	return m.failed
}

package processor

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events     prometheus.Counter
	dlqDecode  prometheus.Counter
	dlqInvalid prometheus.Counter
	writeErr   prometheus.Counter
	lag        prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_processor_hits_total",
		Help: "Raw hits by result: event (written to the events topic), dlq_decode (undecodable), dlq_invalid (marked invalid by the edge or failing validation).",
	}, []string{"result"})
	m := &metrics{
		events:     hits.WithLabelValues("event"),
		dlqDecode:  hits.WithLabelValues("dlq_decode"),
		dlqInvalid: hits.WithLabelValues("dlq_invalid"),
		writeErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_write_errors_total",
			Help: "Failed writes to Kafka; the batch is retried and its offsets stay uncommitted.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pixel_processor_event_lag_seconds",
			Help:    "Time from the edge receiving a hit to its event being acknowledged by Kafka.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	if reg != nil {
		reg.MustRegister(hits, m.writeErr, m.lag)
	}
	return m
}

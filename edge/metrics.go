package edge

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	accepted     prometheus.Counter
	invalid      prometheus.Counter
	dropped      prometheus.Counter
	published    prometheus.Counter
	batchOK      prometheus.Counter
	batchErr     prometheus.Counter
	queueDepth   prometheus.GaugeFunc
	publishDelay prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, depth func() float64) *metrics {
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_edge_hits_total",
		Help: "Pixel requests by result: accepted (queued as a valid hit), invalid (queued, flagged invalid), dropped (queue full or shutdown deadline passed: lost).",
	}, []string{"result"})
	batches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_edge_publish_batches_total",
		Help: "Batch writes to Kafka by result; failed batches are retried.",
	}, []string{"result"})
	m := &metrics{
		accepted: hits.WithLabelValues("accepted"),
		invalid:  hits.WithLabelValues("invalid"),
		dropped:  hits.WithLabelValues("dropped"),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_edge_published_total",
			Help: "Hits acknowledged by Kafka.",
		}),
		batchOK:  batches.WithLabelValues("ok"),
		batchErr: batches.WithLabelValues("error"),
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pixel_edge_queue_hits",
			Help: "Hits accepted and waiting for Kafka.",
		}, depth),
		publishDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pixel_edge_publish_delay_seconds",
			Help:    "Time from receiving a hit to Kafka acknowledging its batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(hits, batches, m.published, m.queueDepth, m.publishDelay)
	}
	return m
}

package edge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pixelpipe/pixelpipe/edge/spool"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
)

type metrics struct {
	accepted     prometheus.Counter
	invalid      prometheus.Counter
	dropped      prometheus.Counter
	optedOut     prometheus.Counter
	invalidClick prometheus.Counter
	spoolErrors  prometheus.Counter
	published    prometheus.Counter
	batchOK      prometheus.Counter
	batchErr     prometheus.Counter
	publishDelay prometheus.Histogram
	// kafka holds the publisher's produce request metrics
	// (pixel_kafka_writer_*{part="edge"}).
	kafka *kafkaconn.WriterMetrics
	// Requests refused before any route, by reason.
	malformed, headerTooLarge, bodyTooLarge, timedOut, batchRefused prometheus.Counter
}

// newMetrics registers the edge's metrics on reg; the spool gauges read
// stats at scrape time.
func newMetrics(reg prometheus.Registerer, stats func() spool.Stats) *metrics {
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_edge_hits_total",
		Help: "Pixel requests by result: accepted (spooled as a valid hit), invalid (spooled, flagged invalid), opted_out (answered, not recorded: the browser has the opt-out cookie), dropped (answered but not recorded: the spool was full (edge.spool.maxBytes) or failed, or shutdown had closed it; these hits are lost).",
	}, []string{"result"})
	batches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_edge_publish_batches_total",
		Help: "Batch writes to Kafka by result; failed batches stay in the spool and are retried.",
	}, []string{"result"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_edge_refused_requests_total",
		Help: "Requests refused before reaching a route, by reason: malformed (400: unparsable, or ambiguous framing such as Transfer-Encoding with Content-Length, bare LF, folded headers), header_too_large (431: request line and headers over edge.maxHeaderBytes), body_too_large (413: body over edge.maxBodyBytes), timeout (408: not read within edge.readTimeout), batch (a POST to /e that is not a JSON array, 400, or holds more than 100 events, 413). Nothing is recorded for them.",
	}, []string{"reason"})
	m := &metrics{
		malformed:      refused.WithLabelValues("malformed"),
		headerTooLarge: refused.WithLabelValues("header_too_large"),
		bodyTooLarge:   refused.WithLabelValues("body_too_large"),
		timedOut:       refused.WithLabelValues("timeout"),
		batchRefused:   refused.WithLabelValues("batch"),
		accepted:       hits.WithLabelValues("accepted"),
		invalid:        hits.WithLabelValues("invalid"),
		dropped:        hits.WithLabelValues("dropped"),
		optedOut:       hits.WithLabelValues("opted_out"),
		kafka:          kafkaconn.NewWriterMetrics(reg, "edge"),
		invalidClick: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_edge_invalid_clicks_total",
			Help: "Click requests refused with 400 and no redirect: destination malformed, or neither signed (edge.click.keys) nor on the site's allow-list (edge.click.allowHosts). Each is also recorded as an invalid hit.",
		}),
		spoolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_edge_spool_append_errors_total",
			Help: "Appends to the spool that failed for another reason than the size bound (disk full, I/O error); each is also a dropped hit.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_edge_published_total",
			Help: "Hits acknowledged by Kafka.",
		}),
		batchOK:  batches.WithLabelValues("ok"),
		batchErr: batches.WithLabelValues("error"),
		publishDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pixel_edge_publish_delay_seconds",
			Help:    "Time from receiving the first hit of a batch to Kafka acknowledging the batch; grows while hits wait in the spool.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(hits, batches, refused, m.invalidClick, m.spoolErrors, m.published, m.publishDelay)
	stat := func(f func(spool.Stats) float64) func() float64 {
		return func() float64 { return f(stats()) }
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pixel_edge_spool_hits",
			Help: "Hits in the spool not yet acknowledged by Kafka.",
		}, stat(func(s spool.Stats) float64 { return float64(s.Records) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pixel_edge_spool_bytes",
			Help: "Size of the spool's segment files; /readyz fails from edge.spool.highWater of edge.spool.maxBytes, hits are dropped past it.",
		}, stat(func(s spool.Stats) float64 { return float64(s.Bytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pixel_edge_spool_corrupt_tails_total",
			Help: "Spool segments whose tail was cut because a record was torn or failed its checksum (normal after a crash mid-write; anything else means disk trouble).",
		}, stat(func(s spool.Stats) float64 { return float64(s.CorruptTails) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pixel_edge_spool_corrupt_bytes_total",
			Help: "Bytes cut with corrupt spool tails.",
		}, stat(func(s spool.Stats) float64 { return float64(s.CorruptBytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pixel_edge_spool_fsync_errors_total",
			Help: "Failed fsyncs of spool segments.",
		}, stat(func(s spool.Stats) float64 { return float64(s.SyncErrors) })),
	)
	return m
}

package processor

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events, dlqDecode, dlqInvalid, duplicate, replayed prometheus.Counter
	bot, machineOpen                                   prometheus.Counter
	sessionsClosed                                     prometheus.Counter
	writeErr, stateErr, stateStale                     prometheus.Counter
	midnightLinks                                      prometheus.Counter
	lag                                                prometheus.Histogram
	openSessions                                       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_processor_hits_total",
		Help: "Raw hits by result: event (written to the events topic), dlq_decode (undecodable), dlq_invalid (marked invalid by the edge or failing validation), duplicate (event id seen within -processor.dedupeWindow; dropped), replayed (already reflected in the checkpointed state; its output was written before).",
	}, []string{"result"})
	labels := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_processor_labelled_total",
		Help: "Events labelled as invalid traffic (bot) or machine e-mail opens (machine_open); labelled events are written like any other.",
	}, []string{"label"})
	m := &metrics{
		events:      hits.WithLabelValues("event"),
		dlqDecode:   hits.WithLabelValues("dlq_decode"),
		dlqInvalid:  hits.WithLabelValues("dlq_invalid"),
		duplicate:   hits.WithLabelValues("duplicate"),
		replayed:    hits.WithLabelValues("replayed"),
		bot:         labels.WithLabelValues("bot"),
		machineOpen: labels.WithLabelValues("machine_open"),
		sessionsClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_sessions_closed_total",
			Help: "Session summaries written to the sessions topic.",
		}),
		writeErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_write_errors_total",
			Help: "Failed writes to Kafka; the batch is retried and its offsets stay uncommitted.",
		}),
		stateErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_state_errors_total",
			Help: "Failed reads or checkpoints of session state in Redis; the batch is retried from the last checkpoint.",
		}),
		stateStale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_state_stale_total",
			Help: "Checkpoints refused because another processor had checkpointed the partition further (after a rebalance); the state is reloaded.",
		}),
		midnightLinks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_midnight_links_total",
			Help: "Cookieless visitors whose first hit under a new day's key continued a visit open at midnight, and who are counted under the previous day's key for the new day (one visit, one visitor).",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pixel_processor_event_lag_seconds",
			Help:    "Time from the edge receiving a hit to its event being acknowledged by Kafka.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		openSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pixel_processor_open_sessions",
			Help: "Open sessions of the partitions this processor holds in memory.",
		}),
	}
	if reg != nil {
		reg.MustRegister(hits, labels, m.sessionsClosed, m.writeErr, m.stateErr, m.stateStale, m.midnightLinks, m.lag, m.openSessions)
	}
	return m
}

package processor

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events, dlqDecode, dlqInvalid, duplicate, replayed prometheus.Counter
	bot, machineOpen                                   prometheus.Counter
	unverified                                         [3]prometheus.Counter // by signing.Policy (Off unused)
	sessionsClosed, visits, ticks, tickErr             prometheus.Counter
	writeErr, stateErr, stateStale                     prometheus.Counter
	restored, stateGap, shed                           prometheus.Counter
	snapshots, snapshotBytes                           *prometheus.CounterVec
	midnightLinks                                      prometheus.Counter
	lag                                                prometheus.Histogram
	openSessions, visitors                             prometheus.Gauge
	auditMissing, auditLanes, auditForgotten           prometheus.Gauge
	unsequenced                                        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_processor_hits_total",
		Help: "Raw hits by result: event (written to the events topic), dlq_decode (undecodable), dlq_invalid (marked invalid by the edge or failing validation), duplicate (a number its edge lane already delivered, or an event id seen within -processor.dedupeWindow; dropped), replayed (already reflected in the partition's state; its output was written before).",
	}, []string{"result"})
	labels := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_processor_labelled_total",
		Help: "Events labelled as invalid traffic (bot), machine e-mail opens (machine_open), or not verified under a signed-pixel policy (unverified_prefer, unverified_require: see -processor.signedPixels); labelled events are written like any other.",
	}, []string{"label"})
	m := &metrics{
		events:      hits.WithLabelValues("event"),
		dlqDecode:   hits.WithLabelValues("dlq_decode"),
		dlqInvalid:  hits.WithLabelValues("dlq_invalid"),
		duplicate:   hits.WithLabelValues("duplicate"),
		replayed:    hits.WithLabelValues("replayed"),
		bot:         labels.WithLabelValues("bot"),
		machineOpen: labels.WithLabelValues("machine_open"),
		unverified:  [3]prometheus.Counter{nil, labels.WithLabelValues("unverified_prefer"), labels.WithLabelValues("unverified_require")},
		sessionsClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_sessions_closed_total",
			Help: "Session summaries written to the sessions topic.",
		}),
		visits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_visits_total",
			Help: "Closed sessions with at least one page view (visits) written to the events topic as events of kind session, which the aggregators count as visits.",
		}),
		ticks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_clock_ticks_total",
			Help: "Clock ticks read from the hits topic (each moves its partition's event time on; see -processor.clockTick).",
		}),
		tickErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_clock_tick_errors_total",
			Help: "Failed writes of clock ticks to the hits topic (retried at the next -processor.clockTick; until then idle sessions of quiet partitions stay open).",
		}),
		writeErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_write_errors_total",
			Help: "Failed writes to Kafka; the batch is retried and its offsets stay uncommitted.",
		}),
		stateErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_state_errors_total",
			Help: "Failed loads, restores or snapshots of partition state (Redis, or reading the hits since a snapshot from Kafka). A failed load is retried with the batch; a failed snapshot at the next interval.",
		}),
		stateStale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_state_stale_total",
			Help: "Snapshots refused because the stored one is not the one the state continues (another processor snapshotted the partition after a rebalance, or Redis lost the last snapshot in a crash or a failover), and quiet partitions whose last snapshot Redis no longer holds; the state is reloaded.",
		}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_state_restored_hits_total",
			Help: "Hits read again from Kafka to bring a loaded snapshot up to the group's committed offset (state only: their records were written before).",
		}),
		stateGap: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_state_gap_hits_total",
			Help: "Hits a restore needed that Kafka's retention had deleted; the state misses them (sessions may split). Should stay 0: keep the hits topic's retention far above -processor.snapshotInterval.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_processor_state_evicted_total",
			Help: "Visitor states forgotten because a partition held more than -processor.maxVisitors (their open sessions closed early, their duplicate windows lost). Should stay 0: raise the limit, or add partitions, if it is not a flood of made-up visitors.",
		}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pixel_processor_state_snapshots_total",
			Help: "Partition state snapshots written to Redis, by kind: base (every visitor) or delta (visitors changed since the previous snapshot).",
		}, []string{"kind"}),
		snapshotBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pixel_processor_state_snapshot_bytes_total",
			Help: "Bytes of partition state snapshots written to Redis, by kind.",
		}, []string{"kind"}),
		visitors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pixel_processor_state_visitors",
			Help: "Visitor states held in memory for the partitions this processor holds (seen within -processor.stateTTL of event time, or with an open session).",
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
			Help: "Open sessions of the partitions this processor holds in memory, as of each partition's last sweep (each minute of event time, or each session timeout when shorter).",
		}),
		auditMissing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pixel_audit_missing_hits",
			Help: "Hits the edges numbered for the partitions this processor holds that have not arrived (gaps in the edges' lanes): lost before Kafka, or still on their way (out-of-order retries fill within seconds; an edge cut off from Kafka holds them in its spool). GET /v1/audit lists them.",
		}),
		auditForgotten: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pixel_audit_forgotten_hits",
			Help: "Numbers of the oldest gaps a lane dropped past its bound of gaps (no longer checked), in the partitions this processor holds, since it loaded them. Should stay 0.",
		}),
		auditLanes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pixel_audit_lanes",
			Help: "Edge lanes (node, boot, partition) the audit tracks in the partitions this processor holds.",
		}),
		unsequenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_audit_unsequenced_hits_total",
			Help: "Hits without a lane number (an edge that did not know the partition count yet, or an older edge): counted, but the audit cannot check them by number.",
		}),
	}
	if reg != nil {
		reg.MustRegister(hits, labels, m.sessionsClosed, m.visits, m.ticks, m.tickErr, m.writeErr, m.stateErr, m.stateStale, m.restored, m.stateGap, m.shed,
			m.snapshots, m.snapshotBytes, m.midnightLinks, m.lag, m.openSessions, m.visitors, m.auditMissing, m.auditLanes, m.auditForgotten, m.unsequenced)
	}
	return m
}

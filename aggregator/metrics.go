package aggregator

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	applied     prometheus.Counter
	skipped     prometheus.Counter
	corrupt     prometheus.Counter
	late        prometheus.Counter
	dupOrder    prometheus.Counter
	snapshots   prometheus.Counter
	snapshotErr prometheus.Counter
	flushOK     prometheus.Counter
	flushErr    prometheus.Counter
	refused     prometheus.Counter
	lost        prometheus.Counter
	resets      prometheus.Counter
	flushTime   prometheus.Histogram
	activeState prometheus.Gauge
	// idleWatermarks counts watermarks of idle partitions moved on.
	idleWatermarks prometheus.Counter
	// campaignsOver counts events whose campaign was past the day's bound.
	campaignsOver prometheus.Counter
	// visitsApplied and visitsSkipped count the session events (visits)
	// among applied and skipped.
	visitsApplied, visitsSkipped prometheus.Counter
	// The counted events that name a recipient and a campaign, by result.
	recipientsApplied, recipientsErased, recipientsUnattributed prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_aggregator_events_total",
		Help: "Events by result: applied, skipped (already counted: a replay or duplicate), corrupt (undecodable, skipped), late (older than the late horizon: sent to the dead-letter topic, not counted), duplicate_order (a conversion whose order id the content id's day already counted from another event: not counted).",
	}, []string{"result"})
	visits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_aggregator_visits_total",
		Help: "Visits (events of kind session, one per visit the processor closed) by result: applied, skipped (already counted: a replay). They are also counted in pixel_aggregator_events_total.",
	}, []string{"result"})
	recipients := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_aggregator_recipient_events_total",
		Help: "Counted events that name a recipient (a uid) and a campaign, by result: applied (to the recipient's activity), erased (received before the recipient's erasure: left out), unattributed (an unverified hit under a require signature policy, which could name anyone: counted, but not as the recipient's).",
	}, []string{"result"})
	flushes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_aggregator_flushes_total",
		Help: "Flushes to Redis by result; a failed flush is retried and its offsets stay uncommitted.",
	}, []string{"result"})
	m := &metrics{
		applied:       events.WithLabelValues("applied"),
		skipped:       events.WithLabelValues("skipped"),
		corrupt:       events.WithLabelValues("corrupt"),
		late:          events.WithLabelValues("late"),
		dupOrder:      events.WithLabelValues("duplicate_order"),
		visitsApplied: visits.WithLabelValues("applied"),
		visitsSkipped: visits.WithLabelValues("skipped"),

		recipientsApplied:      recipients.WithLabelValues("applied"),
		recipientsErased:       recipients.WithLabelValues("erased"),
		recipientsUnattributed: recipients.WithLabelValues("unattributed"),
		idleWatermarks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_aggregator_idle_watermarks_total",
			Help: "Freshness watermarks of events partitions set to now because the group had read and committed them to the end though no aggregator had written them for a while (a partition with no new event since a rebalance).",
		}),
		campaignsOver: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_aggregator_campaigns_over_limit_total",
			Help: "Events counted for their content id but not for their campaign, because the content id's day had -aggregator.maxCampaigns other campaigns already.",
		}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_aggregator_snapshots_total",
			Help: "Count snapshots published to the counts topic.",
		}),
		snapshotErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_aggregator_snapshot_errors_total",
			Help: "Failed snapshot publications; the next interval publishes the latest counts again.",
		}),
		flushOK:  flushes.WithLabelValues("ok"),
		flushErr: flushes.WithLabelValues("error"),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_aggregator_writes_refused_total",
			Help: "Record writes refused because Redis no longer held the version they were made over (another owner wrote, or Redis lost writes in a crash).",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_aggregator_lost_writes_total",
			Help: "Count days whose last write Redis no longer held when the offsets of their events were due for commit (a Redis crash, or a failover to a replica that had not received the write): nothing is committed, and the aggregator resets and replays from the committed offsets.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_aggregator_resets_total",
			Help: "Times the aggregator dropped its in-memory counts after a refused write or a lost one and resumed from the committed offsets.",
		}),
		flushTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pixel_aggregator_flush_duration_seconds",
			Help:    "Time to write one flush to Redis.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		activeState: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pixel_aggregator_records_in_memory",
			Help: "Count records held in memory.",
		}),
	}
	if reg != nil {
		reg.MustRegister(events, visits, flushes, m.refused, m.lost, m.resets, m.flushTime, m.activeState, m.snapshots, m.snapshotErr, m.idleWatermarks, m.campaignsOver)
	}
	return m
}

type rollupMetrics struct {
	built       prometheus.Counter
	weeksFinal  prometheus.Counter
	weeksForced prometheus.Counter
	runOK       prometheus.Counter
	runErr      prometheus.Counter
	runHeld     prometheus.Counter
	runTime     prometheus.Histogram
	waiting     prometheus.Gauge
}

func newRollupMetrics(reg prometheus.Registerer) *rollupMetrics {
	weeks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_aggregator_rollup_weeks_total",
		Help: "Weeks the rollup job rolled up, by result: final (past the late horizon and every partition's watermark), forced (past -aggregator.rollup.maxWait with a watermark behind).",
	}, []string{"result"})
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_aggregator_rollup_runs_total",
		Help: "Runs of the rollup job by result: ok, error (retried at the next -aggregator.rollup.interval), lease_held (another aggregator process ran it).",
	}, []string{"result"})
	m := &rollupMetrics{
		built: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pixel_aggregator_rollups_built_total",
			Help: "Week rollups built by the rollup job (one per content id and week).",
		}),
		weeksFinal:  weeks.WithLabelValues("final"),
		weeksForced: weeks.WithLabelValues("forced"),
		runOK:       runs.WithLabelValues("ok"),
		runErr:      runs.WithLabelValues("error"),
		runHeld:     runs.WithLabelValues("lease_held"),
		runTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pixel_aggregator_rollup_run_duration_seconds",
			Help:    "Duration of a run of the rollup job that held the lease.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pixel_aggregator_rollup_weeks_waiting",
			Help: "Weeks past the late horizon whose rollups wait for a partition's freshness watermark (built anyway after -aggregator.rollup.maxWait).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.built, weeks, runs, m.runTime, m.waiting)
	}
	return m
}

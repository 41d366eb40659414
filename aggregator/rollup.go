package aggregator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/lease"
)

// Rollups is the rollup job: it builds the week rollups of every content id
// of a week (hllstore.Store.BuildWeek) once the week is final, so a query
// of a long range never builds them itself. It runs next to the aggregator
// in the aggregator process; one instance works at a time (a lease in
// Redis, package lease), and two that overlap (a lease that ran out) do the same work
// twice, harmlessly: a rollup is a function of its days.
//
// A week is final when both hold:
//
//  1. By this process's clock, the clock the aggregator judges lateness by
//     (an event is late when now minus its event time exceeds LateHorizon),
//     it is at least LateHorizon + RollupMargin past the week's end. From
//     weekEnd + LateHorizon on, an aggregator with this configuration
//     accepts no event of the week, also when it catches up after an
//     outage (lateness is judged at processing time, not against the
//     stream's event time).
//  2. Every partition's freshness watermark (hllstore.Watermark, what
//     counts.Freshness combines) was written at or after weekEnd +
//     LateHorizon and is complete until at least then: every partition's
//     owner has flushed since the last moment an event of the week could be
//     accepted, so nothing accepted for the week waits in an aggregator's
//     memory (a flush held back by a Redis outage, say). A partition whose
//     watermark stays older (no traffic, no owner) holds the week back for
//     at most RollupMaxWait after weekEnd + LateHorizon; then the week is
//     built anyway ("forced").
//
// What the rule cannot see (a clock off by more than the margin, an
// aggregator run with a longer -aggregator.lateHorizon, a flush delayed
// past RollupMaxWait) cannot make a query wrong: every rollup names the
// versions of the days it was built from, and readers rebuild one whose
// days were written since (hllstore week.go).
//
// Per final week, the job scans the days' index sets (hllstore.DayContents:
// every content id with a day hash that day, one set per content id group), skips content ids whose
// rollup of the week is valid (a content id listed on several days), and
// builds the others, RollupRate per second at most (a check of a valid one
// counts as an eighth) and resting at least as long as it worked, then marks
// the week done. It looks back
// rollupLookback weeks, so a job that was off catches up.
type Rollups struct {
	cfg    Config
	logger *slog.Logger
	m      *rollupMetrics
	store  *hllstore.Store
	leases *lease.Leases
	now    func() time.Time
	owner  string
}

const (
	// rollupLease names the job's lease; rollupLeaseTTL is how long it
	// lasts without being extended (it is extended after every batch).
	rollupLease    = "rollup"
	rollupLeaseTTL = time.Minute
	// rollupBatch is the content ids checked and built per round trip:
	// small, because Redis serves a pipeline's commands back to back and a
	// flush's script calls wait behind them (20 builds read 140 days, a few
	// milliseconds of Redis time).
	rollupBatch = 20
	// rollupLookback is how many weeks back the job looks for weeks not
	// rolled up yet.
	rollupLookback = 4
)

// NewRollups returns the rollup job of cfg on store; leases hold its lease
// (rollupLease).
func NewRollups(cfg Config, logger *slog.Logger, reg prometheus.Registerer, store *hllstore.Store, leases *lease.Leases) (*Rollups, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Rollups{
		cfg: cfg, logger: logger, m: newRollupMetrics(reg), store: store, leases: leases, now: time.Now,
		owner: host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:]),
	}, nil
}

// Run wakes every RollupInterval (with jitter; the first time within a
// tenth of it) and builds the rollups of weeks that became final, until ctx
// is done. Failures are logged and counted and retried at the next wake-up;
// Run returns nil when ctx is done. With RollupInterval 0 it only waits.
func (j *Rollups) Run(ctx context.Context) error {
	if j.cfg.RollupInterval <= 0 {
		<-ctx.Done()
		return nil
	}
	wait := jitter(j.cfg.RollupInterval / 10)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if err := j.RunOnce(ctx); err != nil && ctx.Err() == nil {
			j.logger.Warn("rollup run failed, will retry", "err", err)
		}
		wait = j.cfg.RollupInterval - j.cfg.RollupInterval/10 + jitter(j.cfg.RollupInterval/5)
	}
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d)))
}

// weekState is what the finality rule says of a week.
type weekState uint8

const (
	weekOpen    weekState = iota // events of the week may still be accepted
	weekWaiting                  // past the clock rule, waiting for the watermarks
	weekFinal                    // final
	weekForced                   // past RollupMaxWait without the watermarks
)

// finality applies the rule of Rollups to the week starting at weekStart.
func (j *Rollups) finality(now time.Time, weekStart int64, wms map[int32]hllstore.Watermark) weekState {
	deadline := weekStart + hllstore.WeekMs + j.cfg.LateHorizon.Milliseconds()
	t := now.UnixMilli()
	if t < deadline+j.cfg.RollupMargin.Milliseconds() {
		return weekOpen
	}
	passed := len(wms) > 0
	for _, w := range wms {
		if w.CompleteUntilMs < deadline || w.WrittenAtMs < deadline {
			passed = false
		}
	}
	switch {
	case passed:
		return weekFinal
	case t >= deadline+j.cfg.RollupMaxWait.Milliseconds():
		return weekForced
	}
	return weekWaiting
}

var errLeaseLost = errors.New("rollup lease lost to another instance")

// RunOnce takes the lease and builds the rollups of every final week of
// the last rollupLookback that is not done yet, oldest first. It does
// nothing when another instance holds the lease.
func (j *Rollups) RunOnce(ctx context.Context) (err error) {
	start := time.Now()
	ok, err := j.leases.Acquire(ctx, rollupLease, j.owner, rollupLeaseTTL)
	if err != nil {
		j.m.runErr.Inc()
		return err
	}
	if !ok {
		j.m.runHeld.Inc()
		return nil
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rerr := j.leases.Release(rctx, rollupLease, j.owner); rerr != nil {
			j.logger.Warn("release rollup lease", "err", rerr)
		}
		j.m.runTime.Observe(time.Since(start).Seconds())
		if err != nil {
			j.m.runErr.Inc()
		} else {
			j.m.runOK.Inc()
		}
	}()
	wms, err := j.store.Watermarks(ctx)
	if err != nil {
		return err
	}
	now := j.now()
	latest := hllstore.WeekStart(now.UnixMilli()) - hllstore.WeekMs
	waiting := 0
	for w := latest - (rollupLookback-1)*hllstore.WeekMs; w <= latest; w += hllstore.WeekMs {
		state := j.finality(now, w, wms)
		switch state {
		case weekOpen:
			continue
		case weekWaiting:
			waiting++
			continue
		}
		done, err := j.store.WeekRolled(ctx, w)
		if err != nil {
			return err
		}
		if done {
			continue
		}
		t0 := time.Now()
		checked, built, err := j.buildWeek(ctx, w)
		if err != nil {
			return fmt.Errorf("roll up week %s: %w", time.UnixMilli(w).UTC().Format(time.DateOnly), err)
		}
		if err := j.store.MarkWeekRolled(ctx, w, (rollupLookback+1)*7*24*time.Hour); err != nil {
			return err
		}
		result := "final"
		if state == weekForced {
			result = "forced"
			j.m.weeksForced.Inc()
		} else {
			j.m.weeksFinal.Inc()
		}
		j.logger.Info("week rolled up", "week", time.UnixMilli(w).UTC().Format(time.DateOnly), "result", result,
			"content_ids_checked", checked, "rollups_built", built, "duration", time.Since(t0))
	}
	j.m.waiting.Set(float64(waiting))
	return nil
}

// buildWeek builds the missing and stale rollups of the week of every
// content id in its days' indexes, at most RollupRate builds per second. A
// content id listed on several days is built once: when it comes again its
// rollup is valid.
func (j *Rollups) buildWeek(ctx context.Context, week int64) (checked, built int, err error) {
	perID := time.Second / time.Duration(j.cfg.RollupRate)
	for d := range 7 {
		var cursor hllstore.DayCursor
		for !cursor.Done() {
			ids, next, err := j.store.DayContents(ctx, week+int64(d)*hllstore.DayMs, cursor, rollupBatch)
			if err != nil {
				return checked, built, err
			}
			if len(ids) > 0 {
				t0 := time.Now()
				valid, err := j.store.WeeksValid(ctx, ids, week)
				if err != nil {
					return checked, built, err
				}
				need := ids[:0]
				for i, id := range ids {
					if !valid[i] {
						need = append(need, id)
					}
				}
				if len(need) > 0 {
					n, err := j.store.BuildWeek(ctx, need, week)
					if err != nil {
						return checked, built, err
					}
					built += n
					j.m.built.Add(float64(n))
				}
				checked += len(ids)
				ok, err := j.leases.Extend(ctx, rollupLease, j.owner, rollupLeaseTTL)
				if err != nil {
					return checked, built, err
				}
				if !ok {
					return checked, built, errLeaseLost
				}
				// Pace: at most RollupRate rollups built per second, a check
				// of a valid one counting as an eighth (8 one-field HMGETs
				// against 7 HGETALLs of whole days, a merge and an HSET).
				// And it rests at least as long as it worked, so it takes
				// at most half a core and half of Redis's attention from
				// the flushes, whatever a build costs on this machine.
				cost := time.Duration(len(need))*perID + time.Duration(len(ids)-len(need))*perID/8
				worked := time.Since(t0)
				if pause := max(cost-worked, worked); pause > 0 {
					t := time.NewTimer(pause)
					select {
					case <-ctx.Done():
						t.Stop()
						return checked, built, ctx.Err()
					case <-t.C:
					}
				}
			}
			cursor = next
		}
	}
	return checked, built, nil
}

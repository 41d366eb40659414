package aggregator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// flush writes every day whose records changed (one script call per group
// of content ids and day, hllstore.SaveDays), the watermarks and the late
// events' dead letters; a full flush also
// writes the changed breakdowns (in the same calls) and raises the top-N
// index. A refused write marks the aggregator stale (see reset).
func (a *Aggregator) flush(ctx context.Context, full bool) error {
	start := time.Now()
	var writes []hllstore.DayWrite
	var entries []*dayEntry
	recipients := false
	for dk, e := range a.days {
		if e.dirty || (full && e.bdirty) {
			writes = append(writes, hllstore.DayWrite{Key: dk, Day: e.d, Details: full})
			entries = append(entries, e)
			recipients = recipients || e.d.RecipientsPending()
		}
	}
	// Recipient activity is written only after the erasures are read: an
	// erasure recorded until now leaves out what the days hold of its
	// recipient.
	if recipients {
		if err := a.refreshErasures(ctx); err != nil {
			a.m.flushErr.Inc()
			return err
		}
	}
	if len(writes) > 0 {
		written, err := a.store.SaveDays(ctx, writes)
		var partial *hllstore.SaveError
		if err != nil && !errors.As(err, &partial) {
			a.m.flushErr.Inc()
			return err
		}
		// Some calls may have failed (a cluster node down) while the others
		// wrote: those days are clean, and their new write tokens held, so
		// that only the failed days are written again.
		failed := 0
		a.writes++
		for i, e := range entries {
			if partial != nil && failed < len(partial.Failed) && partial.Failed[failed] == i {
				failed++
				continue
			}
			if written[i] {
				e.dirty = false
				if full {
					e.bdirty = false
				}
				e.written = a.writes
				continue
			}
			a.m.refused.Inc()
			a.stale = true
		}
		if partial != nil {
			a.m.flushErr.Inc()
			return err
		}
		a.m.flushTime.Observe(time.Since(start).Seconds())
	}
	if full {
		if err := a.raiseTop(ctx); err != nil {
			a.m.flushErr.Inc()
			return err
		}
	}
	if !a.stale {
		// Per partition this aggregator has read: counts are complete up to
		// the newest event time flushed, or up to now when it is caught up.
		wms := make(map[int32]hllstore.Watermark, len(a.watermarks))
		for p, t := range a.watermarks {
			if a.caughtUp {
				t = max(t, start.UnixMilli())
			}
			wms[p] = hllstore.Watermark{CompleteUntilMs: t, WrittenAtMs: start.UnixMilli()}
		}
		if err := a.store.WriteWatermarks(ctx, wms); err != nil {
			a.logger.Warn("write watermarks", "err", err)
		}
	}
	if len(a.late) > 0 && a.out.DLQ != nil {
		if err := a.out.DLQ.WriteMessages(ctx, a.late...); err != nil {
			a.m.flushErr.Inc()
			return fmt.Errorf("dead-letter %d late events: %w", len(a.late), err)
		}
	}
	a.late = a.late[:0]
	a.m.flushOK.Inc()
	a.evict(start)
	return nil
}

// raiseTop raises the top-N index with the day records changed since the
// last raise that Redis holds.
func (a *Aggregator) raiseTop(ctx context.Context) error {
	var tops []hllstore.TopUpdate
	var topped []*record
	for dk, e := range a.days {
		if e.dirty { // only what Redis holds
			continue
		}
		for id, r := range e.recs {
			if r.marks&untop != 0 {
				tops = append(tops, hllstore.TopUpdate{Key: dk.Key(id), Total: r.Total, Uniques: r.Sketch.Estimate()})
				topped = append(topped, r)
			}
		}
	}
	if err := a.store.RaiseTop(ctx, tops); err != nil {
		return err
	}
	for _, r := range topped {
		r.marks &^= untop
	}
	return nil
}

// snapshots reports whether the aggregator publishes count snapshots; when
// it does not, no record is marked as owing one (a mark nobody clears would
// keep its day in memory for good).
func (a *Aggregator) snapshots() bool { return a.out.Counts != nil && a.cfg.Snapshots }

// publishSnapshots publishes the content-level records changed since the
// last snapshot to the counts topic (every DetailInterval, and when
// stopping), visit records among them (kind KIND_SESSION: the total is the
// visits, the uniques their visitors; a snapshot has no place for their
// sums). Snapshots are derived data: a failure is counted and the next
// interval publishes the latest counts again.
func (a *Aggregator) publishSnapshots(ctx context.Context) {
	if !a.snapshots() {
		return
	}
	now := a.now()
	var msgs []kafka.Message
	var published []*record
	for dk, e := range a.days {
		for id, r := range e.recs {
			if r.marks&unsnap == 0 || id.Campaign != "" {
				continue
			}
			k := dk.Key(id)
			snap := &pixelpb.CountSnapshot{
				SchemaVersion: schemas.CountSnapshotVersion,
				ContentId:     k.ContentID,
				Kind:          k.Kind,
				Granularity:   snapshotGranularity(k.Gran),
				BucketStartMs: k.Start,
				Total:         r.Total,
				Uniques:       r.Sketch.Estimate(),
				UpdatedAtMs:   now.UnixMilli(),
				TrafficClass:  k.Class.String(),
			}
			b, err := proto.Marshal(snap)
			if err != nil {
				panic("BUG: marshal count snapshot: " + err.Error())
			}
			msgs = append(msgs, kafka.Message{
				Key:   schemas.AppendCountKey(nil, k.ContentID, k.Kind, k.Class.String(), snapshotGranularity(k.Gran), k.Start),
				Value: b,
			})
			published = append(published, r)
		}
	}
	if len(msgs) == 0 {
		return
	}
	if err := a.out.Counts.WriteMessages(ctx, msgs...); err != nil {
		a.m.snapshotErr.Inc()
		a.logger.Warn("publish count snapshots", "records", len(msgs), "err", err)
		return
	}
	for _, r := range published {
		r.marks &^= unsnap
	}
	a.m.snapshots.Add(float64(len(msgs)))
}

// snapshotGranularity is the granularity of a count snapshot of an hour or
// day record.
func snapshotGranularity(g hllstore.Granularity) pixelpb.Granularity {
	if g == hllstore.GranularityHour {
		return pixelpb.Granularity_GRANULARITY_HOUR
	}
	return pixelpb.Granularity_GRANULARITY_DAY
}

// evict drops the days not touched for IdleEvict that owe nothing: written
// to Redis (and that write checked at a commit), snapshots published and
// top-N raised.
func (a *Aggregator) evict(now time.Time) {
	for dk, e := range a.days {
		// A day written since the last commit stays until the commit has
		// checked that Redis holds its write (commitDurable).
		if e.dirty || e.bdirty || e.written > a.confirmed || now.Sub(e.touched) <= a.cfg.IdleEvict {
			continue
		}
		marked := false
		for _, r := range e.recs {
			if r.marks != 0 {
				marked = true
				break
			}
		}
		if !marked {
			a.records -= len(e.recs)
			delete(a.days, dk)
		}
	}
	a.m.activeState.Set(float64(a.records))
}

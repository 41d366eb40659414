package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/processor/session"
	"github.com/pixelpipe/pixelpipe/processor/state"
)

// part is the state of one partition of the hits topic held by this
// processor: every visitor of it seen within Config.StateTTL of event time
// (or with an open session), in memory.
type part struct {
	id       int
	clock    state.Clock
	visitors map[uint64]*session.State
	// openSessions is how many visitors had an open session at the last
	// sweep (the gauge; counting them takes a pass over every visitor,
	// which the sweep makes anyway).
	openSessions int
	// changed and gone are the visitors changed and forgotten since the
	// last snapshot: the next delta.
	changed map[uint64]struct{}
	gone    map[uint64]struct{}
	snap    snapMark
	// audit is the partition's completeness audit: the edges' lanes and
	// the figures not yet written (package audit).
	audit *audit.Partition
	// touched is when a batch last had hits of the partition (wall time).
	touched time.Time
}

// snapMark is what the processor knows of the partition's stored snapshot.
type snapMark struct {
	// next is the stored snapshot's position, which this state continues;
	// -1 when there is none.
	next int64
	at   time.Time
	// checked is when the stored position was last read back (see
	// snapshot).
	checked time.Time
	// deltas is the number of deltas on the stored base, items the states
	// and evictions they hold.
	deltas, items int
}

// maxDeltas bounds the deltas on one base; the next snapshot is a base.
const maxDeltas = 64

// idleDrop is how long a partition with no hits and nothing unsnapshotted
// is kept in memory. A partition the group gave to another processor stops
// getting hits, so this frees its memory; a partition that is only quiet is
// loaded again from its snapshot when hits return.
const idleDrop = 2 * time.Minute

func (p *Processor) statePart(id int) state.Partition {
	return state.Partition{Group: p.cfg.Group, Topic: p.cfg.HitsTopic, ID: id}
}

// emptyPart returns the state of partition id before any hit and without
// a snapshot.
func (p *Processor) emptyPart(id int) *part {
	return &part{
		id: id, clock: state.Clock{Next: -1}, visitors: map[uint64]*session.State{},
		changed: map[uint64]struct{}{}, gone: map[uint64]struct{}{}, snap: snapMark{next: -1},
		audit: audit.NewPartition(id),
	}
}

// state returns the state of visitor v, a fresh one if it has none.
func (pt *part) state(v uint64) *session.State {
	st := pt.visitors[v]
	if st == nil {
		st = &session.State{Visitor: v}
		pt.visitors[v] = st
	}
	return st
}

// forget drops visitor v's state: the next snapshot records it as gone.
func (pt *part) forget(v uint64) {
	delete(pt.visitors, v)
	delete(pt.changed, v)
	pt.gone[v] = struct{}{}
}

// touch records that st changed: it goes into the next delta (and is no
// longer forgotten, if it was forgotten and came back since the last one).
func (pt *part) touch(st *session.State) {
	pt.changed[st.Visitor] = struct{}{}
	delete(pt.gone, st.Visitor)
}

// partition returns the in-memory state of partition id for a batch whose
// first hit of it is at offset first. It loads the snapshot and replays the
// hits since it when the partition is not held, or when first does not
// continue the held state (after a rebalance another processor moved it on).
func (p *Processor) partition(ctx context.Context, id int, first int64) (*part, error) {
	pt := p.parts[id]
	if pt != nil && first <= pt.clock.Next {
		return pt, nil
	}
	delete(p.parts, id)
	start := time.Now()
	snap, err := p.d.State.Load(ctx, p.statePart(id))
	corrupt := errors.Is(err, state.ErrCorrupt)
	if corrupt {
		// A snapshot that cannot be read must not stop the partition for
		// good: rebuild as if there were none, from the hits.
		p.m.stateErr.Inc()
		p.logger.Error("partition snapshot unreadable; rebuilding its state from the hits of the last -processor.stateTTL", "partition", id, "err", err)
		snap, err = &state.Snapshot{Clock: state.Clock{Next: -1}, Visitors: map[uint64]*session.State{}}, p.d.State.Drop(ctx, p.statePart(id))
	}
	if err != nil {
		p.m.stateErr.Inc()
		return nil, err
	}
	pt = p.emptyPart(id)
	pt.clock, pt.visitors = snap.Clock, snap.Visitors
	pt.snap = snapMark{next: snap.Clock.Next, at: start, deltas: snap.Deltas, items: len(snap.Visitors)}
	// The audit's figures are written with the snapshot, and only with
	// it: the hits replayed from its position on are counted (their
	// figures were not written), those before it not.
	pt.audit.CountFrom(snap.Clock.Next)
	if snap.Audit != nil {
		a, err := audit.LoadPartition(id, snap.Clock.Next, snap.Audit)
		if err != nil {
			p.m.stateErr.Inc()
			p.logger.Error("partition audit state unreadable; the audit restarts its lanes from the next hits", "partition", id, "err", err)
		} else {
			pt.audit = a
		}
	}
	if snap.Clock.Next < 0 {
		// No snapshot (a new group, or one stopped past -snapshotTTL), but
		// the group may have committed past hits whose state still
		// matters: rebuild it from the hits of the last StateTTL, by record
		// time (the edge's receive time).
		from, err := p.d.Hits.OffsetAt(ctx, id, p.now().Add(-p.cfg.StateTTL))
		if err != nil {
			p.m.stateErr.Inc()
			return nil, err
		}
		if from < 0 || from > first {
			from = first
		}
		pt.clock.Next = from
		// Without a snapshot no figures were written for the hits the
		// rebuild replays: whoever processed them (this processor before
		// a failed batch, or one that stopped before its first snapshot)
		// kept their figures in memory only. So they are counted, unless
		// the snapshot was there but unreadable: figures may have been
		// written with it, and a hit left out of the audit is better than
		// one counted twice.
		if corrupt {
			pt.audit.CountFrom(first)
		} else {
			pt.audit.CountFrom(from)
		}
	}
	replayed := int64(0)
	if pt.clock.Next < first {
		if replayed, err = p.restore(ctx, pt, first); err != nil {
			return nil, err
		}
	}
	p.parts[id] = pt
	p.logger.Info("partition state loaded", "partition", id, "snapshot", snap.Clock.Next, "first", first,
		"visitors", len(pt.visitors), "replayed", replayed, "took", time.Since(start).Round(time.Millisecond))
	return pt, nil
}

// restore brings pt from its snapshot's position up to offset to by running
// the hits in between through the same rules as live hits, writing nothing:
// their records were written before the group committed past them.
func (p *Processor) restore(ctx context.Context, pt *part, to int64) (int64, error) {
	var d decoded
	var n int64
	apply := func(m *kafka.Message) error {
		n++
		p.decode(m, &d)
		p.step(pt, m, &d, 0, true)
		return nil
	}
	first, err := p.d.Hits.Read(ctx, pt.id, pt.clock.Next, to, apply)
	if errors.Is(err, kafkaconn.ErrRangeGone) {
		// Retention deleted hits the snapshot does not reflect: the state
		// misses them (a session may split, a duplicate pass). Said loudly,
		// and the rest is replayed.
		p.m.stateGap.Add(float64(first - pt.clock.Next))
		p.logger.Error("hits since the partition's snapshot are gone from Kafka; its sessions and duplicate window miss them",
			"partition", pt.id, "snapshot", pt.clock.Next, "first held", first, "err", err)
		pt.clock.Next = first
		_, err = p.d.Hits.Read(ctx, pt.id, first, to, apply)
	}
	if err != nil {
		p.m.stateErr.Inc()
		return n, fmt.Errorf("restore partition %d from offset %d to %d: %w", pt.id, pt.clock.Next, to, err)
	}
	p.m.restored.Add(float64(n))
	pt.clock.Next = to
	return n, nil
}

// snapshotQuietly is snapshot with failures logged: the hits stay in Kafka,
// so a snapshot missed only makes the next restore longer.
func (p *Processor) snapshotQuietly(ctx context.Context, all bool) {
	if err := p.snapshot(ctx, all); err != nil {
		p.logger.Warn("snapshot of processor state failed; retried at the next interval", "err", err)
	}
}

// snapshot writes the snapshot of every held partition that changed since
// its last one, and whose interval has passed unless all is set. It also
// drops partitions that have been idle for idleDrop, and checks, once per
// interval, that Redis still holds the snapshot of each held partition
// that did not change (see checkQuiet).
func (p *Processor) snapshot(ctx context.Context, all bool) error {
	now := time.Now()
	var errs []error
	visitors, open, lanes := 0, 0, 0
	var missing, forgotten int64
	var quiet []int
	for id, pt := range p.parts {
		if pt.clock.Next == pt.snap.next {
			if now.Sub(pt.touched) > idleDrop {
				delete(p.parts, id)
				continue
			}
			if pt.snap.next >= 0 && now.Sub(pt.snap.at) >= p.cfg.SnapshotInterval && now.Sub(pt.snap.checked) >= p.cfg.SnapshotInterval {
				quiet = append(quiet, id)
			}
		} else if all || now.Sub(pt.snap.at) >= p.cfg.SnapshotInterval {
			if err := p.save(ctx, pt, now); err != nil {
				errs = append(errs, err)
			}
		}
		visitors += len(pt.visitors)
		open += pt.openSessions
		lanes += pt.audit.Lanes()
		missing += pt.audit.Missing()
		forgotten += pt.audit.Forgotten
	}
	if !all {
		errs = append(errs, p.checkQuiet(ctx, quiet, now))
	}
	p.m.auditForgotten.Set(float64(forgotten))
	p.m.auditLanes.Set(float64(lanes))
	p.m.auditMissing.Set(float64(missing))
	p.m.visitors.Set(float64(visitors))
	p.m.openSessions.Set(float64(open))
	return errors.Join(errs...)
}

// checkQuiet reads back the stored position of the partitions ids, which
// had no hit since their last snapshot. A snapshot whose next one is
// refused is reloaded, but a partition with no new hit writes no next one:
// when Redis lost its last snapshot (a crash, or a failover to a replica
// that had not received it), with the audit's figures written with it, the
// partition is reloaded now, from the snapshot Redis holds and the hits
// since it, so that the next snapshot writes those figures again. A stored
// position ahead of the held one is another processor's (the partition
// moved in a rebalance): the held copy is dropped.
func (p *Processor) checkQuiet(ctx context.Context, ids []int, now time.Time) error {
	var errs []error
	for _, id := range ids {
		pt := p.parts[id]
		stored, err := p.d.State.Position(ctx, p.statePart(id))
		if err != nil {
			p.m.stateErr.Inc()
			errs = append(errs, err)
			continue
		}
		switch {
		case stored == pt.snap.next:
			pt.snap.checked = now
		case stored > pt.snap.next:
			delete(p.parts, id)
		default:
			p.m.stateStale.Inc()
			p.logger.Warn("Redis lost the partition's last snapshot (a crash, or a failover to a replica that had not received it); reloading it and replaying the hits since", "partition", id, "stored", stored, "held", pt.snap.next)
			delete(p.parts, id)
			if _, err := p.partition(ctx, id, pt.clock.Next); err != nil {
				p.parts[id] = pt // checked again at the next interval
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// save writes pt's snapshot: a delta of what changed since the last one, or
// a base of every visitor when there is no snapshot to continue or the
// deltas would outgrow the base; with it, the partition's audit. Either is
// written only on top of the snapshot this state continues: when another
// processor wrote since, the partition is dropped and reloaded.
func (p *Processor) save(ctx context.Context, pt *part, now time.Time) error {
	sp := p.statePart(pt.id)
	a := &state.Audit{Lanes: pt.audit.AppendState(nil)}
	if p.d.Audit != nil {
		tag := audit.Tag(p.cfg.Group, p.cfg.HitsTopic, pt.id)
		a.Writes = pt.audit.Writes(func(day int64) string { return p.d.Audit.Key(tag, day) })
		a.TTL = p.d.Audit.TTL
	}
	items := len(pt.changed) + len(pt.gone)
	kind := "base"
	var ok bool
	var n int
	var err error
	if d := pt.snap.deltas; pt.snap.next >= 0 && d < maxDeltas && pt.snap.items+items <= max(len(pt.visitors), 256) {
		kind = "delta"
		changed := make([]*session.State, 0, len(pt.changed))
		for v := range pt.changed {
			changed = append(changed, pt.visitors[v])
		}
		gone := make([]uint64, 0, len(pt.gone))
		for v := range pt.gone {
			gone = append(gone, v)
		}
		ok, n, err = p.d.State.SaveDelta(ctx, sp, pt.snap.next, pt.clock, d+1, changed, gone, a)
	} else {
		all := make([]*session.State, 0, len(pt.visitors))
		for _, st := range pt.visitors {
			all = append(all, st)
		}
		ok, n, err = p.d.State.SaveBase(ctx, sp, pt.snap.next, pt.clock, all, a)
	}
	if err != nil {
		p.m.stateErr.Inc()
		return err
	}
	if !ok {
		p.m.stateStale.Inc()
		p.logger.Info("partition state was snapshotted by another processor; reloading", "partition", pt.id, "offset", pt.clock.Next)
		delete(p.parts, pt.id)
		return nil
	}
	p.m.snapshots.WithLabelValues(kind).Inc()
	p.m.snapshotBytes.WithLabelValues(kind).Add(float64(n))
	if kind == "delta" {
		pt.snap = snapMark{next: pt.clock.Next, at: now, deltas: pt.snap.deltas + 1, items: pt.snap.items + items}
	} else {
		pt.snap = snapMark{next: pt.clock.Next, at: now, items: len(pt.visitors)}
	}
	pt.audit.Written(pt.clock.Next)
	if p.d.Audit != nil {
		// Readers find the partition's audit through this set; adding to
		// it with every snapshot keeps it there through a Redis restart
		// that lost the first write.
		if err := p.d.Audit.Register(ctx, audit.Tag(p.cfg.Group, p.cfg.HitsTopic, pt.id)); err != nil {
			p.m.stateErr.Inc()
			return err
		}
	}
	clear(pt.changed)
	clear(pt.gone)
	return nil
}

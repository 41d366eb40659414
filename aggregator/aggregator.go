package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Outputs are the topics an aggregator writes besides Redis; either may be
// nil in tests (late events are then only counted, snapshots not published).
type Outputs struct {
	// DLQ receives late events (synchronous writer of pixel.dlq.v1).
	DLQ *kafka.Writer
	// Counts receives count snapshots (synchronous writer of pixel.counts.v1).
	Counts *kafka.Writer
	// Idle, when set, tells which partitions of the events topic the group
	// has nothing unread in (kafkaconn.GroupIdle): their freshness
	// watermarks move on though no event reaches them (see watchIdle).
	Idle IdlePartitions
}

// IdlePartitions tells which of some partitions of the events topic the
// aggregators' group has read and committed to their end.
type IdlePartitions interface {
	Idle(ctx context.Context, partitions []int) ([]int, error)
}

// Aggregator is one member of the aggregator consumer group.
type Aggregator struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	open   func() *kafka.Reader
	reader *kafka.Reader
	store  *hllstore.Store
	out    Outputs
	now    func() time.Time

	days       map[hllstore.DayKey]*dayEntry
	records    int // records held in days
	missing    []hllstore.DayKey
	watermarks map[int32]int64 // events partition -> newest event time applied
	caughtUp   bool            // the last fetch found no unread message
	late       []kafka.Message // late events to dead-letter before the next commit
	waiting    []kafka.Message // offsets whose counts are flushed, details not yet
	flushed    []flushedBatch  // offsets wholly flushed, not yet committed (CommitDelay)
	stale      bool            // a write was refused: state must be rebuilt
	lastDetail time.Time
}

// flushedBatch is messages whose events were written to Redis at a time.
type flushedBatch struct {
	at   time.Time
	msgs []kafka.Message
}

// dayEntry is a content id's day held in memory.
type dayEntry struct {
	d       *hllstore.Day
	dirty   bool // records changed since the last flush
	bdirty  bool // breakdowns changed since the last detail flush
	touched time.Time
}

// Bits of hllstore.Record.Mark.
const (
	unsnap uint8 = 1 << iota // changed since the last snapshot
	untop                    // changed since the last top-N update
)

// New returns an aggregator reading with readers that open returns
// (consumer-group readers of the events topic, kafkaconn.NewGroupReader) and
// writing to store. When Redis refuses a write because the aggregator's copy
// of a record is stale (another owner wrote it, or Redis lost writes in a
// crash), the aggregator drops all it holds, closes its reader and opens a
// new one, which resumes from the committed offsets; replayed events already
// in Redis are skipped by position. The aggregator closes its reader and the
// outputs when Run returns.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, open func() *kafka.Reader, store *hllstore.Store, out Outputs) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Aggregator{
		cfg: cfg, logger: logger, m: newMetrics(reg), open: open, store: store, out: out,
		now: time.Now, days: map[hllstore.DayKey]*dayEntry{}, watermarks: map[int32]int64{},
	}, nil
}

// Run consumes until ctx is done, then flushes what it applied and commits
// what is durable before returning.
func (a *Aggregator) Run(ctx context.Context) error {
	a.reader = a.open()
	defer a.close()
	if a.out.Idle != nil {
		ictx, stopIdle := context.WithCancel(ctx)
		idleDone := make(chan struct{})
		go func() { defer close(idleDone); a.watchIdle(ictx) }()
		defer func() { stopIdle(); <-idleDone }()
	}
	a.logger.Info("aggregator consuming", "topic", a.cfg.EventsTopic, "group", a.cfg.Group)
	var (
		pending   []kafka.Message // fetched and applied, not yet flushed
		nextFlush = time.Now().Add(a.cfg.FlushInterval)
		batch     []*pixelpb.Event
		evPool    []*pixelpb.Event
		msgs      []kafka.Message
	)
	for {
		// Fetch until the batch is full or the flush is due.
		msgs, batch = msgs[:0], batch[:0]
		a.caughtUp = false
		for len(msgs) < min(applyChunk, a.cfg.MaxBatch) {
			wait := time.Until(nextFlush)
			if wait <= 0 {
				break
			}
			fctx, cancel := context.WithTimeout(ctx, wait)
			m, err := a.reader.FetchMessage(fctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
					a.caughtUp = ctx.Err() == nil
					break
				}
				return fmt.Errorf("fetch from %s: %w", a.cfg.EventsTopic, err)
			}
			msgs = append(msgs, m)
		}
		for i := range msgs {
			// Events are decoded into structs reused from batch to batch
			// (apply keeps none of them, only strings, which Unmarshal
			// allocates anew), each with its origin kept too.
			if i == len(evPool) {
				evPool = append(evPool, &pixelpb.Event{})
			}
			ev := evPool[i]
			origin := ev.Origin
			ev.Reset()
			if origin != nil {
				origin.Reset()
				ev.Origin = origin
			}
			if err := mergeEvent.Unmarshal(msgs[i].Value, ev); err != nil || ev.GetContentId() == "" || ev.GetSource() == nil {
				// The processor validated every event; a record that fails
				// here is skipped, counted and logged, never retried forever.
				a.m.corrupt.Inc()
				a.logger.Warn("skip undecodable event", "partition", msgs[i].Partition, "offset", msgs[i].Offset)
				continue
			}
			if a.isLate(ev) {
				a.m.late.Inc()
				a.late = append(a.late, kafkaconn.DeadLetter(&msgs[i], lateReason))
				continue
			}
			batch = append(batch, ev)
			if p := int32(msgs[i].Partition); ev.GetOrigin().GetReceivedAtMs() > a.watermarks[p] {
				a.watermarks[p] = ev.GetOrigin().GetReceivedAtMs()
			}
		}
		if err := a.apply(ctx, batch); err != nil {
			if ctx.Err() == nil {
				return err
			}
			// Stopping before these events were applied: leave their
			// offsets uncommitted, so the next owner applies them.
			msgs = msgs[:0]
		}
		pending = append(pending, msgs...)
		stopping := ctx.Err() != nil
		if !stopping && time.Now().Before(nextFlush) && len(pending) < a.cfg.MaxBatch {
			continue
		}
		full := stopping || time.Since(a.lastDetail) >= a.cfg.DetailInterval
		fctx, cancel := flushContext(ctx, stopping)
		err := a.flush(fctx, full)
		if err == nil {
			a.waiting = append(a.waiting, pending...)
			pending = nil
			if full {
				a.lastDetail = time.Now()
				if len(a.waiting) > 0 {
					a.flushed = append(a.flushed, flushedBatch{at: time.Now(), msgs: a.waiting})
					a.waiting = nil
				}
				a.publishSnapshots(fctx)
			}
			a.commitDurable(fctx)
		}
		cancel()
		nextFlush = time.Now().Add(a.cfg.FlushInterval)
		switch {
		case stopping && err != nil:
			return fmt.Errorf("final flush: %w", err)
		case stopping:
			a.logger.Info("aggregator stopped")
			return nil
		case err != nil:
			a.logger.Warn("flush failed, will retry", "err", err)
		case a.stale:
			a.reset()
			pending = nil
		}
	}
}

// commitDurable commits the offsets of batches flushed at least CommitDelay
// ago: by then Redis has made their writes durable.
func (a *Aggregator) commitDurable(ctx context.Context) {
	cutoff := time.Now().Add(-a.cfg.CommitDelay)
	n := 0
	var msgs []kafka.Message
	for _, b := range a.flushed {
		if b.at.After(cutoff) {
			break
		}
		msgs = append(msgs, b.msgs...)
		n++
	}
	if len(msgs) == 0 {
		return
	}
	a.flushed = append(a.flushed[:0], a.flushed[n:]...)
	if err := a.reader.CommitMessages(ctx, msgs...); err != nil {
		// Harmless for correctness: the records hold positions, so a replay
		// of these events is skipped.
		a.logger.Warn("commit events offsets", "err", err)
	}
}

// reset drops every record held in memory and every uncommitted offset, and
// reopens the reader, which resumes from the committed offsets. Events that
// are replayed and already in Redis are skipped by position.
func (a *Aggregator) reset() {
	a.logger.Warn("count records went stale (another owner wrote them, or Redis lost writes); rebuilding from Redis and the committed offsets",
		"records_dropped", a.records)
	a.m.resets.Inc()
	if err := a.reader.Close(); err != nil {
		a.logger.Warn("close events reader", "err", err)
	}
	clear(a.days)
	a.records = 0
	clear(a.watermarks)
	a.waiting = nil
	a.flushed = a.flushed[:0]
	a.late = a.late[:0]
	a.stale = false
	a.reader = a.open()
}

func (a *Aggregator) close() {
	if a.reader == nil {
		return
	}
	if err := a.reader.Close(); err != nil {
		a.logger.Warn("close events reader", "err", err)
	}
	for _, w := range []*kafka.Writer{a.out.DLQ, a.out.Counts} {
		if w != nil {
			if err := w.Close(); err != nil {
				a.logger.Warn("close writer", "topic", w.Topic, "err", err)
			}
		}
	}
}

// flushContext bounds the final flush of a stopping aggregator, which cannot
// use the cancelled run context.
func flushContext(ctx context.Context, stopping bool) (context.Context, context.CancelFunc) {
	if stopping {
		return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	}
	return context.WithCancel(ctx)
}

// applyChunk is the most events fetched before they are applied: events
// are applied as they come, in chunks, and flushed every FlushInterval (or
// after MaxBatch events).
const applyChunk = 5000

// mergeEvent decodes an event into an emptied struct whose origin is
// already allocated.
var mergeEvent = proto.UnmarshalOptions{Merge: true}

// lateReason is the dead-letter reason of an event past the late horizon.
var lateReason = schemas.DeadLetterReason(schemas.DeadLetterLate, "event time older than the late horizon")

func (a *Aggregator) isLate(ev *pixelpb.Event) bool {
	return a.now().Sub(time.UnixMilli(ev.GetOrigin().GetReceivedAtMs())) > a.cfg.LateHorizon
}

// classOf separates people from machines.
func classOf(ev *pixelpb.Event) hllstore.Class {
	switch {
	case ev.GetMachineOpen():
		return hllstore.Machine
	case ev.GetBot():
		return hllstore.Bot
	case ev.GetUnverifiedReason() != "" && ev.GetSignaturePolicy() == "require":
		return hllstore.Unverified
	}
	return hllstore.Human
}

// dayKey is the content id and UTC day an event counts in.
func dayKey(ev *pixelpb.Event) hllstore.DayKey {
	return hllstore.DayKey{ContentID: ev.GetContentId(), DayStart: hllstore.DayStart(ev.GetOrigin().GetReceivedAtMs())}
}

// recordsOf returns the records of its day an event counts in: its content
// id's, and its campaign's on that content id, each for its hour and the day.
func recordsOf(dst []hllstore.RecordID, ev *pixelpb.Event, dayStart int64) []hllstore.RecordID {
	class := classOf(ev)
	hour := int8((ev.GetOrigin().GetReceivedAtMs() - dayStart) / hllstore.HourMs)
	id := hllstore.RecordID{Kind: ev.GetKind(), Class: class, Hour: hllstore.DayRecord}
	dst = append(dst, id)
	id.Hour = hour
	dst = append(dst, id)
	if c := ev.GetCampaignId(); c != "" {
		id.Campaign = c
		dst = append(dst, id)
		id.Hour = hllstore.DayRecord
		dst = append(dst, id)
	}
	return dst
}

// apply adds the events to the in-memory days, loading days it does not
// hold yet from Redis first. An event counts in a day's records only if the
// day has not seen its source position, and in its breakdowns only if their
// positions have not.
func (a *Aggregator) apply(ctx context.Context, events []*pixelpb.Event) error {
	missing := a.missing[:0]
	for _, ev := range events {
		dk := dayKey(ev)
		if _, ok := a.days[dk]; !ok {
			a.days[dk] = nil // placeholder: listed once
			missing = append(missing, dk)
		}
	}
	a.missing = missing[:0]
	if len(missing) > 0 {
		var days []*hllstore.Day
		err := a.retryLoad(ctx, "count days", len(missing), func() (err error) {
			days, err = a.store.LoadDays(ctx, missing)
			return err
		})
		if err != nil {
			for _, dk := range missing {
				delete(a.days, dk)
			}
			return err
		}
		for i, dk := range missing {
			d := days[i]
			for id, r := range d.Records {
				// A loaded record is raised in the top-N at the next detail
				// flush even if replayed events all skip: the raise may be
				// what a crash or reset lost.
				if r.Total > 0 && isTopRecord(id) {
					r.Mark |= untop
				}
			}
			a.records += len(d.Records)
			a.days[dk] = &dayEntry{d: d}
		}
	}
	now := time.Now()
	var ids [4]hllstore.RecordID
	var values [5]string
	for _, ev := range events {
		dk := dayKey(ev)
		e := a.days[dk]
		d := e.d
		src := ev.GetSource()
		p, o := src.GetPartition(), src.GetOffset()
		vk := ev.GetVisitorKey()
		human := classOf(ev) == hllstore.Human
		e.touched = now
		// A conversion whose order the day counted from another event (a
		// reloaded thank-you page, a resent pixel) counts in nothing; its
		// positions advance like any event's.
		dupOrder := ev.GetKind() == pixelpb.Kind_KIND_CONVERSION && ev.GetOrderId() != "" && !d.CountOrder(ev.GetOrderId(), p, o)
		if human && !d.BPos.Covers(p, o) {
			d.BPos[p] = o
			if !dupOrder {
				values = [5]string{ev.GetCountry(), ev.GetDeviceType(), ev.GetBrowser(), ev.GetOs(), ev.GetReferrerMedium()}
				d.Breakdown(ev.GetKind()).AddValues(&values, vk, a.cfg.MaxBreakdownValues)
			}
			e.bdirty = true
		}
		if d.Pos.Covers(p, o) {
			a.m.skipped.Inc()
			continue
		}
		d.Pos[p] = o
		e.dirty = true
		if dupOrder {
			a.m.dupOrder.Inc()
			continue
		}
		for _, id := range recordsOf(ids[:0], ev, dk.DayStart) {
			r := d.Records[id]
			if r == nil {
				r = d.Record(id)
				a.records++
			}
			r.Add(vk)
			if ev.GetBot() || ev.GetMachineOpen() {
				for _, reason := range ev.GetBotReasons() {
					r.AddReason(reason)
				}
			} else if reason := ev.GetUnverifiedReason(); reason != "" {
				// Unverified, or human under a prefer policy: why it
				// did not verify.
				r.AddReason(reason)
			}
			if ev.GetKind() == pixelpb.Kind_KIND_CONVERSION && ev.GetOrderId() != "" {
				r.AddOrder(ev.GetOrderId(), ev.GetCurrency(), ev.GetValueMicros())
			}
			r.Mark |= unsnap
			if isTopRecord(id) {
				r.Mark |= untop
			}
		}
		a.m.applied.Inc()
	}
	a.m.activeState.Set(float64(a.records))
	return nil
}

// isTopRecord reports whether a record is ranked in the top-N index.
func isTopRecord(id hllstore.RecordID) bool {
	return id.Campaign == "" && id.Class == hllstore.Human && id.Hour == hllstore.DayRecord
}

// retryLoad calls load until it succeeds, finds corrupt data, or ctx ends,
// with a growing pause: without the records no event of theirs can count.
func (a *Aggregator) retryLoad(ctx context.Context, what string, keys int, load func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := load()
		if err == nil || errors.Is(err, hllstore.ErrCorrupt) {
			return err
		}
		a.logger.Warn("load failed, retrying", "what", what, "keys", keys, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// flush writes every day whose records changed (one script call per group
// of content ids and day, hllstore.SaveDays), the watermarks and the late
// events' dead letters; a full flush also
// writes the changed breakdowns (in the same calls) and raises the top-N
// index. A refused write marks the aggregator stale (see reset).
func (a *Aggregator) flush(ctx context.Context, full bool) error {
	start := time.Now()
	var writes []hllstore.DayWrite
	var entries []*dayEntry
	for dk, e := range a.days {
		if e.dirty || (full && e.bdirty) {
			writes = append(writes, hllstore.DayWrite{Key: dk, Day: e.d, Details: full})
			entries = append(entries, e)
		}
	}
	if len(writes) > 0 {
		written, err := a.store.SaveDays(ctx, writes)
		if err != nil {
			a.m.flushErr.Inc()
			return err
		}
		for i, e := range entries {
			if written[i] {
				e.dirty = false
				if full {
					e.bdirty = false
				}
				continue
			}
			a.m.refused.Inc()
			a.stale = true
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
	var topped []*hllstore.Record
	for dk, e := range a.days {
		if e.dirty { // only what Redis holds
			continue
		}
		for id, r := range e.d.Records {
			if r.Mark&untop != 0 {
				tops = append(tops, hllstore.TopUpdate{Key: dk.Key(id), Total: r.Total, Uniques: r.Sketch.Estimate()})
				topped = append(topped, r)
			}
		}
	}
	if err := a.store.RaiseTop(ctx, tops); err != nil {
		return err
	}
	for _, r := range topped {
		r.Mark &^= untop
	}
	return nil
}

// publishSnapshots publishes the content-level records changed since the
// last snapshot to the counts topic (every DetailInterval, and when
// stopping). Snapshots are derived data: a failure is counted and the next
// interval publishes the latest counts again.
func (a *Aggregator) publishSnapshots(ctx context.Context) {
	if a.out.Counts == nil || !a.cfg.Snapshots {
		return
	}
	now := a.now()
	var msgs []kafka.Message
	var published []*hllstore.Record
	for dk, e := range a.days {
		for id, r := range e.d.Records {
			if r.Mark&unsnap == 0 || id.Campaign != "" {
				continue
			}
			k := dk.Key(id)
			snap := &pixelpb.CountSnapshot{
				SchemaVersion: schemas.CountSnapshotVersion,
				ContentId:     k.ContentID,
				Kind:          k.Kind,
				Granularity:   k.Gran,
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
				Key:   schemas.AppendCountKey(nil, k.ContentID, k.Kind, k.Class.String(), k.Gran, k.Start),
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
		r.Mark &^= unsnap
	}
	a.m.snapshots.Add(float64(len(msgs)))
}

func (a *Aggregator) evict(now time.Time) {
	for dk, e := range a.days {
		if e.dirty || e.bdirty || now.Sub(e.touched) <= a.cfg.IdleEvict {
			continue
		}
		marked := false
		for _, r := range e.d.Records {
			if r.Mark != 0 {
				marked = true
				break
			}
		}
		if !marked {
			a.records -= len(e.d.Records)
			delete(a.days, dk)
		}
	}
	a.m.activeState.Set(float64(a.records))
}

// watchIdle keeps the freshness watermarks of idle partitions moving. An
// aggregator writes the watermark of the partitions it reads events from;
// after a rebalance, a partition whose new owner has read nothing from it
// (no event arrived since) would keep its last owner's watermark, and the
// counts would look stale for good. Every Config.IdleCheck, a watermark not
// written for 3 × IdleCheck is set to now when the group has read and
// committed its partition to the end: whoever owns it, every event in it is
// flushed (offsets are committed only after their flush).
func (a *Aggregator) watchIdle(ctx context.Context) {
	t := time.NewTicker(a.cfg.IdleCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.markIdle(ctx); err != nil && ctx.Err() == nil {
			a.logger.Warn("freshness of idle partitions", "err", err)
		}
	}
}

func (a *Aggregator) markIdle(ctx context.Context) error {
	start := a.now()
	wms, err := a.store.Watermarks(ctx)
	if err != nil {
		return err
	}
	var stale []int
	for p, w := range wms {
		if start.UnixMilli()-w.WrittenAtMs > 3*a.cfg.IdleCheck.Milliseconds() {
			stale = append(stale, int(p))
		}
	}
	if len(stale) == 0 {
		return nil
	}
	idle, err := a.out.Idle.Idle(ctx, stale)
	if err != nil || len(idle) == 0 {
		return err
	}
	out := make(map[int32]hllstore.Watermark, len(idle))
	for _, p := range idle {
		out[int32(p)] = hllstore.Watermark{CompleteUntilMs: max(wms[int32(p)].CompleteUntilMs, start.UnixMilli()), WrittenAtMs: start.UnixMilli()}
	}
	a.m.idleWatermarks.Add(float64(len(out)))
	return a.store.WriteWatermarks(ctx, out)
}

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

	state      map[hllstore.Key]*entry
	breakdowns map[hllstore.BreakdownKey]*bentry
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

type bentry struct {
	b       hllstore.Breakdown
	dirty   bool
	touched time.Time
}

type entry struct {
	rec     hllstore.Record
	dirty   bool // changed since the last flush
	unsnap  bool // changed since the last snapshot
	untop   bool // changed since the last top-N update
	touched time.Time
}

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
		now: time.Now, state: map[hllstore.Key]*entry{},
		breakdowns: map[hllstore.BreakdownKey]*bentry{}, watermarks: map[int32]int64{},
	}, nil
}

// Run consumes until ctx is done, then flushes what it applied and commits
// what is durable before returning.
func (a *Aggregator) Run(ctx context.Context) error {
	a.reader = a.open()
	defer a.close()
	a.logger.Info("aggregator consuming", "topic", a.cfg.EventsTopic, "group", a.cfg.Group)
	var (
		pending   []kafka.Message // fetched and applied, not yet flushed
		nextFlush = time.Now().Add(a.cfg.FlushInterval)
		batch     []*pixelpb.Event
		msgs      []kafka.Message
	)
	for {
		// Fetch until the batch is full or the flush is due.
		msgs, batch = msgs[:0], batch[:0]
		a.caughtUp = false
		for len(msgs) < a.cfg.MaxBatch {
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
			ev := &pixelpb.Event{}
			if err := proto.Unmarshal(msgs[i].Value, ev); err != nil || ev.GetContentId() == "" || ev.GetSource() == nil {
				// The processor validated every event; a record that fails
				// here is skipped, counted and logged, never retried forever.
				a.m.corrupt.Inc()
				a.logger.Warn("skip undecodable event", "partition", msgs[i].Partition, "offset", msgs[i].Offset)
				continue
			}
			if a.isLate(ev) {
				a.m.late.Inc()
				a.late = append(a.late, kafkaconn.DeadLetter(&msgs[i], "late: event time older than the late horizon"))
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
		if !stopping && time.Now().Before(nextFlush) && len(msgs) < a.cfg.MaxBatch {
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
		"records_dropped", len(a.state))
	a.m.resets.Inc()
	if err := a.reader.Close(); err != nil {
		a.logger.Warn("close events reader", "err", err)
	}
	clear(a.state)
	clear(a.breakdowns)
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
	}
	return hllstore.Human
}

var grans = [2]pixelpb.Granularity{pixelpb.Granularity_GRANULARITY_HOUR, pixelpb.Granularity_GRANULARITY_DAY}

// keysOf returns the records an event counts in: its content id, and its
// campaign on that content id, each per hour and per day.
func keysOf(dst []hllstore.Key, ev *pixelpb.Event) []hllstore.Key {
	t := ev.GetOrigin().GetReceivedAtMs()
	class := classOf(ev)
	for _, g := range grans {
		k := hllstore.Key{ContentID: ev.GetContentId(), Kind: ev.GetKind(), Class: class, Gran: g, Start: hllstore.BucketStart(g, t)}
		dst = append(dst, k)
		if c := ev.GetCampaignId(); c != "" {
			k.Campaign = c
			dst = append(dst, k)
		}
	}
	return dst
}

// apply adds the events to the in-memory records, loading records it does
// not hold yet from Redis first. An event counts in a record only if the
// record has not seen its source position.
func (a *Aggregator) apply(ctx context.Context, events []*pixelpb.Event) error {
	var missing []hllstore.Key
	var keys []hllstore.Key
	seen := map[hllstore.Key]bool{}
	for _, ev := range events {
		keys = keysOf(keys[:0], ev)
		for _, k := range keys {
			if _, ok := a.state[k]; !ok && !seen[k] {
				seen[k] = true
				missing = append(missing, k)
			}
		}
	}
	if len(missing) > 0 {
		recs, err := a.load(ctx, missing)
		if err != nil {
			return err
		}
		for i, k := range missing {
			// A loaded record is raised in the top-N at the next detail
			// flush even if replayed events all skip: the raise may be
			// what a crash or reset lost.
			a.state[k] = &entry{rec: recs[i], untop: recs[i].Total > 0 && isTopKey(k)}
		}
	}
	if err := a.loadBreakdowns(ctx, events); err != nil {
		return err
	}
	now := time.Now()
	for _, ev := range events {
		src := ev.GetSource()
		a.applyBreakdowns(ev, now)
		keys = keysOf(keys[:0], ev)
		applied := false
		for _, k := range keys {
			e := a.state[k]
			if e.rec.Pos.Covers(src.GetPartition(), src.GetOffset()) {
				continue
			}
			r := &e.rec
			r.Total++
			r.Sketch.InsertHash(ev.GetVisitorKey())
			r.Pos[src.GetPartition()] = src.GetOffset()
			if k.Class != hllstore.Human {
				for _, reason := range ev.GetBotReasons() {
					r.AddReason(reason)
				}
			}
			if ev.GetKind() == pixelpb.Kind_KIND_CONVERSION && ev.GetOrderId() != "" {
				r.AddOrder(ev.GetOrderId(), ev.GetCurrency(), ev.GetValueMicros())
			}
			e.dirty, e.unsnap, e.touched = true, true, now
			e.untop = isTopKey(k)
			applied = true
		}
		if applied {
			a.m.applied.Inc()
		} else {
			a.m.skipped.Inc()
		}
	}
	a.m.activeState.Set(float64(len(a.state)))
	return nil
}

// breakdownValue is the value of event ev in dimension dim.
func breakdownValue(ev *pixelpb.Event, dim string) string {
	switch dim {
	case hllstore.DimCountry:
		return ev.GetCountry()
	case hllstore.DimDevice:
		return ev.GetDeviceType()
	case hllstore.DimBrowser:
		return ev.GetBrowser()
	case hllstore.DimOS:
		return ev.GetOs()
	case hllstore.DimSource:
		return ev.GetReferrerMedium()
	}
	return ""
}

func breakdownKey(ev *pixelpb.Event) hllstore.BreakdownKey {
	return hllstore.BreakdownKey{ContentID: ev.GetContentId(), Kind: ev.GetKind(), DayStart: hllstore.DayStart(ev.GetOrigin().GetReceivedAtMs())}
}

// loadBreakdowns loads the breakdowns the human events of a batch need.
func (a *Aggregator) loadBreakdowns(ctx context.Context, events []*pixelpb.Event) error {
	var missing []hllstore.BreakdownKey
	seen := map[hllstore.BreakdownKey]bool{}
	for _, ev := range events {
		if classOf(ev) != hllstore.Human {
			continue
		}
		k := breakdownKey(ev)
		if _, ok := a.breakdowns[k]; !ok && !seen[k] {
			seen[k] = true
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var bs []hllstore.Breakdown
	err := a.retryLoad(ctx, "breakdowns", len(missing), func() (err error) {
		bs, err = a.store.LoadBreakdowns(ctx, missing)
		return err
	})
	if err != nil {
		return err
	}
	for i, k := range missing {
		a.breakdowns[k] = &bentry{b: bs[i]}
	}
	return nil
}

// applyBreakdowns counts a human event in its day's breakdowns, guarded by
// their own positions like a record.
func (a *Aggregator) applyBreakdowns(ev *pixelpb.Event, now time.Time) {
	if classOf(ev) != hllstore.Human {
		return
	}
	src := ev.GetSource()
	e := a.breakdowns[breakdownKey(ev)]
	if e.b.Pos.Covers(src.GetPartition(), src.GetOffset()) {
		return
	}
	for _, dim := range hllstore.Dims() {
		e.b.Add(dim, breakdownValue(ev, dim), ev.GetVisitorKey(), a.cfg.MaxBreakdownValues)
	}
	e.b.Pos[src.GetPartition()] = src.GetOffset()
	e.dirty, e.touched = true, now
}

// isTopKey reports whether k's record is ranked in the top-N index.
func isTopKey(k hllstore.Key) bool {
	return k.Campaign == "" && k.Class == hllstore.Human && k.Gran == pixelpb.Granularity_GRANULARITY_DAY
}

// load reads records from Redis, retrying until ctx ends: without them no
// event of those keys can be applied.
func (a *Aggregator) load(ctx context.Context, keys []hllstore.Key) ([]hllstore.Record, error) {
	var recs []hllstore.Record
	err := a.retryLoad(ctx, "count records", len(keys), func() (err error) {
		recs, err = a.store.Load(ctx, keys)
		return err
	})
	return recs, err
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

// flush writes every dirty record, the watermarks and the late events' dead
// letters; a full flush also writes the details: breakdowns and the top-N
// index. A refused write marks the aggregator stale (see reset).
func (a *Aggregator) flush(ctx context.Context, full bool) error {
	start := time.Now()
	var writes []hllstore.Write
	for k, e := range a.state {
		if e.dirty {
			writes = append(writes, hllstore.Write{Key: k, Record: &e.rec})
		}
	}
	if len(writes) > 0 {
		written, err := a.store.Save(ctx, writes)
		if err != nil {
			a.m.flushErr.Inc()
			return err
		}
		for i, w := range writes {
			if written[i] {
				a.state[w.Key].dirty = false
				continue
			}
			a.m.refused.Inc()
			a.stale = true
		}
		a.m.flushTime.Observe(time.Since(start).Seconds())
	}
	if full {
		if err := a.flushDetails(ctx); err != nil {
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

// flushDetails writes the dirty breakdowns and raises the top-N index.
func (a *Aggregator) flushDetails(ctx context.Context) error {
	var bwrites []hllstore.BreakdownWrite
	for k, e := range a.breakdowns {
		if e.dirty {
			bwrites = append(bwrites, hllstore.BreakdownWrite{Key: k, Breakdown: &e.b})
		}
	}
	if len(bwrites) > 0 {
		written, err := a.store.SaveBreakdowns(ctx, bwrites)
		if err != nil {
			return err
		}
		for i, w := range bwrites {
			if written[i] {
				a.breakdowns[w.Key].dirty = false
				continue
			}
			a.m.refused.Inc()
			a.stale = true
		}
	}
	var tops []hllstore.TopUpdate
	var topped []*entry
	for k, e := range a.state {
		if e.untop && !e.dirty { // only what Redis holds
			tops = append(tops, hllstore.TopUpdate{Key: k, Total: e.rec.Total, Uniques: e.rec.Sketch.Estimate()})
			topped = append(topped, e)
		}
	}
	if err := a.store.RaiseTop(ctx, tops); err != nil {
		return err
	}
	for _, e := range topped {
		e.untop = false
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
	var published []*entry
	for k, e := range a.state {
		if !e.unsnap || k.Campaign != "" {
			continue
		}
		snap := &pixelpb.CountSnapshot{
			SchemaVersion: schemas.CountSnapshotVersion,
			ContentId:     k.ContentID,
			Kind:          k.Kind,
			Granularity:   k.Gran,
			BucketStartMs: k.Start,
			Total:         e.rec.Total,
			Uniques:       e.rec.Sketch.Estimate(),
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
		published = append(published, e)
	}
	if len(msgs) == 0 {
		return
	}
	if err := a.out.Counts.WriteMessages(ctx, msgs...); err != nil {
		a.m.snapshotErr.Inc()
		a.logger.Warn("publish count snapshots", "records", len(msgs), "err", err)
		return
	}
	for _, e := range published {
		e.unsnap = false
	}
	a.m.snapshots.Add(float64(len(msgs)))
}

func (a *Aggregator) evict(now time.Time) {
	for k, e := range a.state {
		if !e.dirty && !e.unsnap && !e.untop && now.Sub(e.touched) > a.cfg.IdleEvict {
			delete(a.state, k)
		}
	}
	for k, e := range a.breakdowns {
		if !e.dirty && now.Sub(e.touched) > a.cfg.IdleEvict {
			delete(a.breakdowns, k)
		}
	}
	a.m.activeState.Set(float64(len(a.state)))
}

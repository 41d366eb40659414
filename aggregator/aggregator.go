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
	// fetchErrs handles the reader's fetch errors (a broker away).
	fetchErrs *kafkaconn.FetchErrors
	open      func() *kafka.Reader
	reader    *kafka.Reader
	store     *hllstore.Store
	out       Outputs
	now       func() time.Time

	days       map[hllstore.DayKey]*dayEntry
	records    int // records held in days
	missing    []hllstore.DayKey
	prop       []byte          // scratch: a custom property as "key=value"
	watermarks map[int32]int64 // events partition -> newest event time applied
	caughtUp   bool            // the last fetch found no unread message
	late       []kafka.Message // late events to dead-letter before the next commit
	offsets    offsets         // fetched messages until their commit
	stale      bool            // a write was refused: state must be rebuilt
	lastDetail time.Time
	// writes counts the flushes that wrote days; confirmed is the count up
	// to which the writes were found in Redis when their offsets were
	// committed (see commitDurable).
	writes, confirmed uint64
	// erased holds the erased recipients and their erasure times, as of
	// erasedVersion (hllstore.Store.Erasures, read before each write with
	// recipient activity).
	erased        map[hllstore.RecipientKey]int64
	erasedVersion int64
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
		fetchErrs: kafkaconn.NewFetchErrors(reg, "aggregator", cfg.EventsTopic, logger),
		now:       time.Now, days: map[hllstore.DayKey]*dayEntry{}, watermarks: map[int32]int64{},
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
				// A broker away: what was fetched is flushed, and
				// fetching goes on after a pause.
				if err := a.fetchErrs.Failed(ctx, err); err != nil {
					return fmt.Errorf("fetch from %s: %w", a.cfg.EventsTopic, err)
				}
				break
			}
			a.fetchErrs.OK()
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
			if err := mergeEvent.Unmarshal(msgs[i].Value, ev); err != nil || !countable(ev) {
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
		a.offsets.applied(msgs)
		stopping := ctx.Err() != nil
		if !stopping && time.Now().Before(nextFlush) && a.offsets.unflushed() < a.cfg.MaxBatch {
			continue
		}
		full := stopping || time.Since(a.lastDetail) >= a.cfg.DetailInterval
		fctx, cancel := flushContext(ctx, stopping)
		err := a.flush(fctx, full)
		// After a failed flush, its messages stay pending for the next;
		// after a refused write (stale), nothing is committed: reset reads
		// them again from the committed offsets.
		if err == nil && !a.stale {
			a.offsets.flushed(full, time.Now(), a.writes)
			if full {
				a.lastDetail = time.Now()
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
		case a.stale:
			// Even when the flush failed too (the other days of a flush
			// that a node failing cut short): all of it is replayed.
			a.reset(err)
		case err != nil:
			a.logger.Warn("flush failed, will retry", "err", err)
		}
	}
}

// commitDurable commits the offsets of batches flushed at least CommitDelay
// ago: by then Redis has made their writes durable (fsynced, and sent to
// the replicas). First it makes sure Redis still holds them: a Redis that
// crashed, or a replica promoted after its master failed, may have lost the
// last writes the aggregator made, and a day that gets no new event is not
// written again, so no refused write would tell. Every day written since
// the last commit is checked (hllstore.Store.Lost); when one is lost,
// nothing is committed and Run resets, replaying from the committed
// offsets, which are still before the lost writes' events. When Redis does
// not answer, the commit waits for the next flush.
func (a *Aggregator) commitDurable(ctx context.Context) {
	msgs, n, upTo := a.offsets.due(time.Now(), a.cfg.CommitDelay)
	if n == 0 {
		return
	}
	var keys []hllstore.DayKey
	var days []*hllstore.Day
	for dk, e := range a.days {
		if e.written > a.confirmed {
			keys = append(keys, dk)
			days = append(days, e.d)
		}
	}
	lost, err := a.store.Lost(ctx, keys, days)
	if err != nil {
		a.logger.Warn("check the days written before committing; the commit waits", "days", len(keys), "err", err)
		return
	}
	for i, l := range lost {
		if l {
			a.m.lost.Inc()
			a.stale = true
			a.logger.Warn("Redis lost a write of a count day (a crash, or a failover to a replica that had not received it)", "content_id", keys[i].ContentID, "day", time.UnixMilli(keys[i].DayStart).UTC().Format(time.DateOnly))
		}
	}
	if a.stale {
		return
	}
	a.offsets.drop(n)
	a.confirmed = upTo
	if err := a.reader.CommitMessages(ctx, msgs...); err != nil {
		// Harmless for correctness: the records hold positions, so a replay
		// of these events is skipped.
		a.logger.Warn("commit events offsets", "err", err)
	}
}

// reset drops every record held in memory and every uncommitted offset, and
// reopens the reader, which resumes from the committed offsets. Events that
// are replayed and already in Redis are skipped by position. err is the
// failed flush's, if any.
func (a *Aggregator) reset(err error) {
	a.logger.Warn("count records went stale (another owner wrote them, or Redis lost writes); rebuilding from Redis and the committed offsets",
		"records_dropped", a.records, "flush_err", err)
	a.m.resets.Inc()
	if err := a.reader.Close(); err != nil {
		a.logger.Warn("close events reader", "err", err)
	}
	clear(a.days)
	a.records = 0
	clear(a.watermarks)
	a.offsets.reset()
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

// countable reports whether a decoded event has what apply needs: a
// content id, a source position, and for a visit its summary.
func countable(ev *pixelpb.Event) bool {
	return ev.GetContentId() != "" && ev.GetSource() != nil &&
		(ev.GetKind() != pixelpb.Kind_KIND_SESSION || ev.GetSession() != nil)
}

// applyChunk is the most events fetched before they are applied: events
// are applied as they come, in chunks, and flushed every FlushInterval (or
// after MaxBatch events).
const applyChunk = 5000

// mergeEvent decodes an event into an emptied struct whose origin is
// already allocated.
var mergeEvent = proto.UnmarshalOptions{Merge: true}

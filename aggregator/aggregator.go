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
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Aggregator is one member of the aggregator consumer group.
type Aggregator struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	reader *kafka.Reader
	store  *hllstore.Store

	state map[hllstore.Key]*entry
}

type entry struct {
	rec     hllstore.Record
	dirty   bool
	touched time.Time
}

// New returns an aggregator reading with reader (a consumer-group reader of
// the events topic, kafkaconn.NewGroupReader) and writing to store. The
// aggregator closes the reader when Run returns.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, reader *kafka.Reader, store *hllstore.Store) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Aggregator{
		cfg: cfg, logger: logger, m: newMetrics(reg), reader: reader, store: store,
		state: map[hllstore.Key]*entry{},
	}, nil
}

// Run consumes until ctx is done, then flushes what it applied and commits
// its offsets before returning.
func (a *Aggregator) Run(ctx context.Context) error {
	defer func() {
		if err := a.reader.Close(); err != nil {
			a.logger.Warn("close events reader", "err", err)
		}
	}()
	a.logger.Info("aggregator consuming", "topic", a.cfg.EventsTopic, "group", a.cfg.Group)
	var (
		pending   []kafka.Message // fetched and applied, not committed
		nextFlush = time.Now().Add(a.cfg.FlushInterval)
		batch     []*pixelpb.Event
		msgs      []kafka.Message
	)
	for {
		// Fetch until the batch is full or the flush is due.
		msgs, batch = msgs[:0], batch[:0]
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
			batch = append(batch, ev)
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
		if stopping := ctx.Err() != nil; stopping || time.Now().After(nextFlush) || len(msgs) >= a.cfg.MaxBatch {
			fctx, cancel := flushContext(ctx, stopping)
			err := a.flush(fctx, pending)
			cancel()
			if err == nil {
				pending = pending[:0]
			}
			nextFlush = time.Now().Add(a.cfg.FlushInterval)
			if stopping {
				if err != nil {
					return fmt.Errorf("final flush: %w", err)
				}
				a.logger.Info("aggregator stopped")
				return nil
			}
			if err != nil {
				a.logger.Warn("flush failed, will retry", "err", err)
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

// apply adds the events to the in-memory records, loading records it does
// not hold yet from Redis first.
func (a *Aggregator) apply(ctx context.Context, events []*pixelpb.Event) error {
	var missing []hllstore.Key
	seen := map[hllstore.Key]bool{}
	for _, ev := range events {
		k := keyOf(ev)
		if _, ok := a.state[k]; !ok && !seen[k] {
			seen[k] = true
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		recs, err := a.load(ctx, missing)
		if err != nil {
			return err
		}
		for i, k := range missing {
			a.state[k] = &entry{rec: recs[i]}
		}
	}
	now := time.Now()
	for _, ev := range events {
		e := a.state[keyOf(ev)]
		src := ev.GetSource()
		if e.rec.Pos.Covers(src.GetPartition(), src.GetOffset()) {
			a.m.skipped.Inc()
			continue
		}
		e.rec.Total++
		e.rec.Sketch.InsertHash(ev.GetVisitorKey())
		e.rec.Pos[src.GetPartition()] = src.GetOffset()
		e.dirty = true
		e.touched = now
		a.m.applied.Inc()
	}
	a.m.activeState.Set(float64(len(a.state)))
	return nil
}

// load reads records from Redis, retrying until ctx ends: without them no
// event of those keys can be applied.
func (a *Aggregator) load(ctx context.Context, keys []hllstore.Key) ([]hllstore.Record, error) {
	backoff := 100 * time.Millisecond
	for {
		recs, err := a.store.Load(ctx, keys)
		if err == nil {
			return recs, nil
		}
		if errors.Is(err, hllstore.ErrCorrupt) {
			return nil, err
		}
		a.logger.Warn("load count records failed, retrying", "keys", len(keys), "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// flush writes every dirty record, then commits the offsets of msgs.
func (a *Aggregator) flush(ctx context.Context, msgs []kafka.Message) error {
	start := time.Now()
	var writes []hllstore.Write
	for k, e := range a.state {
		if e.dirty {
			writes = append(writes, hllstore.Write{Key: k, Record: e.rec})
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
			// Another owner wrote a newer state: ours is stale. Drop it;
			// the events it held are counted by the owner that got further.
			a.m.refused.Inc()
			a.logger.Warn("count record moved on under another owner; dropping local copy", "content_id", w.Key.ContentID)
			delete(a.state, w.Key)
		}
		a.m.flushTime.Observe(time.Since(start).Seconds())
	}
	a.m.flushOK.Inc()
	if len(msgs) > 0 {
		if err := a.reader.CommitMessages(ctx, msgs...); err != nil {
			// Harmless for correctness: the records hold positions, so a
			// replay of these events is skipped.
			a.logger.Warn("commit events offsets", "err", err)
		}
	}
	a.evict(start)
	return nil
}

func (a *Aggregator) evict(now time.Time) {
	for k, e := range a.state {
		if !e.dirty && now.Sub(e.touched) > a.cfg.IdleEvict {
			delete(a.state, k)
		}
	}
	a.m.activeState.Set(float64(len(a.state)))
}

func keyOf(ev *pixelpb.Event) hllstore.Key {
	return hllstore.Key{
		ContentID:  ev.GetContentId(),
		Kind:       ev.GetKind(),
		DayStartMs: hllstore.DayStart(ev.GetOrigin().GetReceivedAtMs()),
	}
}

package edge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// record is one encoded hit: an 8-byte Kafka key followed by the RawHit.
// Records are pooled; a record goes back to the pool only after Kafka
// acknowledged it, since kafka-go keeps references to message bytes until then.
type record struct {
	buf        []byte
	receivedAt time.Time
	fields     schemas.HitFields // scratch space of the handler, empty when queued
	scratch    []byte            // the handler's copies of text made valid UTF-8
}

const keyLen = 8

// publisher owns the path from the handler to Kafka: a bounded queue, and one
// goroutine that writes batches synchronously and retries them until they are
// acknowledged or the drain deadline passes.
type publisher struct {
	cfg    Config
	w      *kafka.Writer
	m      *metrics
	logger *slog.Logger
	pool   sync.Pool

	queue    chan *record
	closed   atomic.Bool
	inflight atomic.Int64
}

func newPublisher(cfg Config, w *kafka.Writer, logger *slog.Logger) *publisher {
	p := &publisher{cfg: cfg, w: w, logger: logger, queue: make(chan *record, cfg.QueueSize)}
	p.pool.New = func() any { return &record{buf: make([]byte, 0, 512)} }
	return p
}

func (p *publisher) get() *record { return p.pool.Get().(*record) }

// enter registers a handler about to enqueue; it fails once draining began.
func (p *publisher) enter() bool {
	p.inflight.Add(1)
	if p.closed.Load() {
		p.inflight.Add(-1)
		return false
	}
	return true
}

func (p *publisher) leave() { p.inflight.Add(-1) }

// enqueue queues rec without blocking; false means the queue is full and the
// record went back to the pool.
func (p *publisher) enqueue(rec *record) bool {
	select {
	case p.queue <- rec:
		return true
	default:
		p.pool.Put(rec)
		return false
	}
}

// run writes batches until stop is closed and every queued hit was handled.
// writeCtx bounds the writes: when it ends, what is left is dropped and counted.
func (p *publisher) run(stop <-chan struct{}, writeCtx context.Context) {
	batch := make([]*record, 0, p.cfg.BatchSize)
	msgs := make([]kafka.Message, 0, p.cfg.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var first *record
		select {
		case first = <-p.queue:
		case <-stop:
			// No handler enqueues any more (see shutdown); drain what is left.
			for {
				batch = p.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				p.write(writeCtx, batch, msgs)
			}
		}
		batch = append(batch[:0], first)
		timer.Reset(p.cfg.BatchWait)
	collect:
		for len(batch) < p.cfg.BatchSize {
			select {
			case r := <-p.queue:
				batch = append(batch, r)
			case <-timer.C:
				break collect
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		p.write(writeCtx, batch, msgs)
	}
}

// fill takes queued records without waiting.
func (p *publisher) fill(batch []*record) []*record {
	for len(batch) < p.cfg.BatchSize {
		select {
		case r := <-p.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// write sends batch until Kafka acknowledged every record, retrying only the
// records that failed, with a growing pause between attempts.
func (p *publisher) write(ctx context.Context, batch []*record, msgs []kafka.Message) {
	pending := batch
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		msgs = msgs[:0]
		for _, r := range pending {
			msgs = append(msgs, kafka.Message{Key: r.buf[:keyLen], Value: r.buf[keyLen:], Time: r.receivedAt})
		}
		err := p.w.WriteMessages(ctx, msgs...)
		if err == nil {
			p.m.batchOK.Inc()
			p.done(pending)
			return
		}
		p.m.batchErr.Inc()
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			failed := pending[:0:0]
			var ok []*record
			for i, r := range pending {
				if werrs[i] != nil {
					failed = append(failed, r)
				} else {
					ok = append(ok, r)
				}
			}
			p.done(ok)
			pending = failed
		}
		if ctx.Err() != nil {
			p.m.dropped.Add(float64(len(pending)))
			p.logger.Error("hits dropped: drain deadline passed before Kafka acknowledged them",
				"hits", len(pending), "err", err)
			for _, r := range pending {
				p.pool.Put(r)
			}
			return
		}
		if attempt == 1 || attempt%20 == 0 {
			p.logger.Warn("kafka write failed, retrying", "hits", len(pending), "attempt", attempt, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (p *publisher) done(recs []*record) {
	if len(recs) == 0 {
		return
	}
	p.m.published.Add(float64(len(recs)))
	p.m.publishDelay.Observe(time.Since(recs[0].receivedAt).Seconds())
	for _, r := range recs {
		p.pool.Put(r)
	}
}

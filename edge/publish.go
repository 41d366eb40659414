package edge

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pixelpipe/pixelpipe/edge/spool"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// A spooled hit is [8-byte Kafka key][8-byte receive time and lane][RawHit]
// (see laneHeader).
const (
	keyLen    = 8
	headerLen = 16
)

// record is the handler's scratch space for encoding one hit. Records are
// pooled; the spool copies the encoded bytes, so a record goes back to the
// pool as soon as its hit was appended.
type record struct {
	buf     []byte
	fields  schemas.HitFields // scratch space of the handler, emptied after encoding
	scratch []byte            // the handler's copies of text made valid UTF-8
	ip      []byte            // the client IP in its 4- or 16-byte form
	params  hitParams         // the hit's parameters, borrowed from the request
	hdr     reqHeaders        // the request headers recorded, borrowed
	props   []schemas.Prop    // the hit's custom properties, borrowed
	query   []byte            // the parameters percent-decoded by fromQuery
	issued  []byte            // the visitor id issued to this request, if any
}

// publisher moves spooled hits to Kafka: one goroutine reads the spool in
// order, writes a batch synchronously (every in-sync replica acknowledges),
// retries what failed until it succeeds, and only then acknowledges the
// batch to the spool. Kafka being slow or down only makes the spool grow.
type publisher struct {
	cfg    Config
	prod   *producer
	sp     *spool.Spool
	m      *metrics
	logger *slog.Logger

	all, retry []int32 // scratch: indexes of a batch's hits, of those to retry

	closed   atomic.Bool  // no handler may append any more
	inflight atomic.Int64 // handlers between enter and leave
}

// enter registers a handler about to append; it fails once shutdown closed
// the spool to new hits.
func (p *publisher) enter() bool {
	p.inflight.Add(1)
	if p.closed.Load() {
		p.inflight.Add(-1)
		return false
	}
	return true
}

func (p *publisher) leave() { p.inflight.Add(-1) }

// run delivers spooled hits until stop is closed and the spool is empty, or
// until writeCtx ends; what is undelivered then stays in the spool.
func (p *publisher) run(stop <-chan struct{}, writeCtx context.Context) {
	idle := time.NewTicker(250 * time.Millisecond)
	defer idle.Stop()
	wait := false
	for {
		if wait {
			select {
			case <-p.sp.Notify():
				// Let the batch fill a little, unless shutting down.
				select {
				case <-time.After(p.cfg.BatchWait):
				case <-stop:
				}
			case <-idle.C:
			case <-stop:
			case <-writeCtx.Done():
				return
			}
		}
		recs, pos, err := p.sp.Read(p.cfg.BatchSize, 8<<20)
		if err != nil {
			p.logger.Error("read spool", "err", err)
			select {
			case <-time.After(time.Second):
			case <-writeCtx.Done():
				return
			}
			continue
		}
		if len(recs) == 0 {
			select {
			case <-stop:
				return // drained
			default:
			}
			wait = true
			continue
		}
		wait = len(recs) < p.cfg.BatchSize
		if !p.write(writeCtx, recs) {
			return // deadline: the batch stays in the spool
		}
		if err := p.sp.Ack(pos, len(recs)); err != nil {
			p.logger.Error("acknowledge delivered hits in the spool", "err", err)
		}
	}
}

// learnLanes asks Kafka for the partition count when the spool folder had
// none stored, so the first hits are numbered by lane; it gives up after a
// few seconds (Kafka down at the first start), leaving it to the first
// delivered batch. It runs before the publisher starts.
func (p *publisher) learnLanes(ctx context.Context) {
	if p.prod.lanes == nil || p.prod.lanes.count() > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var err error
	for {
		// A broker just started may answer with an error at first.
		var n int
		if n, err = p.prod.partitions.Count(ctx); err == nil {
			err = p.prod.lanes.resize(n, true)
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}
	if err != nil {
		p.logger.Warn("partition count unknown: hits are numbered per node until Kafka answers (the audit cannot check them by lane)", "err", err)
	}
}

// write sends recs until Kafka acknowledged every one, retrying only the
// ones that failed, with a growing pause between attempts. It returns false
// when ctx ended first.
func (p *publisher) write(ctx context.Context, recs [][]byte) bool {
	first := time.UnixMilli(spooledTime(recs[0]))
	p.all = p.all[:0]
	for i := range recs {
		p.all = append(p.all, int32(i))
	}
	pending := p.all
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		failed, err := p.prod.produce(ctx, recs, pending)
		if err == nil {
			p.m.batchOK.Inc()
			p.m.published.Add(float64(len(pending)))
			p.m.publishDelay.Observe(time.Since(first).Seconds())
			return true
		}
		p.m.batchErr.Inc()
		p.m.published.Add(float64(len(pending) - len(failed)))
		// failed is the producer's scratch space: keep a copy.
		p.retry = append(p.retry[:0], failed...)
		pending = p.retry
		if ctx.Err() != nil {
			p.logger.Warn("drain deadline passed: hits stay in the spool for the next start",
				"hits", len(pending), "batch", len(recs), "err", err)
			return false
		}
		if attempt == 1 || attempt%20 == 0 {
			p.logger.Warn("kafka write failed; hits stay in the spool, retrying", "hits", len(pending), "attempt", attempt, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

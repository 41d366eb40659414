package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/processor/bots"
	"github.com/pixelpipe/pixelpipe/processor/device"
	"github.com/pixelpipe/pixelpipe/processor/geo"
	"github.com/pixelpipe/pixelpipe/processor/recipient"
	"github.com/pixelpipe/pixelpipe/processor/signing"
	"github.com/pixelpipe/pixelpipe/processor/source"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Deps are what a processor reads from and writes to.
type Deps struct {
	// Reader is a consumer-group reader of the hits topic (kafkaconn).
	Reader *kafka.Reader
	// Events, Sessions and DLQ write to the events, sessions and
	// dead-letter topics (kafkaconn.Producer).
	Events, Sessions, DLQ Writer
	// State keeps the snapshots of the partitions' session and duplicate
	// state in Redis.
	State *state.Store
	// Hits reads the hits between a partition's snapshot and the first
	// offset the group hands over (kafkaconn.Ranges).
	Hits Ranges
	// Clock writes clock ticks to every partition of the hits topic
	// (kafkaconn.Producer); nil writes none.
	Clock ClockWriter
	// Audit names the completeness audit's hashes in Redis, which each
	// snapshot updates; nil keeps the audit in memory and in the snapshots
	// only (tests of other things).
	Audit *audit.Writer
}

// Writer writes a batch of records to one topic and returns once Kafka
// acknowledged all of them, or with an error (then the batch is written
// again: at least once).
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// ClockWriter writes a clock tick (schemas.ClockHeader) of atMs to every
// partition of the hits topic.
type ClockWriter interface {
	WriteClockTicks(ctx context.Context, atMs int64) error
	Close() error
}

// Ranges reads a range of offsets of one partition of the hits topic.
type Ranges interface {
	// Read calls fn with the records at offsets from to to-1 (see
	// kafkaconn.Ranges.Read).
	Read(ctx context.Context, partition int, from, to int64, fn func(*kafka.Message) error) (first int64, err error)
	// OffsetAt returns the first offset whose record time is at or after
	// t, or -1.
	OffsetAt(ctx context.Context, partition int, t time.Time) (int64, error)
}

// Processor is one member of the processor consumer group.
type Processor struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	// fetchErrs handles the reader's fetch errors (a broker away).
	fetchErrs *kafkaconn.FetchErrors
	d         Deps
	keyer     *visitor.Keyer
	now       func() time.Time

	geo     *geo.Locator
	ua      *device.Parser
	sources *source.List
	bots    *bots.Labeler
	signing *signing.Rules
	// recipientIDs says where a hit's explicit id goes along with its key
	// (keyer.RecipientKey).
	recipientIDs *recipient.Rules

	parts map[int]*part

	// The hit being processed, reused.
	hit decoded
	// Per batch, reused.
	events []kafka.Message
	// hitTimes holds the receive time of each hit's event of the batch
	// (for the lag histogram: visits are not hits).
	hitTimes []int64
	// at is the position of the record being processed; closes counts
	// the visits it closed so far (their index).
	at     pixelpb.SourcePosition
	closes uint32
	// evBuf holds the keys and values of events, evEnds where each event's
	// key and value end in it.
	evBuf  []byte
	evEnds [][2]int
	// Per event, reused: the event being encoded.
	ev     pixelpb.Event
	evSrc  pixelpb.SourcePosition
	ipBuf  [16]byte
	recBuf [visitor.RecipientKeySize]byte
	closed []kafka.Message
	dlq    []kafka.Message
}

// New returns a processor. The processor closes the reader and writers when
// Run returns.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, d Deps) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	loc, err := geo.New(cfg.Geo, logger, reg)
	if err != nil {
		return nil, err
	}
	sources := source.DefaultList()
	if cfg.ReferrerList != "" {
		if err := loadFile(cfg.ReferrerList, sources.Load); err != nil {
			return nil, err
		}
	}
	bcfg := bots.Config{MaxPerMinute: uint32(cfg.MaxPerMinute), UACache: cfg.UACache}
	if cfg.DatacenterList != "" {
		f, err := os.Open(cfg.DatacenterList)
		if err != nil {
			return nil, fmt.Errorf("processor.datacenterList: %w", err)
		}
		bcfg.Datacenter, err = bots.LoadCIDRs(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("processor.datacenterList %s: %w", cfg.DatacenterList, err)
		}
	}
	recipientIDs, err := recipient.ParseRules(cfg.RecipientIDs)
	if err != nil {
		return nil, fmt.Errorf("processor.recipientIDs: %w", err)
	}
	rules, err := signing.Parse(cfg.SignedPixels)
	if err != nil {
		return nil, fmt.Errorf("processor.signedPixels: %w", err)
	}
	return &Processor{
		cfg: cfg, logger: logger, m: newMetrics(reg), d: d, signing: rules,
		fetchErrs: kafkaconn.NewFetchErrors(reg, "processor", cfg.HitsTopic, logger),
		keyer:     visitor.NewKeyer(cfg.VisitorSecret), now: time.Now,
		geo: loc, ua: device.NewParser(cfg.UACache, reg), sources: sources, bots: bots.New(bcfg),
		parts:        map[int]*part{},
		recipientIDs: recipientIDs,
	}, nil
}

func loadFile(path string, load func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := load(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Run consumes until ctx is done. The batch in hand when ctx ends is
// written and committed, and every partition's state is snapshotted,
// before Run returns.
func (p *Processor) Run(ctx context.Context) error {
	defer p.close()
	gctx, stopGeo := context.WithCancel(ctx)
	geoDone := make(chan error, 1)
	go func() { geoDone <- p.geo.Run(gctx) }()
	defer func() { stopGeo(); <-geoDone }()
	// The clock's writes run beside the processing, so a slow or absent
	// broker delays ticks, not hits.
	clockDone := make(chan struct{})
	go func() { defer close(clockDone); p.runClock(gctx) }()
	defer func() { stopGeo(); <-clockDone }()

	p.logger.Info("processor consuming", "topic", p.cfg.HitsTopic, "group", p.cfg.Group)
	var in []kafka.Message
	for ctx.Err() == nil {
		in = in[:0]
		// Waiting for the first hit is bounded by the snapshot interval, so
		// a partition that goes quiet is still snapshotted.
		fctx, cancel := context.WithTimeout(ctx, p.cfg.SnapshotInterval)
		m, err := p.d.Reader.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if fctx.Err() != nil {
				p.snapshotQuietly(ctx, false)
				continue
			}
			// A broker away: fetching goes on after a pause.
			if err := p.fetchErrs.Failed(ctx, err); err != nil {
				return fmt.Errorf("fetch from %s: %w", p.cfg.HitsTopic, err)
			}
			continue
		}
		p.fetchErrs.OK()
		in = append(in, m)
		deadline := time.Now().Add(p.cfg.MaxWait)
		for len(in) < p.cfg.MaxBatch {
			fctx, cancel := context.WithDeadline(ctx, deadline)
			m, err := p.d.Reader.FetchMessage(fctx)
			cancel()
			if err != nil {
				break
			}
			in = append(in, m)
		}
		// The batch is finished even when ctx ends meanwhile: its hits are
		// fetched, and committing them after writing is what keeps them.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err = p.handle(wctx, ctx, in)
		cancel()
		if err != nil {
			return err
		}
	}
	// A snapshot at the last position makes the next owner's start cheap.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	p.snapshotQuietly(sctx, true)
	cancel()
	p.logger.Info("processor stopped")
	return nil
}

func (p *Processor) close() {
	if err := p.d.Reader.Close(); err != nil {
		p.logger.Warn("close hits reader", "err", err)
	}
	for _, w := range []Writer{p.d.Events, p.d.Sessions, p.d.DLQ} {
		if err := w.Close(); err != nil {
			p.logger.Warn("close writer", "err", err)
		}
	}
	if p.d.Clock != nil {
		if err := p.d.Clock.Close(); err != nil {
			p.logger.Warn("close clock writer", "err", err)
		}
	}
}

// runClock writes clock ticks to every partition of the hits topic at
// once and then every Config.ClockTick until ctx ends. Every processor
// writes them to every partition: no processor needs to know which
// partitions are whose, and a partition's extra ticks only repeat its
// event time. A failed write is logged and counted, and tried again at the
// next interval.
func (p *Processor) runClock(ctx context.Context) {
	if p.d.Clock == nil || p.cfg.ClockTick <= 0 {
		return
	}
	t := time.NewTicker(p.cfg.ClockTick)
	defer t.Stop()
	for {
		tctx, cancel := context.WithTimeout(ctx, min(p.cfg.ClockTick, 10*time.Second))
		err := p.d.Clock.WriteClockTicks(tctx, p.now().UnixMilli())
		cancel()
		if err != nil && ctx.Err() == nil {
			p.m.tickErr.Inc()
			p.logger.Warn("write clock ticks", "topic", p.cfg.HitsTopic, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// handle processes one batch to the end: transform with the partitions'
// state, write, snapshot what is due, commit. A failure of Redis or Kafka is
// retried with backoff, from the partitions' last snapshots, until stop
// ends; then it returns an error without committing, and the hits are
// replayed.
func (p *Processor) handle(ctx, stop context.Context, in []kafka.Message) error {
	backoff := 100 * time.Millisecond
	for {
		err := p.transform(ctx, in)
		if err == nil {
			err = p.deliver(ctx)
		}
		if err == nil {
			break
		}
		// Whatever this batch did to the in-memory state is dropped: the
		// retry rebuilds it from the snapshot and the hits since.
		p.forget(in)
		if stop.Err() != nil || ctx.Err() != nil {
			return fmt.Errorf("batch of %d hits not finished while stopping (offsets not committed, hits will be replayed): %w", len(in), err)
		}
		p.logger.Warn("batch failed, retrying from the last snapshot", "hits", len(in), "err", err)
		select {
		case <-time.After(backoff):
		case <-stop.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	now := p.now().UnixMilli()
	for _, at := range p.hitTimes {
		p.m.lag.Observe(float64(now-at) / 1e3)
	}
	if err := p.d.Reader.CommitMessages(ctx, in...); err != nil {
		// At-least-once: an uncommitted batch is replayed; the state makes
		// the processor skip what it already reflects, and the events carry
		// the same positions, which the aggregator skips.
		p.logger.Warn("commit hits offsets", "err", err)
	}
	return nil
}

// forget drops the in-memory state of the batch's partitions.
func (p *Processor) forget(in []kafka.Message) {
	for i := range in {
		delete(p.parts, in[i].Partition)
	}
}

// deliver writes the batch's records, waiting for Kafka's acknowledgement,
// then snapshots the partitions whose snapshot is due. A failed snapshot
// does not fail the batch: its records are written, and the next snapshot
// covers its hits (until then a new owner replays them from Kafka).
func (p *Processor) deliver(ctx context.Context) error {
	for _, w := range []struct {
		wr    Writer
		topic string
		msgs  []kafka.Message
	}{{p.d.Events, p.cfg.EventsTopic, p.events}, {p.d.Sessions, p.cfg.SessionsTopic, p.closed}, {p.d.DLQ, p.cfg.DLQTopic, p.dlq}} {
		if len(w.msgs) == 0 {
			continue
		}
		if err := w.wr.WriteMessages(ctx, w.msgs...); err != nil {
			p.m.writeErr.Inc()
			return fmt.Errorf("write %d records to %s: %w", len(w.msgs), w.topic, err)
		}
	}
	p.snapshotQuietly(ctx, false)
	return nil
}

package processor

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Processor is one member of the processor consumer group.
type Processor struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	reader *kafka.Reader
	events *kafka.Writer
	dlq    *kafka.Writer
	keyer  *visitor.Keyer
	now    func() time.Time
}

// New returns a processor. reader is a consumer-group reader of the hits
// topic; events and dlq are synchronous writers of the events and dead-letter
// topics (kafkaconn). The processor closes all three when Run returns.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, reader *kafka.Reader, events, dlq *kafka.Writer) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Processor{
		cfg: cfg, logger: logger, m: newMetrics(reg),
		reader: reader, events: events, dlq: dlq,
		keyer: visitor.NewKeyer(cfg.VisitorSecret), now: time.Now,
	}, nil
}

// Run consumes until ctx is done. The batch in hand when ctx ends is written
// and committed before Run returns.
func (p *Processor) Run(ctx context.Context) error {
	defer p.close()
	p.logger.Info("processor consuming", "topic", p.cfg.HitsTopic, "group", p.cfg.Group)
	var (
		in     []kafka.Message
		events []kafka.Message
		dlq    []kafka.Message
	)
	for ctx.Err() == nil {
		in = in[:0]
		m, err := p.reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("fetch from %s: %w", p.cfg.HitsTopic, err)
		}
		in = append(in, m)
		deadline := time.Now().Add(p.cfg.MaxWait)
		for len(in) < p.cfg.MaxBatch {
			fctx, cancel := context.WithDeadline(ctx, deadline)
			m, err := p.reader.FetchMessage(fctx)
			cancel()
			if err != nil {
				break
			}
			in = append(in, m)
		}
		events, dlq = p.transform(in, events[:0], dlq[:0])
		// The batch is finished even when ctx ends meanwhile: its hits are
		// fetched, and committing them after writing is what keeps them.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err = p.deliver(wctx, ctx, in, events, dlq)
		cancel()
		if err != nil {
			return err
		}
	}
	p.logger.Info("processor stopped")
	return nil
}

func (p *Processor) close() {
	if err := p.reader.Close(); err != nil {
		p.logger.Warn("close hits reader", "err", err)
	}
	for _, w := range []*kafka.Writer{p.events, p.dlq} {
		if err := w.Close(); err != nil {
			p.logger.Warn("close writer", "topic", w.Topic, "err", err)
		}
	}
}

// deliver writes the derived records, retrying until they are acknowledged,
// then commits the source offsets. It gives up, without committing, when
// stop ends and a write still fails: the hits are then replayed.
func (p *Processor) deliver(ctx, stop context.Context, in, events, dlq []kafka.Message) error {
	backoff := 100 * time.Millisecond
	for _, w := range []struct {
		wr   *kafka.Writer
		msgs []kafka.Message
	}{{p.events, events}, {p.dlq, dlq}} {
		for len(w.msgs) > 0 {
			err := w.wr.WriteMessages(ctx, w.msgs...)
			if err == nil {
				break
			}
			p.m.writeErr.Inc()
			if stop.Err() != nil || ctx.Err() != nil {
				return fmt.Errorf("write %d records to %s while stopping (offsets not committed, hits will be replayed): %w", len(w.msgs), w.wr.Topic, err)
			}
			p.logger.Warn("kafka write failed, retrying", "topic", w.wr.Topic, "records", len(w.msgs), "err", err)
			select {
			case <-time.After(backoff):
			case <-stop.Done():
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
	now := p.now()
	for i := range events {
		p.m.lag.Observe(now.Sub(events[i].Time).Seconds())
	}
	if err := p.reader.CommitMessages(ctx, in...); err != nil {
		// At-least-once: an uncommitted batch is replayed and its events
		// carry the same positions, which the aggregator skips.
		p.logger.Warn("commit hits offsets", "err", err)
	}
	return nil
}

// transform turns raw hits into event and dead-letter messages.
func (p *Processor) transform(in []kafka.Message, events, dlq []kafka.Message) ([]kafka.Message, []kafka.Message) {
	now := p.now().UnixMilli()
	var hit pixelpb.RawHit
	for i := range in {
		src := &in[i]
		hit.Reset()
		if err := proto.Unmarshal(src.Value, &hit); err != nil {
			p.m.dlqDecode.Inc()
			dlq = append(dlq, deadLetter(src, "decode: "+err.Error()))
			continue
		}
		if reason := validate(&hit); reason != "" {
			p.m.dlqInvalid.Inc()
			dlq = append(dlq, deadLetter(src, "invalid: "+reason))
			continue
		}
		key, idSrc := p.keyer.Key(hit.GetOrigin().GetReceivedAtMs(), []byte(hit.GetSiteId()),
			[]byte(hit.GetUserId()), []byte(hit.GetCookieId()), hit.GetClientIp(), []byte(hit.GetUserAgent()))
		ev := &pixelpb.Event{
			SchemaVersion:  schemas.EventVersion,
			Origin:         hit.GetOrigin(),
			Source:         &pixelpb.SourcePosition{Partition: int32(src.Partition), Offset: src.Offset},
			Kind:           hit.GetKind(),
			ContentId:      hit.GetContentId(),
			SiteId:         hit.GetSiteId(),
			CampaignId:     hit.GetCampaignId(),
			VisitorKey:     key,
			IdentitySource: idSrc,
			PageUrl:        hit.GetPageUrl(),
			Referrer:       hit.GetReferrer(),
			IpTruncated:    TruncateIP(hit.GetClientIp()),
			ProcessedAtMs:  now,
		}
		b, err := proto.Marshal(ev)
		if err != nil {
			panic("BUG: marshal event: " + err.Error())
		}
		p.m.events.Inc()
		events = append(events, kafka.Message{
			Key:   []byte(ev.GetContentId()),
			Value: b,
			Time:  time.UnixMilli(hit.GetOrigin().GetReceivedAtMs()),
		})
	}
	return events, dlq
}

// validate returns why a decoded hit cannot become an event, or "".
func validate(h *pixelpb.RawHit) string {
	switch {
	case h.GetInvalidReason() != "":
		return h.GetInvalidReason()
	case h.GetSchemaVersion() != schemas.RawHitVersion:
		return "unknown schema version " + strconv.Itoa(int(h.GetSchemaVersion()))
	case h.GetContentId() == "":
		return "missing_cid"
	case h.GetOrigin() == nil || len(h.GetOrigin().GetEventId()) != 16 || h.GetOrigin().GetReceivedAtMs() <= 0:
		return "bad_origin"
	case h.GetKind() == pixelpb.Kind_KIND_UNSPECIFIED:
		return "bad_kind"
	}
	return ""
}

// deadLetter wraps an unusable record for pixel.dlq.v1: the original key and
// bytes, the reason, and where it came from.
func deadLetter(src *kafka.Message, reason string) kafka.Message {
	return kafka.Message{
		Key:   src.Key,
		Value: src.Value,
		Headers: []kafka.Header{
			{Key: "reason", Value: []byte(reason)},
			{Key: "source", Value: []byte(src.Topic + "/" + strconv.Itoa(src.Partition) + "/" + strconv.FormatInt(src.Offset, 10))},
		},
	}
}

// TruncateIP keeps the network part of an address: /24 of IPv4, /48 of IPv6.
// Anything else gives nil.
func TruncateIP(ip []byte) []byte {
	switch len(ip) {
	case 4:
		return []byte{ip[0], ip[1], ip[2], 0}
	case 16:
		out := make([]byte, 16)
		copy(out, ip[:6])
		return out
	}
	return nil
}

package kafkaconn

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// WriteClockTicks writes a clock tick of atMs (schemas.ClockHeader) to every
// partition of the producer's topic, one produce request per partition, and
// returns the first error (the other partitions are still written).
func (p *Producer) WriteClockTicks(ctx context.Context, atMs int64) error {
	n, err := p.partitions.Count(ctx)
	if err != nil {
		return err
	}
	val := schemas.AppendClockTick(nil, atMs)
	var first error
	for part := range n {
		rec := kafka.Record{Time: time.UnixMilli(atMs), Headers: []kafka.Header{{Key: schemas.ClockHeader}}, Value: kafka.NewBytes(val)}
		if err := Send(ctx, p.client, p.topic, part, kafka.RequireAll, 0, kafka.NewRecordReader(rec)); err != nil && first == nil {
			first = fmt.Errorf("clock tick to %s partition %d: %w", p.topic, part, err)
			p.partitions.Forget()
		}
	}
	return first
}

// IsClockTick reports whether m is a clock tick, not a hit.
func IsClockTick(m *kafka.Message) bool {
	for _, h := range m.Headers {
		if h.Key == schemas.ClockHeader {
			return true
		}
	}
	return false
}

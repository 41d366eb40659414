package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// Ranges reads ranges of offsets of one topic's partitions outside any
// consumer group: the processor rebuilds a partition's state from the hits
// between its last snapshot and the group's committed offset with it.
type Ranges struct {
	c      Config
	topic  string
	logger *slog.Logger
}

// NewRanges returns a range reader of topic.
func NewRanges(c Config, topic string, logger *slog.Logger) *Ranges {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Ranges{c: c, topic: topic, logger: logger}
}

// OffsetAt returns the first offset of partition whose record time is at
// or after t, or -1 when no record is that new.
func (r *Ranges) OffsetAt(ctx context.Context, partition int, t time.Time) (int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(r.c.Brokers...), Timeout: 15 * time.Second}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{r.topic: {kafka.TimeOffsetOf(partition, t)}},
	})
	if err != nil {
		return -1, fmt.Errorf("offset of %s/%d at %s: %w", r.topic, partition, t.UTC().Format(time.RFC3339), err)
	}
	for _, po := range resp.Topics[r.topic] {
		if po.Partition != partition {
			continue
		}
		if po.Error != nil {
			return -1, fmt.Errorf("offset of %s/%d at %s: %w", r.topic, partition, t.UTC().Format(time.RFC3339), po.Error)
		}
		for off := range po.Offsets {
			return max(off, -1), nil
		}
	}
	return -1, nil
}

// ErrRangeGone is wrapped by Read's error when the start of the range is
// no longer in the partition (deleted by retention): the caller decides
// whether what is left is good enough.
var ErrRangeGone = errors.New("offsets no longer in the partition")

// Read calls fn with every record of partition at offsets from to to-1, in
// order, and returns fn's first error. When the partition no longer holds
// from (retention deleted it), Read returns an error wrapping ErrRangeGone
// without reading, and first, the oldest offset still held, so the caller
// may read from there.
func (r *Ranges) Read(ctx context.Context, partition int, from, to int64, fn func(*kafka.Message) error) (first int64, err error) {
	if from >= to {
		return from, nil
	}
	client := &kafka.Client{Addr: kafka.TCP(r.c.Brokers...), Timeout: 15 * time.Second}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{r.topic: {kafka.FirstOffsetOf(partition)}},
	})
	if err != nil {
		return from, fmt.Errorf("first offset of %s/%d: %w", r.topic, partition, err)
	}
	for _, po := range resp.Topics[r.topic] {
		if po.Partition != partition {
			continue
		}
		if po.Error != nil {
			return from, fmt.Errorf("first offset of %s/%d: %w", r.topic, partition, po.Error)
		}
		if po.FirstOffset > from {
			return po.FirstOffset, fmt.Errorf("%s/%d from %d (first held: %d): %w", r.topic, partition, from, po.FirstOffset, ErrRangeGone)
		}
	}
	rd := kafka.NewReader(kafka.ReaderConfig{
		Brokers:               r.c.Brokers,
		Topic:                 r.topic,
		Partition:             partition,
		MinBytes:              1,
		MaxBytes:              8 << 20,
		MaxWait:               250 * time.Millisecond,
		OffsetOutOfRangeError: true,
		Logger:                Logger(r.logger, slog.LevelDebug),
		ErrorLogger:           Logger(r.logger, slog.LevelWarn),
	})
	defer rd.Close()
	if err := rd.SetOffset(from); err != nil {
		return from, err
	}
	for {
		m, err := rd.FetchMessage(ctx)
		if err != nil {
			return from, fmt.Errorf("read %s/%d at %d of [%d, %d): %w", r.topic, partition, rd.Offset(), from, to, err)
		}
		if m.Offset >= to {
			return from, nil
		}
		if err := fn(&m); err != nil {
			return from, err
		}
		if m.Offset == to-1 {
			return from, nil
		}
	}
}

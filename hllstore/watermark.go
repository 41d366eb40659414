package hllstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Watermark is the completeness of one partition of pixel.events.v1, as its
// aggregator last wrote it.
//
// Layout: one Redis hash "<prefix>:wm"; field = the partition number in
// decimal; value = "<complete_until_ms>:<written_at_ms>" (Unix milliseconds
// UTC). complete_until_ms is the event time before which every event of the
// partition that the aggregator has read is flushed to Redis: the event time
// of the last flushed event, or the flush time when the partition is caught
// up (no unread messages). written_at_ms is when the aggregator wrote it.
// The owner of a partition writes its field after each flush; readers take
// the minimum over partitions.
type Watermark struct {
	CompleteUntilMs int64
	WrittenAtMs     int64
}

// WatermarkKey returns the Redis key of the watermarks.
func (s *Store) WatermarkKey() string { return s.prefix + ":wm" }

// Watermarks reads every partition's watermark in one round trip. A field
// that does not parse is reported as ErrCorrupt.
func (s *Store) Watermarks(ctx context.Context) (map[int32]Watermark, error) {
	fields, err := s.rdb.HGetAll(ctx, s.WatermarkKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read watermarks %s: %w", s.WatermarkKey(), err)
	}
	out := make(map[int32]Watermark, len(fields))
	for f, v := range fields {
		p, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: watermark partition %q", ErrCorrupt, f)
		}
		a, b, ok := strings.Cut(v, ":")
		cu, err1 := strconv.ParseInt(a, 10, 64)
		wa, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: watermark of partition %d: %q", ErrCorrupt, p, v)
		}
		out[int32(p)] = Watermark{CompleteUntilMs: cu, WrittenAtMs: wa}
	}
	return out, nil
}

// WriteWatermarks sets the watermarks of partitions in one command (the
// format Watermarks reads).
func (s *Store) WriteWatermarks(ctx context.Context, wms map[int32]Watermark) error {
	if len(wms) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(wms))
	for p, w := range wms {
		args = append(args, strconv.Itoa(int(p)), strconv.FormatInt(w.CompleteUntilMs, 10)+":"+strconv.FormatInt(w.WrittenAtMs, 10))
	}
	if err := s.rdb.HSet(ctx, s.WatermarkKey(), args...).Err(); err != nil {
		return fmt.Errorf("write watermarks %s: %w", s.WatermarkKey(), err)
	}
	return nil
}

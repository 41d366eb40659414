package hllstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The watermark hash holds, per partition of the events topic, the event
// time of the newest event an aggregator has flushed to Redis and when it did:
// field "<partition>", value "<event time ms>:<written at ms>".
func (s *Store) watermarkKey() string { return s.prefix + ":wm" }

// SetWatermarks records, per events partition, the newest event time flushed.
func (s *Store) SetWatermarks(ctx context.Context, eventTimes map[int]int64, now time.Time) error {
	if len(eventTimes) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(eventTimes))
	for p, t := range eventTimes {
		args = append(args, strconv.Itoa(p), strconv.FormatInt(t, 10)+":"+strconv.FormatInt(now.UnixMilli(), 10))
	}
	if err := s.rdb.HSet(ctx, s.watermarkKey(), args...).Err(); err != nil {
		return fmt.Errorf("write watermarks: %w", err)
	}
	return nil
}

// Watermark says how fresh the counts are.
type Watermark struct {
	// EventTime: every event up to this event time that reached the
	// aggregators is counted. Zero when no partition is active.
	EventTime time.Time
	// Lag is now minus EventTime.
	Lag time.Duration
	// Partitions is the number of events partitions it covers: those an
	// aggregator flushed within the active window.
	Partitions int
}

// ReadWatermark returns the oldest of the newest flushed event times of the
// partitions flushed within active of now. A partition that received no
// event for longer than active (idle, or its aggregator is down) is not
// counted; the lag alert on the aggregators' group covers the latter.
func (s *Store) ReadWatermark(ctx context.Context, now time.Time, active time.Duration) (Watermark, error) {
	m, err := s.rdb.HGetAll(ctx, s.watermarkKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Watermark{}, fmt.Errorf("read watermarks: %w", err)
	}
	var wm Watermark
	oldest := int64(0)
	for _, v := range m {
		ev, at, ok := strings.Cut(v, ":")
		evMs, err1 := strconv.ParseInt(ev, 10, 64)
		atMs, err2 := strconv.ParseInt(at, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return Watermark{}, fmt.Errorf("%w: watermark %q", ErrCorrupt, v)
		}
		if now.Sub(time.UnixMilli(atMs)) > active {
			continue
		}
		wm.Partitions++
		if oldest == 0 || evMs < oldest {
			oldest = evMs
		}
	}
	if oldest > 0 {
		wm.EventTime = time.UnixMilli(oldest).UTC()
		wm.Lag = max(0, now.Sub(wm.EventTime))
	}
	return wm, nil
}

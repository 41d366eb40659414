package counts

import (
	"context"
	"time"
)

// Freshness says up to which event time counts are complete.
type Freshness struct {
	// CompleteUntil is the event time before which every event read so far
	// is counted in Redis: the minimum over the partitions of
	// pixel.events.v1 of their aggregator's watermark. Zero when unknown.
	CompleteUntil time.Time
	// Lag is now minus CompleteUntil (0 when unknown).
	Lag time.Duration
	// Partitions is how many partitions reported a watermark, Expected how
	// many the reader was told exist (0: not checked).
	Partitions, Expected int
	// OldestWrite is the oldest of the partitions' last watermark writes: an
	// aggregator that stopped writing shows here.
	OldestWrite time.Time
	// Status is "complete" (every expected partition reported), "partial"
	// (some did: CompleteUntil covers only those) or "unknown" (none did:
	// the aggregator writes no watermark yet).
	Status string
}

// Freshness reads the aggregators' watermarks (hllstore.Watermark) and
// combines them: the counts are complete up to the slowest partition.
// expected is the partition count of pixel.events.v1 (0: do not check).
func (r *Reader) Freshness(ctx context.Context, now time.Time, expected int) (Freshness, error) {
	wms, err := r.store.Watermarks(ctx)
	if err != nil {
		return Freshness{}, err
	}
	f := Freshness{Partitions: len(wms), Expected: expected, Status: "unknown"}
	if len(wms) == 0 {
		return f, nil
	}
	first := true
	for _, w := range wms {
		cu, wa := time.UnixMilli(w.CompleteUntilMs).UTC(), time.UnixMilli(w.WrittenAtMs).UTC()
		if first || cu.Before(f.CompleteUntil) {
			f.CompleteUntil = cu
		}
		if first || wa.Before(f.OldestWrite) {
			f.OldestWrite = wa
		}
		first = false
	}
	f.Lag = max(now.Sub(f.CompleteUntil), 0)
	f.Status = "complete"
	if expected > 0 && len(wms) < expected {
		f.Status = "partial"
	}
	return f, nil
}

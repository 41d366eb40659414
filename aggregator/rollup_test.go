package aggregator

import (
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// The finality rule of the rollup job: past the late horizon plus the
// margin by the aggregator's clock, and every partition's watermark written
// and complete after the last moment an event of the week could be
// accepted; or forced after the maximum wait.
func TestRollupFinality(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	j := &Rollups{cfg: cfg}
	week := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday
	deadline := week.Add(7*24*time.Hour + cfg.LateHorizon)
	wm := func(complete, written time.Time) hllstore.Watermark {
		return hllstore.Watermark{CompleteUntilMs: complete.UnixMilli(), WrittenAtMs: written.UnixMilli()}
	}
	after := deadline.Add(2 * time.Hour)
	for _, c := range []struct {
		name string
		now  time.Time
		wms  map[int32]hllstore.Watermark
		want weekState
	}{
		{"inside the late horizon", deadline.Add(-time.Minute), map[int32]hllstore.Watermark{0: wm(after, after)}, weekOpen},
		{"inside the margin", deadline.Add(cfg.RollupMargin - time.Minute), map[int32]hllstore.Watermark{0: wm(after, after)}, weekOpen},
		{"every watermark past the deadline", deadline.Add(cfg.RollupMargin), map[int32]hllstore.Watermark{0: wm(after, after), 1: wm(deadline, deadline)}, weekFinal},
		{"one partition not flushed since the deadline", after, map[int32]hllstore.Watermark{0: wm(after, after), 1: wm(after, deadline.Add(-time.Second))}, weekWaiting},
		{"one partition behind in event time (catching up)", after, map[int32]hllstore.Watermark{0: wm(after, after), 1: wm(deadline.Add(-time.Hour), after)}, weekWaiting},
		{"no watermark at all", after, nil, weekWaiting},
		{"waited RollupMaxWait", deadline.Add(cfg.RollupMaxWait), map[int32]hllstore.Watermark{1: wm(week, week)}, weekForced},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := j.finality(c.now, week.UnixMilli(), c.wms); got != c.want {
				t.Errorf("finality at %v with %v = %d, want %d", c.now, c.wms, got, c.want)
			}
			if c.want == weekOpen {
				return
			}
			// The rule and the aggregator judge by the same clock and
			// horizon: once a week may be final, its last event is late.
			a := &Aggregator{cfg: cfg, now: func() time.Time { return c.now }}
			last := &pixelpb.Event{Origin: &pixelpb.Origin{ReceivedAtMs: week.UnixMilli() + hllstore.WeekMs - 1}}
			if !a.isLate(last) {
				t.Errorf("at %v the week's last event is still accepted", c.now)
			}
		})
	}
}

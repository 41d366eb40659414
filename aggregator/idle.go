package aggregator

import (
	"context"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
)

// watchIdle keeps the freshness watermarks of idle partitions moving. An
// aggregator writes the watermark of the partitions it reads events from;
// after a rebalance, a partition whose new owner has read nothing from it
// (no event arrived since) would keep its last owner's watermark, and the
// counts would look stale for good. Every Config.IdleCheck, a watermark not
// written for 3 × IdleCheck is set to now when the group has read and
// committed its partition to the end: whoever owns it, every event in it is
// flushed (offsets are committed only after their flush).
func (a *Aggregator) watchIdle(ctx context.Context) {
	t := time.NewTicker(a.cfg.IdleCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.markIdle(ctx); err != nil && ctx.Err() == nil {
			a.logger.Warn("freshness of idle partitions", "err", err)
		}
	}
}

func (a *Aggregator) markIdle(ctx context.Context) error {
	start := a.now()
	wms, err := a.store.Watermarks(ctx)
	if err != nil {
		return err
	}
	var stale []int
	for p, w := range wms {
		if start.UnixMilli()-w.WrittenAtMs > 3*a.cfg.IdleCheck.Milliseconds() {
			stale = append(stale, int(p))
		}
	}
	if len(stale) == 0 {
		return nil
	}
	idle, err := a.out.Idle.Idle(ctx, stale)
	if err != nil || len(idle) == 0 {
		return err
	}
	out := make(map[int32]hllstore.Watermark, len(idle))
	for _, p := range idle {
		out[int32(p)] = hllstore.Watermark{CompleteUntilMs: max(wms[int32(p)].CompleteUntilMs, start.UnixMilli()), WrittenAtMs: start.UnixMilli()}
	}
	a.m.idleWatermarks.Add(float64(len(out)))
	return a.store.WriteWatermarks(ctx, out)
}

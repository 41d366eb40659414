package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFetchErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := NewFetchErrors(reg, "aggregator", "pixel.events.v1", slog.New(slog.DiscardHandler))
	ctx := context.Background()
	leaderGone := errors.New("failed to dial: connection refused")

	// A broker away: counted, paused, and fetching goes on; the pause
	// grows while errors follow each other, up to a second.
	var pauses []time.Duration
	for range 6 {
		t0 := time.Now()
		if err := f.Failed(ctx, leaderGone); err != nil {
			t.Fatalf("Failed(%v) = %v, want nil: fetching goes on", leaderGone, err)
		}
		pauses = append(pauses, time.Since(t0))
	}
	if got := testutil.ToFloat64(f.errors); got != 6 {
		t.Fatalf("counted %v errors, want 6", got)
	}
	if pauses[0] < 100*time.Millisecond || pauses[0] > 500*time.Millisecond || pauses[5] < time.Second || pauses[5] > 2*time.Second {
		t.Fatalf("pauses %v: want 100 ms first, growing to 1 s", pauses)
	}
	// A message in between starts over with a short pause.
	f.OK()
	t0 := time.Now()
	_ = f.Failed(ctx, leaderGone)
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Fatalf("pause after a message %v, want 100 ms", d)
	}
	// The end of the part's context ends the pause.
	f.streak = 10
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	t0 = time.Now()
	_ = f.Failed(cctx, leaderGone)
	if d := time.Since(t0); d > 200*time.Millisecond {
		t.Fatalf("pause with the context done took %v", d)
	}
	// A closed reader is final, and not counted as a broker away.
	if err := f.Failed(ctx, fmt.Errorf("fetch: %w", io.EOF)); !errors.Is(err, io.EOF) {
		t.Fatalf("Failed(EOF) = %v, want EOF", err)
	}
	if got := testutil.ToFloat64(f.errors); got != 8 {
		t.Fatalf("counted %v errors, want 8", got)
	}
	if n, err := testutil.GatherAndCount(reg, "pixel_kafka_reader_fetch_errors_total"); err != nil || n != 1 {
		t.Fatalf("exported series %d (%v), want 1", n, err)
	}
}

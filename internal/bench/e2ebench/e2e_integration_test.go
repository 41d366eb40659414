//go:build integration

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestClosedLoopExact is a short `make bench-e2e`: it builds the pixelpipe
// binary, runs its four parts against the test Kafka and Redis, loads the
// edge with 8 s of wrk at 16 connections through the same code path as the
// command, and fails unless the query API ends up showing exactly the hits
// the edge accepted (and some were accepted). It checks the harness and the
// pipeline's exactness under load, not performance: the figures are logged.
func TestClosedLoopExact(t *testing.T) {
	kafkaAddr, redisAddr := os.Getenv("PIXEL_TEST_KAFKA"), os.Getenv("PIXEL_TEST_REDIS")
	if kafkaAddr == "" || redisAddr == "" {
		t.Fatal("PIXEL_TEST_KAFKA and PIXEL_TEST_REDIS must be set to the test Kafka and Redis addresses (make test sets them; make services-up starts both)")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Fatalf("wrk is needed: %v (deploy/local/bench-deps.sh installs it; make test runs it first)", err)
	}
	bin := filepath.Join(t.TempDir(), "pixelpipe")
	build := exec.Command("go", "build", "-o", bin, "github.com/pixelpipe/pixelpipe/cmd/pixelpipe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cfg := defaultConfig()
	cfg.pixelpipe = bin
	cfg.kafka, cfg.redis = kafkaAddr, redisAddr
	cfg.modes = []string{"closed"}
	cfg.duration = 8 * time.Second
	cfg.conns = 16
	cfg.visitors = 20000
	// Other packages' tests may share the two cores: room to drain.
	cfg.drainTimeout = 120 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	var out bytes.Buffer
	reports, err := run(ctx, cfg, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || len(reports[0].results) != 1 {
		t.Fatalf("want one binary with one scenario, got %d reports", len(reports))
	}
	r := reports[0].results[0]
	if r.accepted <= 0 {
		t.Fatal("the edge accepted no hit")
	}
	if !r.drained || float64(r.counted) != r.accepted {
		t.Fatalf("counted %d, accepted %.0f (drained %v)", r.counted, r.accepted, r.drained)
	}
	if r.crossErr != nil || r.crossSum != r.counted {
		t.Errorf("per content id the API adds up to %d (error %v), the campaign to %d", r.crossSum, r.crossErr, r.counted)
	}
	if len(r.markers.latencies) == 0 || r.markers.unseen > 0 {
		t.Errorf("markers: %d seen, %d unseen", len(r.markers.latencies), r.markers.unseen)
	}
}

package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

func TestMain(m *testing.M) { pipetest.VerifyNoLeaks(m) }

// The admin endpoints answer what a load balancer and Prometheus expect:
// /healthz always, /readyz only while ready and every check passes (with
// the failing check's message), /metrics the registry; Run returns nil once
// ctx ends and leaves no goroutine behind.
func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pixel_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	s, err := Listen("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var failing error
	s.AddReadyCheck(func() error { return failing })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.Addr()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path  string
		setup func()
		code  int
		body  string
	}{
		{"/healthz", nil, 200, "ok"},
		{"/readyz", nil, 503, "not ready"},
		{"/readyz", func() { s.SetReady(true) }, 200, "ready"},
		{"/readyz", func() { failing = errors.New("spool above its high-water mark") }, 503, "not ready: spool above its high-water mark"},
		{"/readyz", func() { failing = nil; s.SetReady(false) }, 503, "not ready"},
		{"/metrics", nil, 200, "pixel_test_things_total 3"},
		{"/debug/pprof/", nil, 200, "goroutine"},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		code, body := get(tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("GET %s: %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after ctx ended: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after Run returned")
	}
}

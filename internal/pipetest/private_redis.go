package pipetest

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// PrivateRedis is a redis-server process of one test's own, on a free
// loopback port, with the append-only file on (fsync every second), so a test
// can kill and restart it without disturbing any other test.
type PrivateRedis struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// StartPrivateRedis starts a redis-server (which must be installed: `make
// services-up` installs it) and stops it on cleanup.
func StartPrivateRedis(t testing.TB) *PrivateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (make services-up installs it): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	r := &PrivateRedis{t: t, dir: t.TempDir(), port: port}
	r.Start()
	t.Cleanup(func() {
		if r.cmd != nil {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// Addr is the server's address.
func (r *PrivateRedis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Start starts the server (again), recovering from its append-only file, and
// waits until it answers.
func (r *PrivateRedis) Start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server",
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		"--daemonize", "no", "--loglevel", "warning")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatalf("private redis on %s did not answer within 30s", r.Addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it to
// be gone. What it had not yet written to its append-only file is lost.
func (r *PrivateRedis) Kill() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatalf("kill redis: %v", err)
	}
	<-r.done
	r.cmd = nil
}

// Shutdown stops the server cleanly (SHUTDOWN), which writes the append-only
// file completely.
func (r *PrivateRedis) Shutdown() {
	r.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	_ = c.Shutdown(context.Background()).Err() // the connection closes: an error is expected
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("redis on %s did not shut down", r.Addr())
	}
	r.cmd = nil
}

// RedisInfoField reads a numeric field of a section of the server's INFO
// (e.g. "memory", "used_memory").
func RedisInfoField(t testing.TB, rdb redis.UniversalClient, section, field string) float64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("INFO %s %s: %v", section, field, err)
			}
			return f
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return 0
}

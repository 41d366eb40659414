package redisconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		addrs   []string
		cluster bool
		str     string
	}{
		{"127.0.0.1:6379", []string{"127.0.0.1:6379"}, false, "127.0.0.1:6379"},
		{" redis:6379 ", []string{"redis:6379"}, false, "redis:6379"},
		{"a:1,b:2, c:3", []string{"a:1", "b:2", "c:3"}, true, "a:1,b:2,c:3"},
		{"a:1,", []string{"a:1"}, false, "a:1"},
		{"redis+cluster://a:1", []string{"a:1"}, true, "redis+cluster://a:1"},
		{"redis+cluster://a:1,b:2", []string{"a:1", "b:2"}, true, "a:1,b:2"},
		{"[::1]:7000,[::1]:7001", []string{"[::1]:7000", "[::1]:7001"}, true, "[::1]:7000,[::1]:7001"},
	} {
		a, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(a.Addrs, tc.addrs) || a.Cluster != tc.cluster {
			t.Errorf("Parse(%q) = %+v, want %v cluster=%v", tc.in, a, tc.addrs, tc.cluster)
		}
		if a.String() != tc.str {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, a.String(), tc.str)
		}
		if b, err := Parse(a.String()); err != nil || !slices.Equal(b.Addrs, a.Addrs) || b.Cluster != a.Cluster {
			t.Errorf("Parse(%q) does not read back %+v: %+v, %v", a.String(), a, b, err)
		}
	}
	for _, bad := range []string{"", ",", "redis", "a:1,b", "redis://a:1", "redis+cluster://", "http://a:1"} {
		if a, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", bad, a)
		}
	}
}

func TestNew(t *testing.T) {
	single := New(Addr{Addrs: []string{"127.0.0.1:1"}}, redis.UniversalOptions{})
	defer single.Close()
	if _, ok := single.(*redis.Client); !ok {
		t.Errorf("one address: %T, want *redis.Client", single)
	}
	for _, a := range []Addr{{Addrs: []string{"127.0.0.1:1"}, Cluster: true}, {Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, Cluster: true}} {
		c := New(a, redis.UniversalOptions{})
		if _, ok := c.(*redis.ClusterClient); !ok {
			t.Errorf("%v: %T, want *redis.ClusterClient", a, c)
		}
		_ = c.Close()
	}
}

func TestTopologyError(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{live, nil, false},
		{live, redis.Nil, false},
		{live, redis.ErrClosed, false},
		{live, refused, true},
		{live, fmt.Errorf("save 3 count days: %w", refused), true},
		{live, io.EOF, true},
		{live, io.ErrUnexpectedEOF, true},
		{live, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{live, redisError("CLUSTERDOWN The cluster is down"), true},
		{live, redisError("MASTERDOWN Link with MASTER is down"), true},
		{live, redisError("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{live, redisError("NOSCRIPT No matching script"), false},
		{live, redisError("ERR wrong number of arguments"), false},
		{live, errors.New("some other failure"), false},
		{done, refused, false}, // the caller gave up: says nothing of the node
		{done, context.Canceled, false},
	} {
		if got := topologyError(tc.ctx, tc.err); got != tc.want {
			t.Errorf("topologyError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// redisError is an error answered by a Redis server.
type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}

// A cluster client routes every command to masters; the hook reloads the
// slot map after a command, or any command of a pipeline, failed on the
// connection, and not after a Redis error.
func TestReloadHook(t *testing.T) {
	c := New(Addr{Addrs: []string{"127.0.0.1:1"}, Cluster: true}, redis.UniversalOptions{ReadOnly: true, RouteRandomly: true})
	defer c.Close()
	if o := c.(*redis.ClusterClient).Options(); o.ReadOnly || o.RouteRandomly || o.RouteByLatency {
		t.Errorf("cluster client routes reads to replicas: %+v", o)
	}
	ctx := context.Background()
	reloads := 0
	h := reloadHook{func(context.Context) { reloads++ }}
	for _, tc := range []struct {
		errs []error // the pipeline's commands' errors; one: a single command
		want int
	}{
		{[]error{io.EOF}, 1},
		{[]error{redisError("ERR no")}, 0},
		{[]error{nil}, 0},
		{[]error{nil, io.EOF}, 1},
		{[]error{redisError("ERR no"), io.EOF, io.EOF}, 1},
		{[]error{redisError("ERR no"), nil}, 0},
	} {
		reloads = 0
		if len(tc.errs) == 1 {
			run := h.ProcessHook(func(context.Context, redis.Cmder) error { return tc.errs[0] })
			_ = run(ctx, redis.NewCmd(ctx, "get", "k"))
		} else {
			pipe := h.ProcessPipelineHook(func(_ context.Context, cmds []redis.Cmder) error {
				var first error
				for i, err := range tc.errs {
					cmds[i].SetErr(err)
					if first == nil {
						first = err
					}
				}
				return first
			})
			cmds := make([]redis.Cmder, len(tc.errs))
			for i := range cmds {
				cmds[i] = redis.NewCmd(ctx, "get", fmt.Sprint("k", i))
			}
			_ = pipe(ctx, cmds)
		}
		if reloads != tc.want {
			t.Errorf("errors %v: %d reloads, want %d", tc.errs, reloads, tc.want)
		}
	}
}

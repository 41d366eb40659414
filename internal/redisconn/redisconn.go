// Package redisconn reads a Redis address setting and builds the go-redis
// client it names: one host:port is a single server; several comma-separated
// host:port, or redis+cluster://host:port[,host:port...], are seed nodes of
// a Redis Cluster (one seed is enough: the client learns the others and the
// slot map from it). Every part and tool builds its client here, so each of
// them runs on either.
//
// A cluster client follows a failover: go-redis reloads its slot map on a
// MOVED or ASK answer, but not when the master it routes a slot to stops
// answering (a killed master never answers MOVED), only every
// ClusterStateReloadInterval (one minute). New adds a hook that reloads the
// slot map (in the background, coalesced) whenever a command fails with a
// network error or the cluster reports itself down, so the first command
// after a replica's promotion sends the client to the new master.
//
// ForEachServer, Keys and Del do what a single command cannot on a cluster:
// reach every master (SCAN, INFO), and delete keys of different slots.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ClusterScheme starts an address setting that names a Redis Cluster even
// with a single seed node.
const ClusterScheme = "redis+cluster://"

// Addr is a parsed address setting.
type Addr struct {
	// Addrs are the server, or the cluster's seed nodes, as host:port.
	Addrs []string
	// Cluster: Addrs are seeds of a Redis Cluster.
	Cluster bool
}

// Parse reads an address setting: "host:port", "host:port,host:port,..."
// (a cluster) or "redis+cluster://host:port[,host:port...]".
func Parse(s string) (Addr, error) {
	var a Addr
	rest := strings.TrimSpace(s)
	if r, ok := strings.CutPrefix(rest, ClusterScheme); ok {
		a.Cluster, rest = true, r
	} else if strings.Contains(rest, "://") {
		return Addr{}, fmt.Errorf("redis address %q: use host:port, host:port,host:port,... (a cluster) or %shost:port[,host:port...]", s, ClusterScheme)
	}
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(part); err != nil || port == "" {
			return Addr{}, fmt.Errorf("redis address %q: %q is not host:port", s, part)
		}
		a.Addrs = append(a.Addrs, part)
	}
	if len(a.Addrs) == 0 {
		return Addr{}, fmt.Errorf("redis address %q: no host:port", s)
	}
	a.Cluster = a.Cluster || len(a.Addrs) > 1
	return a, nil
}

// String returns the setting that Parse reads back as a.
func (a Addr) String() string {
	s := strings.Join(a.Addrs, ",")
	if a.Cluster && len(a.Addrs) == 1 {
		s = ClusterScheme + s
	}
	return s
}

// New returns a client of the server or cluster a names, with the settings
// of opts (its addresses and cluster mode are a's). A cluster client sends
// every command to its slot's master (opts.ReadOnly, RouteByLatency and
// RouteRandomly are cleared: a replica can be behind its master, and a
// writer that read a stale guard back would have its next write refused)
// and reloads its slot map when a node fails (see the package comment).
func New(a Addr, opts redis.UniversalOptions) redis.UniversalClient {
	opts.Addrs = a.Addrs
	opts.IsClusterMode = a.Cluster
	opts.MasterName = ""
	opts.ReadOnly, opts.RouteByLatency, opts.RouteRandomly = false, false, false
	c := redis.NewUniversalClient(&opts)
	if cc, ok := c.(*redis.ClusterClient); ok {
		cc.AddHook(reloadHook{cc.ReloadState})
	}
	return c
}

// reloadHook reloads a cluster client's slot map (reload: its ReloadState)
// after a command failed in a way that can mean the slot's master moved
// (see topologyError). ReloadState only schedules a reload: concurrent
// calls share one, and reloads are at least 200 ms apart.
type reloadHook struct{ reload func(context.Context) }

func (h reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if topologyError(ctx, err) {
			h.reload(ctx)
		}
		return err
	}
}

func (h reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err == nil {
			return nil
		}
		// A pipeline's error is its first failed command's; the node that
		// failed may have served a later one.
		for _, cmd := range cmds {
			if topologyError(ctx, cmd.Err()) {
				h.reload(ctx)
				break
			}
		}
		return err
	}
}

// topologyError reports whether err, returned by a command under ctx, can
// mean that the node it went to no longer serves its slot: the connection
// failed (refused, reset, timed out, closed) or the cluster answered that it
// is down or its master is (a failover in progress). Redis's other answers,
// and the caller's own cancellation, say nothing about the topology.
func topologyError(ctx context.Context, err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, redis.ErrClosed), ctx.Err() != nil:
		return false
	case redis.IsClusterDownError(err), redis.IsMasterDownError(err), redis.IsTryAgainError(err):
		return true
	}
	var re redis.Error
	if errors.As(err, &re) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Open parses the address setting s and returns New's client.
func Open(s string, opts redis.UniversalOptions) (redis.UniversalClient, error) {
	a, err := Parse(s)
	if err != nil {
		return nil, err
	}
	return New(a, opts), nil
}

// ForEachServer calls fn with a client of each server that holds keys: the
// single server, or every master of a cluster (concurrently).
func ForEachServer(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, server *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.Client:
		return fn(ctx, c)
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	}
	return fmt.Errorf("redisconn: %T is neither a single-server nor a cluster client", rdb)
}

// Keys returns the keys that match pattern, on every server (SCAN, so no
// server stops for it).
func Keys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	err := ForEachServer(ctx, rdb, func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			out = append(out, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("scan keys %s: %w", pattern, err)
	}
	return out, nil
}

// Del unlinks keys in one pipelined round trip, one command per key: keys
// of different cluster slots cannot share one. It returns how many existed.
func Del(ctx context.Context, rdb redis.UniversalClient, keys ...string) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Unlink(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("delete %d keys: %w", len(keys), err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

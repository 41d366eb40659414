//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/aggregator"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
	"github.com/pixelpipe/pixelpipe/processor"
)

// failoverScale returns the failover rounds and the hits of the load
// (sent at failoverRate): about 45 s of load and two rounds under `go
// test`, three minutes and six rounds with PIXEL_FAULT_FULL=1.
func failoverScale() (rounds, total int) {
	if os.Getenv("PIXEL_FAULT_FULL") == "1" {
		return 6, 27_000
	}
	return 2, 7_000
}

const failoverRate = 150.0

// TestFaultRedisFailover runs the pipeline (edge, processor, aggregator,
// query) on a private Redis Cluster under load and, round after round,
// kills with SIGKILL the master that holds the busiest content id's counts,
// waits for its replica's promotion while the load goes on, then restarts
// the killed node, which rejoins as the new master's replica. Every other
// round the replica is made to lag first: it is paused while the master
// takes 32 MiB more than the replication link buffers, so the promoted
// replica surely lacks the writes the master acknowledged last (the
// aggregator's flushes and the processor's snapshots among them), the
// loss asynchronous replication allows. At the end every acknowledged hit
// must be counted exactly once, uniques within their bound, and the audit
// complete. Each round logs what the failover cost: the promotion, how long
// writes to the slot failed for a client built by redisconn and for a bare
// go-redis cluster client, the acknowledged bytes lost, and what the
// aggregator and the processor saw (writes refused, lost writes found
// before a commit, resets, failed flushes, snapshots refused).
func TestFaultRedisFailover(t *testing.T) {
	rounds, total := failoverScale()
	pc := pipetest.PrivateCluster(t)
	addr := redisconn.Addr{Addrs: pc.Addrs(), Cluster: true}
	opts := redis.UniversalOptions{ContextTimeoutEnabled: true, DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	rdb := redisconn.New(addr, opts)
	t.Cleanup(func() { _ = rdb.Close() }) // after the stack stopped: registered before it
	s := newStack(t)
	s.rdb = rdb
	s.startEdge()
	proc, procReg := s.newProcessor("failover-proc", func(c *processor.Config) {
		// Snapshots (with the audit's figures) every half second, so some
		// are among the writes a lagging replica loses.
		c.SnapshotInterval = 500 * time.Millisecond
		shortVisits(c)
	})
	s.run("processor", proc)
	aggReg := prometheus.NewRegistry()
	s.run("aggregator", s.newAggregatorWith("failover-agg", aggReg, func(c *aggregator.Config) {
		// The default the design relies on: offsets wait 5 s after the
		// flush that holds their events.
		c.CommitDelay = aggregator.DefaultConfig().CommitDelay
	}))
	s.startQuery()

	// The day hash of the busiest content id of the load (Zipf rank 0).
	store := hllstore.New(rdb, hllstore.Config{Prefix: s.prefix})
	busy, _, _ := store.DayRedisKeys(hllstore.DayKey{ContentID: "f-0", DayStart: hllstore.DayStart(time.Now().UnixMilli())})
	tag := busy[strings.Index(busy, "{") : strings.Index(busy, "}")+1] // its slot's hash tag
	counters := func() failoverCounters {
		return failoverCounters{
			refused:     labelled(t, aggReg, "pixel_aggregator_writes_refused_total", "", ""),
			lost:        labelled(t, aggReg, "pixel_aggregator_lost_writes_total", "", ""),
			resets:      labelled(t, aggReg, "pixel_aggregator_resets_total", "", ""),
			flushErrors: counter(t, aggReg, "pixel_aggregator_flushes_total", "error"),
			flushes:     counter(t, aggReg, "pixel_aggregator_flushes_total", "ok"),
			staleSnaps:  labelled(t, procReg, "pixel_processor_state_stale_total", "", ""),
		}
	}

	start := time.Now()
	wait := backgroundLoad(t, s, total, failoverRate, 21)
	var lagged failoverCounters
	for i := range rounds {
		lagging := i%2 == 0
		time.Sleep(4 * time.Second) // counts, snapshots and commits flow (again)
		master, replica := pc.MasterOf(busy)
		if replica == "" {
			t.Fatalf("round %d: the master %s of %s has no replica", i, master, busy)
		}
		if i == 0 {
			measureWait(t, pc.Node(master), s.prefix+":wait"+tag)
		}
		before := counters()
		// Clients that learned the slot map before the kill: one built by
		// redisconn, one bare go-redis cluster client.
		hooked := redisconn.New(addr, opts)
		bare := redis.NewClusterClient(&redis.ClusterOptions{Addrs: pc.Addrs(), DialTimeout: time.Second})
		probeKey := s.prefix + ":probe" + tag
		for _, c := range []redis.UniversalClient{hooked, bare} {
			if err := c.Set(context.Background(), probeKey, "before", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		// A key of another master's, written all along.
		var otherKey string
		for _, n := range pc.Nodes() {
			if n.Master && !n.Failed && n.Addr != master && otherKey == "" {
				otherKey = s.prefix + ":other" + pc.KeyOn(n.Addr)
			}
		}
		behind := 0.0 // aggregator flushes acknowledged while the replica lagged
		if lagging {
			pc.Pause(replica)
			fill(t, pc.Node(master), s.prefix+":filler"+tag, 32)
			f := counter(t, aggReg, "pixel_aggregator_flushes_total", "ok")
			time.Sleep(1500 * time.Millisecond)
			behind = counter(t, aggReg, "pixel_aggregator_flushes_total", "ok") - f
		}
		acked := infoInt(t, pc.Node(master), "master_repl_offset")
		pc.Kill(master)
		killed := time.Now()
		if lagging {
			pc.Resume(replica)
		}
		stopOther := make(chan struct{})
		otherDown := outage(hooked, otherKey, killed, stopOther)
		hookedBack := probeWrites(hooked, probeKey, killed, 40*time.Second)
		bareBack := probeWrites(bare, probeKey, killed, 40*time.Second)
		promoted := pc.WaitMaster(replica, 60*time.Second)
		// The promoted replica's history ended where its second one starts.
		received := infoInt(t, pc.Node(replica), "second_repl_offset") - 1
		lost := acked - received
		if lagging && lost <= 0 {
			t.Fatalf("round %d: the paused replica received everything (%d bytes): nothing was lost, the round proves nothing", i, received)
		}
		time.Sleep(4 * time.Second) // load on the new master
		back := <-hookedBack
		if back < 0 || back > promoted+5*time.Second {
			t.Errorf("round %d: a redisconn client wrote to the slot again %v after the kill, the promotion took %v", i, back, promoted)
		}
		close(stopOther)
		other := <-otherDown
		restarted := time.Since(killed)
		pc.Start() // the killed node rejoins, as the replica
		waitLinkUp(t, pc.Node(master))
		after := counters()
		d := after.minus(before)
		if lagging {
			lagged = lagged.plus(d)
		}
		// A bare client follows the promotion only when its slot map is
		// reloaded: every minute, or on a MOVED answer, which the killed
		// node gives once it is back.
		bareMsg := "not within 40 s"
		if b := <-bareBack; b >= restarted {
			bareMsg = fmt.Sprintf("%v, once the killed node, restarted %v after the kill, answered MOVED", b.Round(10*time.Millisecond), restarted.Round(10*time.Millisecond))
		} else if b >= 0 {
			bareMsg = b.Round(10 * time.Millisecond).String()
		}
		_ = hooked.Close()
		_ = bare.Close()
		kind := "plain kill -9"
		if lagging {
			kind = fmt.Sprintf("replica lagging: %.0f aggregator flushes acknowledged behind the filler", behind)
		}
		otherMsg := "never failed"
		if other[1] > 0 {
			otherMsg = fmt.Sprintf("failed from %v to %v after the kill", other[0].Round(10*time.Millisecond), other[1].Round(10*time.Millisecond))
		}
		t.Logf("round %d at %v (%s): killed master %s; replica %s promoted %v after; writes to the slot failed for %v (redisconn client), %s (bare go-redis client); writes to another master %s; acknowledged bytes not on the replica: %d; aggregator: %.0f writes refused, %.0f lost writes found before a commit, %.0f resets, %.0f of %.0f flushes failed; processor: %.0f snapshots refused",
			i, time.Since(start).Round(time.Second), kind, master, replica, promoted.Round(10*time.Millisecond), back.Round(10*time.Millisecond), bareMsg, otherMsg,
			max(lost, 0), d.refused, d.lost, d.resets, d.flushErrors, d.flushErrors+d.flushes, d.staleSnaps)
		if _, err := redisconn.Del(context.Background(), rdb, append(fillerKeys(s.prefix+":filler"+tag, 32), probeKey, otherKey, s.prefix+":wait"+tag)...); err != nil {
			t.Fatal(err)
		}
	}
	res := wait()
	t.Logf("load: %d hits acknowledged in %v", res.Acked, res.Elapsed.Round(time.Second))
	checkExact(t, s, res, 3*time.Minute)
	checkVisits(t, s, time.Minute)
	// The lagging rounds lost acknowledged writes: the design must have
	// noticed (a refused write or a lost one found before a commit) and
	// replayed.
	if lagged.refused+lagged.lost == 0 || lagged.resets == 0 {
		t.Errorf("lagging rounds: %+v, want the lost writes noticed and replayed", lagged)
	}
	all := counters()
	t.Logf("whole run: aggregator %.0f writes refused, %.0f lost writes found before a commit, %.0f resets, %.0f of %.0f flushes failed; processor %.0f snapshots refused",
		all.refused, all.lost, all.resets, all.flushErrors, all.flushErrors+all.flushes, all.staleSnaps)
}

// failoverCounters are the aggregator's and the processor's counters a
// failover moves.
type failoverCounters struct {
	refused, lost, resets, flushErrors, flushes, staleSnaps float64
}

func (a failoverCounters) minus(b failoverCounters) failoverCounters {
	return failoverCounters{a.refused - b.refused, a.lost - b.lost, a.resets - b.resets, a.flushErrors - b.flushErrors, a.flushes - b.flushes, a.staleSnaps - b.staleSnaps}
}

func (a failoverCounters) plus(b failoverCounters) failoverCounters {
	return failoverCounters{a.refused + b.refused, a.lost + b.lost, a.resets + b.resets, a.flushErrors + b.flushErrors, a.flushes + b.flushes, a.staleSnaps + b.staleSnaps}
}

// fill writes mib keys of 1 MiB named prefix0, prefix1, ... through node:
// more than the replication link's socket buffers hold, so what node takes
// next waits in its output buffer to a paused replica.
func fill(t *testing.T, node *redis.Client, prefix string, mib int) {
	t.Helper()
	chunk := strings.Repeat("x", 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range fillerKeys(prefix, mib) {
			p.Set(ctx, k, chunk, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("filler: %v", err)
	}
}

func fillerKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	return keys
}

// probeWrites writes key through c every 50 ms from now on and sends how
// long after since the first write succeeded, or -1 when none did within
// limit.
func probeWrites(c redis.UniversalClient, key string, since time.Time, limit time.Duration) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		for time.Since(since) < limit {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := c.Set(ctx, key, "after", 0).Err()
			cancel()
			if err == nil {
				out <- time.Since(since)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		out <- -1
	}()
	return out
}

// outage writes key through c every 50 ms until stop is closed, and sends
// when, after since, the first and the last failed write were (zero when
// none failed).
func outage(c redis.UniversalClient, key string, since time.Time, stop <-chan struct{}) <-chan [2]time.Duration {
	out := make(chan [2]time.Duration, 1)
	go func() {
		var first, last time.Duration
		for {
			select {
			case <-stop:
				out <- [2]time.Duration{first, last}
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := c.Set(ctx, key, "x", 0).Err()
			cancel()
			if err != nil {
				if first == 0 {
					first = time.Since(since)
				}
				last = time.Since(since)
			}
		}
	}()
	return out
}

// infoInt returns field of node's INFO replication.
func infoInt(t *testing.T, node *redis.Client, field string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := node.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatalf("INFO replication of %s: %v", node.Options().Addr, err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO replication of %s: %s", node.Options().Addr, line)
			}
			return n
		}
	}
	t.Fatalf("INFO replication of %s has no %s:\n%s", node.Options().Addr, field, info)
	return 0
}

// waitLinkUp waits until replica node has synchronized with its master.
func waitLinkUp(t *testing.T, node *redis.Client) {
	t.Helper()
	pipetest.Eventually(t, time.Minute, func() string {
		info, err := node.Info(context.Background(), "replication").Result()
		if err != nil {
			return err.Error()
		}
		if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_link_status:up") {
			return "replica " + node.Options().Addr + " not synchronized: " + strings.Join(strings.Fields(info), " ")
		}
		return ""
	})
}

// measureWait logs what WAIT 1 (a write's round trip until the replica has
// it) adds to a write on node, under the test's load: 200 writes alone, then
// 200 each followed by WAIT 1 1000 on the same connection.
func measureWait(t *testing.T, node *redis.Client, key string) {
	t.Helper()
	ctx := context.Background()
	var alone, waited []time.Duration
	for i := range 400 {
		withWait := i%2 == 1
		var wait *redis.IntCmd
		t0 := time.Now()
		_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, i, 0)
			if withWait {
				wait = redis.NewIntCmd(ctx, "wait", 1, 1000)
				_ = p.Process(ctx, wait)
			}
			return nil
		})
		d := time.Since(t0)
		if err != nil {
			t.Fatalf("WAIT measurement: %v", err)
		}
		if withWait {
			if wait.Val() < 1 {
				t.Fatalf("WAIT 1 1000 on %s: %d replicas acknowledged", node.Options().Addr, wait.Val())
			}
			waited = append(waited, d)
		} else {
			alone = append(alone, d)
		}
	}
	q := func(ds []time.Duration, p float64) time.Duration {
		slices.Sort(ds)
		return ds[int(p*float64(len(ds)-1))].Round(time.Microsecond)
	}
	t.Logf("a write to master %s under load: p50 %v p99 %v alone, p50 %v p99 %v with WAIT 1 (the replica's acknowledgement)",
		node.Options().Addr, q(alone, 0.5), q(alone, 0.99), q(waited, 0.5), q(waited, 0.99))
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tag names the audit of one partition of a consumer group; it is the
// partition's Redis Cluster hash tag.
func Tag(group, topic string, partition int) string {
	return group + "|" + topic + "|" + strconv.Itoa(partition)
}

// Key is the audit hash of the partition tag for a UTC day (Unix days).
func Key(prefix, tag string, day int64) string {
	return prefix + ":audit:{" + tag + "}:" + time.UnixMilli(day*dayMs).UTC().Format("20060102")
}

func partsKey(prefix string) string { return prefix + ":audit:parts" }

// Register adds a partition to the set readers look in. It is idempotent;
// the processor calls it (Writer.Register) when it takes a partition over.
func Register(ctx context.Context, rdb redis.UniversalClient, prefix, tag string) error {
	if err := rdb.SAdd(ctx, partsKey(prefix), tag).Err(); err != nil {
		return fmt.Errorf("register audit partition %s: %w", tag, err)
	}
	return nil
}

// Reader reads the audit. It is safe for concurrent use.
type Reader struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewReader returns a reader of the audit hashes under the key prefix.
func NewReader(rdb redis.UniversalClient, prefix string) *Reader {
	return &Reader{rdb: rdb, prefix: prefix}
}

// Totals are the audit's figures over some set of hits.
type Totals struct {
	// Accepted is what the edges accepted: Events + DeadLettered + Missing.
	Accepted int64 `json:"accepted"`
	// Events were written to the events topic: Counted of them are in the
	// counts (the newest of their minute is below the counts' freshness
	// watermark), the rest NotYetCounted.
	Events        int64 `json:"events"`
	Counted       int64 `json:"counted"`
	NotYetCounted int64 `json:"not_yet_counted"`
	DeadLettered  int64 `json:"dead_lettered"`
	// Missing were accepted (their numbers were given out) but have not
	// reached the processor: lost before Kafka, or still on their way.
	Missing int64 `json:"missing"`
	// Duplicates are copies of hits already seen, dropped.
	Duplicates int64 `json:"duplicates_dropped"`
	// Unsequenced hits had no lane (an edge that did not know the partition
	// count): counted above, but not checkable by number.
	Unsequenced int64 `json:"unsequenced"`
}

func (t *Totals) add(o Totals) {
	t.Accepted += o.Accepted
	t.Events += o.Events
	t.Counted += o.Counted
	t.NotYetCounted += o.NotYetCounted
	t.DeadLettered += o.DeadLettered
	t.Missing += o.Missing
	t.Duplicates += o.Duplicates
	t.Unsequenced += o.Unsequenced
}

// Minute is one node's figures for one minute of receive time.
type Minute struct {
	Minute time.Time `json:"minute"`
	Totals
}

// MissingRange is a run of numbers of one lane not seen.
type MissingRange struct {
	BootMs    int64     `json:"boot_ms"`
	Partition int       `json:"partition"`
	FromSeq   uint64    `json:"from_seq"`
	ToSeq     uint64    `json:"to_seq"`
	Before    time.Time `json:"received_before"`
}

// Node is one edge node's audit.
type Node struct {
	Node string `json:"node"`
	Totals
	Minutes []Minute       `json:"minutes"`
	Missing []MissingRange `json:"missing_ranges"`
}

// Report is the audit over a range of receive time.
type Report struct {
	Totals
	Nodes []Node `json:"nodes"`
}

// MaxRanges bounds the missing ranges a report lists per node (the
// figures count them all).
const MaxRanges = 1000

// Read returns the audit of consumer group's partitions for hits received
// in [from, to), per node (node "" means every node) and minute. A minute
// whose newest event was received before countedUntil (the counts'
// freshness watermark) has its events counted.
func (r *Reader) Read(ctx context.Context, group string, from, to, countedUntil time.Time, node string) (*Report, error) {
	tags, err := r.rdb.SMembers(ctx, partsKey(r.prefix)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read audit partitions: %w", err)
	}
	type ref struct {
		part int
		cmd  *redis.MapStringStringCmd
	}
	var refs []ref
	pipe := r.rdb.Pipeline()
	fromMs, toMs := from.UnixMilli(), to.UnixMilli()
	for _, tag := range tags {
		g, rest, ok := strings.Cut(tag, "|")
		if !ok || g != group {
			continue
		}
		i := strings.LastIndexByte(rest, '|')
		part, err := strconv.Atoi(rest[i+1:])
		if i < 0 || err != nil {
			continue
		}
		for day := fromMs / dayMs; day*dayMs < toMs; day++ {
			refs = append(refs, ref{part, pipe.HGetAll(ctx, Key(r.prefix, tag, day))})
		}
	}
	if len(refs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read audit: %w", err)
		}
	}
	nodes := map[string]*Node{}
	minutes := map[string]map[int64]*Totals{}
	at := func(n string) *Node {
		nd := nodes[n]
		if nd == nil {
			nd = &Node{Node: n, Minutes: []Minute{}, Missing: []MissingRange{}}
			nodes[n] = nd
			minutes[n] = map[int64]*Totals{}
		}
		return nd
	}
	minuteOf := func(n string, m int64) *Totals {
		at(n)
		t := minutes[n][m]
		if t == nil {
			t = &Totals{}
			minutes[n][m] = t
		}
		return t
	}
	counted := countedUntil.UnixMilli()
	for _, rf := range refs {
		for f, v := range rf.cmd.Val() {
			kind, rest, _ := strings.Cut(f, "|")
			num, name, ok := strings.Cut(rest, "|")
			x, err := strconv.ParseInt(num, 10, 64)
			if !ok || err != nil || (node != "" && name != node) {
				continue
			}
			switch kind {
			case "m":
				if x*minuteMs < fromMs || x*minuteMs >= toMs {
					continue
				}
				fig, err := parseFigures(v)
				if err != nil {
					return nil, fmt.Errorf("audit field %s: %w", f, err)
				}
				t := minuteOf(name, x)
				t.Events += fig.Events
				t.DeadLettered += fig.DeadLettered
				t.Duplicates += fig.Duplicates
				t.Unsequenced += fig.Unsequenced
				if fig.Events == 0 || fig.NewestMs < counted {
					t.Counted += fig.Events
				} else {
					t.NotYetCounted += fig.Events
				}
			case "g":
				gaps, err := parseGaps(v)
				if err != nil {
					return nil, fmt.Errorf("audit field %s: %w", f, err)
				}
				nd := at(name)
				for _, g := range gaps {
					if g.AtMs < fromMs || g.AtMs >= toMs {
						continue
					}
					minuteOf(name, g.AtMs/minuteMs).Missing += int64(g.To - g.From + 1)
					if len(nd.Missing) < MaxRanges {
						nd.Missing = append(nd.Missing, MissingRange{BootMs: x, Partition: rf.part, FromSeq: g.From, ToSeq: g.To, Before: time.UnixMilli(g.AtMs).UTC()})
					}
				}
			}
		}
	}
	rep := &Report{Nodes: []Node{}}
	for name, nd := range nodes {
		for m, t := range minutes[name] {
			t.Accepted = t.Events + t.DeadLettered + t.Missing
			nd.Minutes = append(nd.Minutes, Minute{Minute: time.UnixMilli(m * minuteMs).UTC(), Totals: *t})
			nd.Totals.add(*t)
		}
		slices.SortFunc(nd.Minutes, func(a, b Minute) int { return a.Minute.Compare(b.Minute) })
		slices.SortFunc(nd.Missing, func(a, b MissingRange) int {
			if c := a.Before.Compare(b.Before); c != 0 {
				return c
			}
			return int(a.FromSeq) - int(b.FromSeq)
		})
		rep.Totals.add(nd.Totals)
		rep.Nodes = append(rep.Nodes, *nd)
	}
	slices.SortFunc(rep.Nodes, func(a, b Node) int { return strings.Compare(a.Node, b.Node) })
	return rep, nil
}

func parseFigures(v string) (Figures, error) {
	var n [5]int64
	fs := strings.Fields(v)
	if len(fs) != len(n) {
		return Figures{}, fmt.Errorf("malformed figures %q", v)
	}
	for i, s := range fs {
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Figures{}, fmt.Errorf("malformed figures %q", v)
		}
		n[i] = x
	}
	return Figures{Events: n[0], DeadLettered: n[1], Duplicates: n[2], Unsequenced: n[3], NewestMs: n[4]}, nil
}

func parseGaps(v string) ([]Gap, error) {
	var out []Gap
	for s := range strings.SplitSeq(v, ",") {
		rng, at, ok1 := strings.Cut(s, "@")
		a, b, ok2 := strings.Cut(rng, "-")
		from, e1 := strconv.ParseUint(a, 10, 64)
		to, e2 := strconv.ParseUint(b, 10, 64)
		ms, e3 := strconv.ParseInt(at, 10, 64)
		if !ok1 || !ok2 || e1 != nil || e2 != nil || e3 != nil || to < from {
			return nil, fmt.Errorf("malformed gaps %q", v)
		}
		out = append(out, Gap{From: from, To: to, AtMs: ms})
	}
	return out, nil
}

// Writer names a processor's audit hashes and registers its partitions
// with readers. The figures themselves are written with the processor's
// state snapshots (package processor/state), in the same script.
type Writer struct {
	rdb    redis.UniversalClient
	prefix string
	// TTL is how long an audit hash outlives its last write.
	TTL time.Duration
}

// NewWriter returns a writer of audit hashes under the key prefix (no { or
// }: the hash tag after it puts them in their partition's slot), kept for
// ttl after their last write.
func NewWriter(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Writer {
	return &Writer{rdb: rdb, prefix: prefix, TTL: ttl}
}

// Key is the audit hash of partition tag for a UTC day (Unix days).
func (w *Writer) Key(tag string, day int64) string { return Key(w.prefix, tag, day) }

// Register adds the partition tag to the set readers look in (idempotent).
func (w *Writer) Register(ctx context.Context, tag string) error {
	return Register(ctx, w.rdb, w.prefix, tag)
}

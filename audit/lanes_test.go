package audit

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const t0 = int64(1_764_331_200_000) // a UTC midnight

// hit is a hit of lane (node "e1", boot 1) of partition 2, long after the
// state began (so its lane is tracked from number 1).
func hit(seq uint64, atMs int64) *Hit {
	return &Hit{Node: "e1", BootMs: t0 + startSkewMs, Seq: seq, Lane: 3, AtMs: atMs}
}

func newStarted() *Partition {
	p := NewPartition(2)
	p.sinceMs = t0 - 1
	return p
}

func TestGapsOpenFillAndSplit(t *testing.T) {
	p := newStarted()
	at := t0 + startSkewMs + 1000
	check := func(seq uint64, wantTracked, wantDup bool) {
		t.Helper()
		tr, dup := p.Check(hit(seq, at))
		if tr != wantTracked || dup != wantDup {
			t.Fatalf("seq %d: tracked %v dup %v, want %v %v", seq, tr, dup, wantTracked, wantDup)
		}
	}
	check(3, true, false) // 1-2 missing
	check(10, true, false)
	if got := p.Missing(); got != 2+6 {
		t.Fatalf("missing %d, want 8", got)
	}
	check(6, true, false) // splits 4-9 into 4-5 and 7-9
	check(1, true, false)
	check(3, true, true) // seen
	check(6, true, true)
	check(10, true, true)
	l := p.lanes[laneKey{"e1", t0 + startSkewMs}]
	want := []Gap{{2, 2, at}, {4, 5, at}, {7, 9, at}}
	if diff := cmp.Diff(want, l.gaps); diff != "" {
		t.Fatalf("gaps (-want +got):\n%s", diff)
	}
	for _, s := range []uint64{2, 4, 5, 7, 8, 9} {
		check(s, true, false)
	}
	if p.Missing() != 0 || len(l.gaps) != 0 {
		t.Fatalf("missing %d, gaps %v after every number arrived", p.Missing(), l.gaps)
	}
	// Another partition's lane, no lane, no number: not tracked.
	for _, h := range []*Hit{{Node: "e1", BootMs: 5, Seq: 1, Lane: 1}, {Node: "e1", Seq: 4}, {Node: "e1", Lane: 3}} {
		if tr, dup := p.Check(h); tr || dup {
			t.Fatalf("%+v: tracked %v dup %v", h, tr, dup)
		}
	}
}

// Any order of arrival with copies: every copy is a duplicate, nothing is
// missing at the end, and the state round-trips through its encoding at
// every step.
func TestAnyOrderExactlyOnce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		p := newStarted()
		n := 1 + r.IntN(300)
		var arrivals []uint64
		for s := 1; s <= n; s++ {
			arrivals = append(arrivals, uint64(s))
			if r.IntN(5) == 0 {
				arrivals = append(arrivals, uint64(s))
			}
		}
		// Mostly in order, with runs moved late (retried batches).
		for i := range arrivals {
			if j := i + r.IntN(20); r.IntN(4) == 0 && j < len(arrivals) {
				arrivals[i], arrivals[j] = arrivals[j], arrivals[i]
			}
		}
		dups := 0
		for i, s := range arrivals {
			if _, dup := p.Check(hit(s, t0+startSkewMs+int64(i))); dup {
				dups++
			}
			if i%37 == 0 {
				q, err := LoadPartition(2, 0, p.AppendState(nil))
				if err != nil {
					t.Fatal(err)
				}
				if !cmp.Equal(q.lanes, p.lanes, cmp.AllowUnexported(lane{}, laneKey{}), cmpopts.EquateEmpty()) || q.sinceMs != p.sinceMs {
					t.Fatalf("round %d: state changed through its encoding", round)
				}
				p = q
			}
		}
		if dups != len(arrivals)-n || p.Missing() != 0 {
			t.Fatalf("round %d: %d duplicates of %d, %d missing", round, dups, len(arrivals)-n, p.Missing())
		}
	}
}

// A lane that may have begun before the state did is tracked from its
// first number seen; one that began after, from 1.
func TestLaneStart(t *testing.T) {
	p := NewPartition(0)
	p.Check(&Hit{Node: "x", BootMs: 1, Seq: 1, Lane: 1, AtMs: t0}) // the state begins at t0
	early := &Hit{Node: "e", BootMs: t0 - 1000, Seq: 500, Lane: 1, AtMs: t0 + 1}
	late := &Hit{Node: "e", BootMs: t0 + startSkewMs, Seq: 5, Lane: 1, AtMs: t0 + startSkewMs + 1}
	p.Check(early)
	p.Check(late)
	if got := p.Missing(); got != 4 {
		t.Fatalf("missing %d, want 4 (numbers 1-4 of the lane that began after the state)", got)
	}
	// A number below an early lane's first, received well before it: a
	// hit from before the state (a copy of one it never saw).
	if tr, dup := p.Check(&Hit{Node: "e", BootMs: t0 - 1000, Seq: 499, Lane: 1, AtMs: t0 - 5000}); tr || dup {
		t.Fatal("a number below an early lane's first is neither tracked nor a duplicate")
	}
}

// TestLaneStartReordered: an edge numbers hits as its handlers accept them
// and spools them as they finish, so a lane's first numbers can reach the
// partition out of order. Lower numbers received with the first one seen
// lower the lane's start: tracked, nothing unsequenced, the numbers in
// between awaited; one received long before is not.
func TestLaneStartReordered(t *testing.T) {
	p := NewPartition(0)
	at := t0 + 10
	lane := func(seq uint64, atMs int64) *Hit {
		return &Hit{Node: "e", BootMs: t0 - 1000, Seq: seq, Lane: 1, AtMs: atMs}
	}
	for _, c := range []struct {
		seq            uint64
		atMs           int64
		tracked, dup   bool
		missing, first uint64
	}{
		{3, at, true, false, 0, 3},     // the first seen
		{1, at - 2, true, false, 1, 1}, // reordered: 2 awaited
		{4, at + 1, true, false, 1, 1}, // in order
		{2, at - 1, true, false, 0, 1}, // fills the gap
		{1, at - 2, true, true, 0, 1},  // a copy
		{7, at + 5, true, false, 2, 1}, // 5-6 missing
		{6, at + 4, true, false, 1, 1}, // reordered within the lane: fills
		{5, at + 3, true, false, 0, 1}, // all there
	} {
		tr, dup := p.Check(lane(c.seq, c.atMs))
		l := p.lanes[laneKey{"e", t0 - 1000}]
		if tr != c.tracked || dup != c.dup || uint64(p.Missing()) != c.missing || l.first != c.first {
			t.Fatalf("seq %d: tracked %v dup %v, missing %d, first %d; want %v %v, %d, %d", c.seq, tr, dup, p.Missing(), l.first, c.tracked, c.dup, c.missing, c.first)
		}
	}
	// Another lane: its first number seen is 40; 2 was received 5 s
	// before its newest hit, so it is from before the state, and 1 is more
	// than 64 numbers below its highest.
	q := NewPartition(0)
	q.Check(lane(40, at))
	q.Check(lane(100, at+2000))
	if tr, _ := q.Check(lane(39, at-5000)); tr {
		t.Fatal("a number received 5 s before the lane's newest lowered its start")
	}
	if tr, _ := q.Check(lane(30, at+2000)); tr {
		t.Fatal("a number 70 below the lane's highest lowered its start")
	}
	if q.Missing() != 100-40-1 {
		t.Fatalf("missing %d, want 59 (41-99)", q.Missing())
	}
}

func TestFiguresAndWrites(t *testing.T) {
	p := newStarted()
	base := t0 + startSkewMs
	p.CountFrom(100)
	h := hit(1, base)
	p.Count(99, h, Event, true) // before the stored position: not counted
	p.Count(100, h, Event, true)
	p.Count(101, h, DeadLettered, true)
	p.Count(102, h, Duplicate, true)
	p.Count(103, h, Event, false)
	p.Check(hit(4, base+dayMs)) // gap 1-3, revealed the next day
	ws := p.Writes(func(day int64) string { return "k" + string(rune('0'+day%10)) })
	slices.SortFunc(ws, func(a, b Write) int { return strings.Compare(a.Key, b.Key) })
	day := base / dayMs
	want := []Write{
		{Key: "k" + string(rune('0'+day%10)), Ops: []Op{{Field: minuteField(base/minuteMs, "e1"), Kind: 'i', Value: "2 1 1 1 " + strconv.FormatInt(base, 10)}}},
		{Key: "k" + string(rune('0'+(day+1)%10)), Ops: []Op{{Field: gapField(base, "e1"), Kind: 's', Value: "1-3@" + strconv.FormatInt(base+dayMs, 10)}}},
	}
	if diff := cmp.Diff(want, ws); diff != "" {
		t.Fatalf("writes (-want +got):\n%s", diff)
	}
	p.Written(104)
	if len(p.Writes(func(int64) string { return "k" })) != 0 {
		t.Fatal("writes left after Written")
	}
	// Filling the gap deletes its field.
	for s := uint64(1); s <= 3; s++ {
		p.Check(hit(s, base+dayMs))
	}
	ws = p.Writes(func(int64) string { return "k" })
	if len(ws) != 1 || len(ws[0].Ops) != 1 || ws[0].Ops[0].Kind != 'd' {
		t.Fatalf("after the gap filled: %+v", ws)
	}
}

// However many gaps a lane gets, it holds at most MaxGaps; the numbers of
// those dropped are counted.
func TestGapsBounded(t *testing.T) {
	p := newStarted()
	for s := uint64(2); s <= 2*(MaxGaps+10); s += 2 {
		p.Check(hit(s, t0+startSkewMs))
	}
	l := p.lanes[laneKey{"e1", t0 + startSkewMs}]
	if len(l.gaps) != MaxGaps || p.Forgotten != 10 || p.Missing() != MaxGaps {
		t.Fatalf("%d gaps, %d forgotten, %d missing", len(l.gaps), p.Forgotten, p.Missing())
	}
	if tr, _ := p.Check(hit(1, t0+startSkewMs)); tr {
		t.Fatal("a number of a forgotten gap is still tracked")
	}
}

func TestExpireLanes(t *testing.T) {
	p := newStarted()
	p.Check(&Hit{Node: "old", BootMs: 1, Seq: 1, Lane: 3, AtMs: t0})
	for i := range MaxLanes + 5 {
		p.Check(&Hit{Node: "n", BootMs: int64(i), Seq: 1, Lane: 3, AtMs: t0 + LaneTTL + int64(i)})
	}
	p.Expire(t0 + LaneTTL + 1)
	if _, ok := p.lanes[laneKey{"old", 1}]; ok {
		t.Fatal("a lane idle past LaneTTL was kept")
	}
	if p.Lanes() != MaxLanes {
		t.Fatalf("%d lanes, want %d", p.Lanes(), MaxLanes)
	}
	if _, ok := p.lanes[laneKey{"n", 0}]; ok {
		t.Fatal("the least recent lane was kept past MaxLanes")
	}
}

func TestLoadRefusesDamage(t *testing.T) {
	p := newStarted()
	p.Check(hit(5, t0+startSkewMs))
	b := p.AppendState(nil)
	for _, bad := range [][]byte{nil, {9}, b[:len(b)-1], append(slices.Clone(b), 0)} {
		if _, err := LoadPartition(2, 0, bad); err == nil {
			t.Fatalf("%x loaded", bad)
		}
	}
}

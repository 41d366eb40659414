package edge

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
)

// Hits are numbered per partition, 1, 2, 3, ... without gaps or repeats
// however many handlers number at once, and through a change of the
// partition count; the count survives a restart in the spool folder.
func TestLanesNumberWithoutGaps(t *testing.T) {
	dir := t.TempDir()
	l, err := newLanes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if lane, seq := l.next([]byte("k")); lane != 0 || seq != 0 {
		t.Fatalf("count unknown: lane %d seq %d, want none", lane, seq)
	}
	if err := l.resize(4, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, partitionsFile)); string(b) != "4\n" {
		t.Fatalf("stored count %q", b)
	}
	var mu sync.Mutex
	seen := map[uint32][]uint64{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				key := binary.BigEndian.AppendUint64(nil, uint64(g*1_000_000+i))
				lane, seq := l.next(key)
				// The count changes from 4 to 6 meanwhile: either is right.
				if a, b := uint32(kafkaconn.PartitionOf(key, 4))+1, uint32(kafkaconn.PartitionOf(key, 6))+1; lane != a && lane != b {
					t.Errorf("key %x: lane %d, want partition %d or %d, + 1", key, lane, a-1, b-1)
				}
				mu.Lock()
				seen[lane] = append(seen[lane], seq)
				mu.Unlock()
				if g == 0 && i == 1000 {
					_ = l.resize(6, true) // more partitions, mid-stream
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for lane, seqs := range seen {
		slices.Sort(seqs)
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("lane %d: numbers %v... are not 1, 2, 3, ...", lane, seqs[:min(len(seqs), i+3)])
			}
		}
		total += len(seqs)
	}
	if total != 16000 || len(seen) != 6 {
		t.Fatalf("%d hits in %d lanes", total, len(seen))
	}
	again, err := newLanes(dir)
	if err != nil || again.count() != 6 {
		t.Fatalf("after a restart: count %d, %v", again.count(), err)
	}
	if err := os.WriteFile(filepath.Join(dir, partitionsFile), []byte("lots"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newLanes(dir); err == nil {
		t.Fatal("a damaged partition count was accepted")
	}
}

func TestLaneHeader(t *testing.T) {
	rec := make([]byte, headerLen)
	for _, c := range []struct {
		ms   int64
		lane uint32
	}{{1_764_331_200_123, 0}, {1_764_331_200_123, 1}, {1<<48 - 1, maxLanes + 1}} {
		binary.BigEndian.PutUint64(rec[keyLen:], laneHeader(c.ms, c.lane))
		if spooledTime(rec) != c.ms || spooledLane(rec) != c.lane {
			t.Fatalf("%+v: read back %d, %d", c, spooledTime(rec), spooledLane(rec))
		}
	}
}

// A partition count that shrinks (a metadata answer listing fewer
// partitions) and grows back goes on numbering each lane where it was: a
// number given twice would make the processor drop a hit as a copy.
func TestLanesKeepNumbersThroughAShrink(t *testing.T) {
	l, err := newLanes(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_ = l.resize(6, false)
	last := func(part int) uint64 { return l.set.Load().seq[part].Load() }
	for i := range 600 {
		l.next(binary.BigEndian.AppendUint64(nil, uint64(i)))
	}
	before := last(5)
	_ = l.resize(3, false)
	_ = l.resize(6, false)
	if last(5) != before || before == 0 {
		t.Fatalf("lane 6 counter %d after a shrink and regrowth, was %d", last(5), before)
	}
}

package spool

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAhead checks the work done ahead of the writer: the next segment
// exists before the active one is full and becomes the active one when it
// is, the active segment's pages are faulted in ahead of the write
// position, and Close removes the unused next segment.
func TestAhead(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.SegmentBytes = 4 * populateAhead
	cfg.MaxBytes = 8 * cfg.SegmentBytes
	s := mustOpen(t, cfg)
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			s.mu.Lock()
			ok := cond()
			s.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("not done ahead: %s", what)
			}
		}
	}
	eventually("next segment created", func() bool { return s.next != nil && s.next.id == s.segs[0].id+1 })
	if s.populate { // MADV_POPULATE_WRITE works on this kernel and file system
		eventually("pages populated", func() bool { return s.segs[0].populated >= populateAhead })
	}
	next := s.next
	rec := make([]byte, 1000)
	n := 0
	for ; s.Stats().Segments < 2; n++ {
		if err := s.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	active := s.segs[len(s.segs)-1]
	s.mu.Unlock()
	if active != next {
		t.Fatal("the full segment was not followed by the one created ahead")
	}
	eventually("a new next segment", func() bool { return s.next != nil && s.next.id == active.id+1 })
	nextPath := filepath.Join(cfg.Dir, segName(active.id+1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(nextPath); !os.IsNotExist(err) {
		t.Fatalf("Close left the unused next segment: %v", err)
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	if got := len(drain(t, s)); got != n {
		t.Fatalf("read back %d records, want %d", got, n)
	}
}

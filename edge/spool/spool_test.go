package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.SegmentBytes = 4096
	cfg.MaxBytes = 1 << 20
	return cfg
}

func mustOpen(t testing.TB, cfg Config) *Spool {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain reads and acknowledges everything the spool holds.
func drain(t testing.TB, s *Spool) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		recs, pos, err := s.Read(100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			out = append(out, bytes.Clone(r))
		}
		if err := s.Ack(pos, len(recs)); err != nil {
			t.Fatal(err)
		}
	}
}

func payload(i int) []byte {
	return fmt.Appendf(nil, "record-%06d-%s", i, bytes.Repeat([]byte{'x'}, i%300))
}

func TestAppendReadAckAcrossSegments(t *testing.T) {
	t.Parallel()
	for _, mode := range []SyncMode{SyncWrite, SyncAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.Sync = mode
			s := mustOpen(t, cfg)
			var want [][]byte
			for i := range 200 {
				want = append(want, payload(i))
				if err := s.Append(want[i]); err != nil {
					t.Fatal(err)
				}
			}
			if st := s.Stats(); st.Records != 200 || st.Segments < 5 {
				t.Fatalf("stats %+v: want 200 records in several 4 KiB segments", st)
			}
			got := drain(t, s)
			if !slices.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("read %d records, want the %d appended in order", len(got), len(want))
			}
			if st := s.Stats(); st.Records != 0 || st.Segments != 1 {
				t.Fatalf("after acking everything: %+v, want 0 records and only the active segment", st)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSurvivesRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		close func(*Spool)
	}{
		{"clean close", func(s *Spool) { _ = s.Close() }},
		{"killed", (*Spool).abandon},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			s := mustOpen(t, cfg)
			for i := range 50 {
				if err := s.Append(payload(i)); err != nil {
					t.Fatal(err)
				}
			}
			// Deliver the first 20.
			recs, pos, err := s.Read(20, 1<<20)
			if err != nil || len(recs) != 20 {
				t.Fatalf("read %d: %v", len(recs), err)
			}
			if err := s.Ack(pos, 20); err != nil {
				t.Fatal(err)
			}
			tc.close(s)

			s = mustOpen(t, cfg)
			defer s.Close()
			got := drain(t, s)
			// Killed: the ack position may not have been persisted, so some
			// delivered records may come again; never one less.
			if len(got) < 30 || !bytes.Equal(got[len(got)-1], payload(49)) {
				t.Fatalf("after restart read %d records ending %q, want at least the 30 undelivered", len(got), got[len(got)-1])
			}
			first := 50 - len(got)
			for i, r := range got {
				if !bytes.Equal(r, payload(first+i)) {
					t.Fatalf("record %d = %q, want %q", i, r, payload(first+i))
				}
			}
		})
	}
}

func TestCorruptTails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		damage   func(t *testing.T, path string, size int64)
		keep     int // records that must survive of 10
		corrupts uint64
	}{
		{"garbage after the last record", func(t *testing.T, path string, _ int64) {
			appendFile(t, path, []byte{0x10, 0, 0, 0, 1, 2, 3, 4, 'a', 'b'})
		}, 10, 1},
		{"torn header", func(t *testing.T, path string, _ int64) {
			appendFile(t, path, []byte{0x10, 0})
		}, 10, 1},
		{"impossible length", func(t *testing.T, path string, _ int64) {
			appendFile(t, path, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 'z'})
		}, 10, 1},
		{"last record cut in half", func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size-5); err != nil {
				t.Fatal(err)
			}
		}, 9, 1},
		{"flipped byte in the last record", func(t *testing.T, path string, size int64) {
			flip(t, path, size-2)
		}, 9, 1},
		{"zeroed tail (preallocated space)", func(t *testing.T, path string, _ int64) {
			appendFile(t, path, make([]byte, 512))
		}, 10, 0},
		{"zeroes then garbage", func(t *testing.T, path string, _ int64) {
			appendFile(t, path, append(make([]byte, 512), 'g'))
		}, 10, 1},
		{"zeroed bytes in the last record", func(t *testing.T, path string, size int64) {
			zero(t, path, size-20, 4)
		}, 9, 1},
		{"nothing wrong", func(*testing.T, string, int64) {}, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			s := mustOpen(t, cfg)
			for i := range 10 {
				if err := s.Append(payload(i)); err != nil {
					t.Fatal(err)
				}
			}
			seg := s.segs[len(s.segs)-1]
			path, size := filepath.Join(cfg.Dir, segName(seg.id)), seg.size
			s.abandon()
			tc.damage(t, path, size)

			for round := range 2 { // a second open finds a clean spool
				s = mustOpen(t, cfg)
				st := s.Stats()
				if round == 0 && st.CorruptTails != tc.corrupts {
					t.Fatalf("corrupt tails %d, want %d", st.CorruptTails, tc.corrupts)
				}
				if round == 1 && st.CorruptTails != 0 {
					t.Fatalf("second open still finds %d corrupt tails", st.CorruptTails)
				}
				if st.Records != int64(tc.keep) {
					t.Fatalf("round %d: %d records pending, want %d", round, st.Records, tc.keep)
				}
				if round == 0 {
					s.abandon()
				}
			}
			// Appends continue after the cut, and reads see the survivors then
			// the new records.
			if err := s.Append([]byte("after")); err != nil {
				t.Fatal(err)
			}
			got := drain(t, s)
			if len(got) != tc.keep+1 || string(got[tc.keep]) != "after" {
				t.Fatalf("read %d records, want %d then \"after\"", len(got), tc.keep)
			}
			_ = s.Close()
		})
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
}

func zero(t *testing.T, path string, at int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteAt(make([]byte, n), at)
	_ = f.Close()
}

func flip(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	_, _ = f.ReadAt(b, at)
	b[0] ^= 0x55
	_, _ = f.WriteAt(b, at)
	_ = f.Close()
}

// TestKilledWithLargeSegment appends more than releaseChunk into one
// mapped segment, so written pages are released from the process while it
// appends, then dies without a last sync or truncate: every record comes
// back in order, and the unused preallocated rest is not counted as damage.
func TestKilledWithLargeSegment(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.SegmentBytes = 2*releaseChunk + 4096
	cfg.MaxBytes = 4 * cfg.SegmentBytes
	s := mustOpen(t, cfg)
	const n = 6000 // ≈6.2 MiB of records
	rec := func(i int) []byte {
		b := bytes.Repeat([]byte{byte(i)}, 1000+i%100)
		binary.BigEndian.PutUint32(b, uint32(i))
		return b
	}
	for i := range n {
		if err := s.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if seg := s.segs[len(s.segs)-1]; seg.released < releaseChunk {
		t.Fatalf("released %d bytes of the mapping, want at least %d", seg.released, releaseChunk)
	}
	s.abandon()
	s = mustOpen(t, cfg)
	defer s.Close()
	if st := s.Stats(); st.CorruptTails != 0 || st.Records != n {
		t.Fatalf("after the kill: %+v, want %d records and no corrupt tail", st, n)
	}
	got := drain(t, s)
	for i := range n {
		if !bytes.Equal(got[i], rec(i)) {
			t.Fatalf("record %d differs after the kill", i)
		}
	}
}

// TestRecordLargerThanSegment gets a segment of its own.
func TestRecordLargerThanSegment(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s := mustOpen(t, cfg)
	big := bytes.Repeat([]byte{'b'}, 3*int(cfg.SegmentBytes))
	for _, p := range [][]byte{[]byte("before"), big, []byte("after")} {
		if err := s.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	s.abandon()
	s = mustOpen(t, cfg)
	defer s.Close()
	got := drain(t, s)
	if len(got) != 3 || string(got[0]) != "before" || !bytes.Equal(got[1], big) || string(got[2]) != "after" {
		t.Fatalf("read %d records, want before, the large one, after", len(got))
	}
}

func TestFullAndHighWater(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxBytes = 8192
	cfg.HighWater = 0.5
	s := mustOpen(t, cfg)
	defer s.Close()
	rec := bytes.Repeat([]byte{'r'}, 1000-headerLen)
	var n int
	for ; ; n++ {
		if !s.Ready() && n*1000 < 4096 {
			t.Fatalf("not ready at %d bytes, below the high-water mark", n*1000)
		}
		err := s.Append(rec)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != 8 || s.Ready() {
		t.Fatalf("accepted %d records of 1000 bytes into 8192 (want 8), ready %v", n, s.Ready())
	}
	// Delivering frees room again.
	drain(t, s)
	if err := s.Append(rec); err != nil || !s.Ready() {
		t.Fatalf("after draining: append %v, ready %v", err, s.Ready())
	}
}

func TestOneProcessPerDir(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s := mustOpen(t, cfg)
	defer s.Close()
	if _, err := Open(cfg); err == nil {
		t.Fatal("a second Open of the same dir succeeded")
	}
}

func TestConcurrentAppendsAreAllRead(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Sync = SyncAlways
	s := mustOpen(t, cfg)
	defer s.Close()
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var b [8]byte
				binary.BigEndian.PutUint64(b[:], uint64(w*each+i))
				if err := s.Append(b[:]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seen := map[uint64]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < writers*each && time.Now().Before(deadline) {
		recs, pos, err := s.Read(64, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			v := binary.BigEndian.Uint64(r)
			if seen[v] {
				t.Fatalf("record %d read twice", v)
			}
			seen[v] = true
		}
		if len(recs) == 0 {
			select {
			case <-s.Notify():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if err := s.Ack(pos, len(recs)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if len(seen) != writers*each {
		t.Fatalf("read %d distinct records, want %d", len(seen), writers*each)
	}
}

// TestModel runs random sequences of appends, partial deliveries, crashes
// (with and without a damaged tail) and clean restarts against a model: the
// list of records appended, and how many of them were delivered. After every
// reopen, the spool must hold exactly a suffix of the appended records that
// includes every record not delivered, and the damage
// must be counted.
func TestModel(t *testing.T) {
	t.Parallel()
	seeds := 30
	if testing.Short() {
		seeds = 5
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runModel(t, uint64(seed))
		})
	}
}

func runModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	cfg := testConfig(t)
	cfg.SegmentBytes = 4096 + int64(rng.IntN(4096))
	cfg.MaxBytes = 64 << 10
	if rng.IntN(2) == 0 {
		cfg.Sync = SyncAlways
	}
	s := mustOpen(t, cfg)
	var (
		appended  [][]byte // every record Append accepted, in order
		delivered int      // appended[:delivered] were read and acknowledged
		next      int
	)
	reopen := func(how string) {
		t.Helper()
		s = mustOpen(t, cfg)
		// What is there must be appended[j:] for some j <= delivered.
		st := s.Stats()
		pending := int(st.Records)
		j := len(appended) - pending
		if j < 0 || j > delivered {
			t.Fatalf("%s: spool holds %d records; %d appended, %d delivered: undelivered records lost", how, pending, len(appended), delivered)
		}
		delivered = j
	}
	for step := range 300 {
		switch op := rng.IntN(10); {
		case op < 5: // append a few
			for range 1 + rng.IntN(8) {
				p := payload(next)
				next++
				err := s.Append(p)
				if errors.Is(err, ErrFull) {
					continue
				}
				if err != nil {
					t.Fatalf("step %d: append: %v", step, err)
				}
				appended = append(appended, p)
			}
		case op < 8: // deliver some
			recs, pos, err := s.Read(1+rng.IntN(20), 1<<20)
			if err != nil {
				t.Fatalf("step %d: read: %v", step, err)
			}
			for i, r := range recs {
				if want := appended[delivered+i]; !bytes.Equal(r, want) {
					t.Fatalf("step %d: read %q, want %q", step, r, want)
				}
			}
			if rng.IntN(4) > 0 { // sometimes crash before acknowledging
				if err := s.Ack(pos, len(recs)); err != nil {
					t.Fatal(err)
				}
				delivered += len(recs)
			} else {
				s.abandon()
				reopen("crash after read")
			}
		case op < 9: // crash, maybe with a torn write after the last record
			seg := s.segs[len(s.segs)-1]
			path := filepath.Join(cfg.Dir, segName(seg.id))
			s.abandon()
			before := uint64(0)
			if rng.IntN(2) == 0 {
				garbage := make([]byte, 1+rng.IntN(40))
				for i := range garbage {
					garbage[i] = byte(rng.IntN(256))
				}
				appendFile(t, path, garbage)
				before = 1
			}
			reopen("crash")
			if got := s.Stats().CorruptTails; got != before {
				t.Fatalf("step %d: %d corrupt tails counted, want %d", step, got, before)
			}
		default: // clean restart: nothing delivered comes back
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			d := delivered
			reopen("restart")
			if delivered != d {
				t.Fatalf("step %d: clean restart gave back %d delivered records", step, d-delivered)
			}
		}
	}
	got := drain(t, s)
	if !slices.EqualFunc(got, appended[delivered:], bytes.Equal) {
		t.Fatalf("final read of %d records differs from the %d undelivered", len(got), len(appended)-delivered)
	}
	_ = s.Close()
}

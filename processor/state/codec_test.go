package state

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pixelpipe/pixelpipe/processor/session"
)

// randomState returns a state with every field set from rng, an open
// session on about half of them.
func randomState(rng *rand.Rand) *session.State {
	st := &session.State{
		Visitor:    rng.Uint64(),
		NewestMs:   1_764_331_200_000 + rng.Int64N(1e9),
		RateMinute: rng.Int64N(1e8) - 5e7,
		RateCount:  rng.Uint32(),
		Alias:      rng.Uint64() >> rng.IntN(64),
		HoldMs:     rng.Int64N(1e12),
	}
	for range rng.IntN(5) {
		var s session.Seen
		for i := range s.ID {
			s.ID[i] = byte(rng.Uint32())
		}
		s.AtMs = st.NewestMs - rng.Int64N(3_600_000)
		st.Seen = append(st.Seen, s)
	}
	if rng.IntN(2) == 0 {
		st.Open = &session.Open{
			Site: "news", Campaign: []string{"", "spring", "ünïcode"}[rng.IntN(3)],
			StartMs: st.NewestMs - 60_000, LastMs: st.NewestMs, Seq: rng.Uint32(), Pages: rng.Uint32(),
			Landing: "https://news.example/a", Exit: "", Referrer: "https://www.google.com/",
			Content: []string{"", "article-1"}[rng.IntN(2)], Human: rng.IntN(2) == 0,
		}
		st.Open.ID[3] = 7
	}
	return st
}

func TestBlobRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 50 {
		var states []*session.State
		for range n {
			states = append(states, randomState(rng))
		}
		var gone []uint64
		for range rng.IntN(4) {
			gone = append(gone, rng.Uint64())
		}
		gotStates, gotGone, err := decodeBlob(appendBlob(nil, states, gone))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(states, gotStates, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%d states (-want +got):\n%s", n, diff)
		}
		if !cmp.Equal(gone, gotGone, cmpopts.EquateEmpty()) {
			t.Fatalf("gone %v, got %v", gone, gotGone)
		}
	}
}

// A state written before sessions kept their landing content id (open
// flag 1) decodes as a human session without one.
func TestBlobOpenWithoutContent(t *testing.T) {
	st := &session.State{Visitor: 9, NewestMs: 1_764_331_200_000, Open: &session.Open{
		Site: "news", StartMs: 1_764_331_140_000, LastMs: 1_764_331_200_000, Seq: 2, Pages: 2,
		Content: "article-1", Human: false,
	}}
	blob := appendBlob(nil, []*session.State{st}, nil)
	// Cut the flag-2 tail (content string and human byte) and write flag 1.
	old := append([]byte(nil), blob[:len(blob)-len("article-1")-3]...)
	old = append(old, 0) // no evictions
	flag := len(appendState(nil, &session.State{Visitor: 9, NewestMs: st.NewestMs}))
	if old[1+1+flag-1] != 2 {
		t.Fatalf("open flag at %d is %d, want 2", 1+1+flag-1, old[1+1+flag-1])
	}
	old[1+1+flag-1] = 1
	got, _, err := decodeBlob(old)
	if err != nil {
		t.Fatal(err)
	}
	if o := got[0].Open; o == nil || o.Content != "" || !o.Human || o.Pages != 2 || o.Site != "news" {
		t.Fatalf("flag-1 open decoded as %+v", o)
	}
}

// Every truncation and every single-byte change of a blob either decodes
// or fails with an error: never a panic, never a huge allocation.
func TestBlobCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var states []*session.State
	for range 4 {
		states = append(states, randomState(rng))
	}
	blob := appendBlob(nil, states, []uint64{1, 2})
	for i := range len(blob) {
		if _, _, err := decodeBlob(blob[:i]); err == nil {
			t.Fatalf("blob cut to %d of %d bytes decoded", i, len(blob))
		}
		bad := append([]byte(nil), blob...)
		bad[i] ^= 0xff
		decodeBlob(bad) // must not panic
	}
	if _, _, err := decodeBlob(append(blob, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzDecodeBlob(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	f.Add(appendBlob(nil, []*session.State{randomState(rng), randomState(rng)}, []uint64{9}))
	f.Add([]byte{blobVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		states, gone, err := decodeBlob(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the same states.
		again, gone2, err := decodeBlob(appendBlob(nil, states, gone))
		if err != nil || len(again) != len(states) || len(gone2) != len(gone) {
			t.Fatalf("re-encoded blob: %v, %d/%d states", err, len(again), len(states))
		}
	})
}

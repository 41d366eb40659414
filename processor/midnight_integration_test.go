//go:build integration

package processor

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// TestVisitAcrossMidnight drives the processor with hit times as the clock
// around a UTC midnight, when the cookieless salt rotates: a visit whose
// session is open at midnight stays one session and one visitor (and that
// visitor keeps its key for the rest of the new day); a visitor idle for
// longer than the session timeout before midnight becomes a new one, and a
// visitor first seen after midnight gets the new day's key.
func TestVisitAcrossMidnight(t *testing.T) {
	t.Parallel()
	p := newTestProcessor(t)
	const midnight = int64(1_764_374_400_000) // 2025-11-29T00:00:00Z
	const min = int64(60_000)
	a, b, c := []byte{203, 0, 113, 77}, []byte{203, 0, 113, 88}, []byte{203, 0, 113, 99}
	offset := int64(0)
	hit := func(id string, ip []byte, at int64) kafka.Message {
		offset++
		return kafka.Message{Topic: "hits", Partition: 0, Offset: offset, Value: rawHit(func(h *schemas.HitFields) {
			copy(h.EventID[:], id+"---------------")
			h.ClientIP, h.ReceivedAtMs = ip, at
		})}
	}
	events := map[string]*pixelpb.Event{}
	run := func(in ...kafka.Message) {
		t.Helper()
		if err := p.transform(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		for _, m := range p.events {
			ev := &pixelpb.Event{}
			if err := proto.Unmarshal(m.Value, ev); err != nil {
				t.Fatal(err)
			}
			if ev.GetKind() == pixelpb.Kind_KIND_SESSION {
				continue // the visits the hits closed
			}
			events[string(ev.GetOrigin().GetEventId()[:2])] = ev
		}
	}
	run(hit("a1", a, midnight-10*min), hit("b1", b, midnight-50*min))
	run(hit("a2", a, midnight+10*min), hit("b2", b, midnight+10*min), hit("c1", c, midnight+5*min))
	run(hit("a3", a, midnight+9*60*min))
	if len(events) != 6 {
		t.Fatalf("%d events, want 6", len(events))
	}
	a1, a2, a3 := events["a1"], events["a2"], events["a3"]
	if a2.GetVisitorKey() != a1.GetVisitorKey() || string(a2.GetSessionId()) != string(a1.GetSessionId()) || a2.GetSessionSeq() != 2 {
		t.Fatalf("visit across midnight split: before %x/%x, after %x/%x seq %d",
			a1.GetVisitorKey(), a1.GetSessionId(), a2.GetVisitorKey(), a2.GetSessionId(), a2.GetSessionSeq())
	}
	if a3.GetVisitorKey() != a1.GetVisitorKey() || string(a3.GetSessionId()) == string(a1.GetSessionId()) {
		t.Fatalf("later that day: visitor %x (want %x), a new session", a3.GetVisitorKey(), a1.GetVisitorKey())
	}
	if events["b2"].GetVisitorKey() == events["b1"].GetVisitorKey() {
		t.Fatal("a visitor idle past the session timeout before midnight was linked")
	}
	k := visitor.NewKeyer("s")
	if want, _ := k.Key(midnight+5*min, []byte("news"), nil, nil, c, []byte("UA")); events["c1"].GetVisitorKey() != want {
		t.Fatalf("a new visitor after midnight: key %x, want the new day's %x", events["c1"].GetVisitorKey(), want)
	}
	if n := testutil.ToFloat64(p.m.midnightLinks); n != 1 {
		t.Fatalf("midnight links counted %v, want 1", n)
	}
}

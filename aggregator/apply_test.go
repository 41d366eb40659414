package aggregator

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// The marks of the held records: an applied event marks every record it
// counts in for the next snapshot, and its content id's human day record
// for the next top-N raise; a day not touched for IdleEvict stays held
// while one of its records is marked. No Redis: the day is already held.
func TestMarksHoldDays(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.LateHorizon = 100 * 365 * 24 * time.Hour
	// A counts writer (never written here): records owe snapshots.
	a, err := New(cfg, nil, prometheus.NewRegistry(), nil, nil, Outputs{Counts: &kafka.Writer{}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC).UnixMilli()
	ev := &pixelpb.Event{
		ContentId: "c", Kind: pixelpb.Kind_KIND_VIEW, CampaignId: "spring", VisitorKey: 7,
		Origin: &pixelpb.Origin{ReceivedAtMs: at}, Source: &pixelpb.SourcePosition{Partition: 0, Offset: 1},
	}
	dk := dayKey(ev)
	e := newDayEntry(hllstore.NewDay())
	a.days[dk] = e
	if err := a.apply(context.Background(), []*pixelpb.Event{ev}); err != nil {
		t.Fatal(err)
	}
	top := hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: hllstore.DayRecord}
	if len(e.recs) != 4 || len(e.d.Records) != 4 || a.records != 4 {
		t.Fatalf("held %d records (%d in the day, %d counted), want 4", len(e.recs), len(e.d.Records), a.records)
	}
	for id, r := range e.recs {
		want := unsnap
		if id == top {
			want |= untop
		}
		if r.marks != want || r.Record != e.d.Records[id] || r.Total != 1 {
			t.Errorf("%+v: marks %b total %d, want marks %b total 1 (the day's own record)", id, r.marks, r.Total, want)
		}
	}

	// Written to Redis and idle: the marks alone keep the day held.
	e.dirty, e.bdirty = false, false
	later := time.Now().Add(2 * cfg.IdleEvict)
	a.evict(later)
	if a.days[dk] == nil {
		t.Fatal("a day owing snapshots and a top-N raise was evicted")
	}
	for id, r := range e.recs {
		if id != top {
			r.marks = 0
		}
	}
	a.evict(later)
	if a.days[dk] == nil {
		t.Fatal("a day owing a top-N raise was evicted")
	}
	e.recs[top].marks = 0
	a.evict(later)
	if a.days[dk] != nil || a.records != 0 {
		t.Fatalf("a day owing nothing stayed held (%d records counted)", a.records)
	}
}

// Without snapshots (no counts writer, or -aggregator.snapshots=false) no
// record owes one, so an idle day is evicted once its top-N raise is done;
// a mark nobody clears would hold every day ever counted in memory.
func TestNoSnapshotsNoMarks(t *testing.T) {
	t.Parallel()
	for name, out := range map[string]Outputs{"no counts writer": {}, "snapshots off": {Counts: &kafka.Writer{}}} {
		cfg := DefaultConfig()
		cfg.LateHorizon = 100 * 365 * 24 * time.Hour
		cfg.Snapshots = name != "snapshots off"
		a, err := New(cfg, nil, prometheus.NewRegistry(), nil, nil, out)
		if err != nil {
			t.Fatal(err)
		}
		ev := &pixelpb.Event{
			ContentId: "c", Kind: pixelpb.Kind_KIND_VIEW, VisitorKey: 7,
			Origin: &pixelpb.Origin{ReceivedAtMs: time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC).UnixMilli()},
			Source: &pixelpb.SourcePosition{Partition: 0, Offset: 1},
		}
		dk := dayKey(ev)
		e := newDayEntry(hllstore.NewDay())
		a.days[dk] = e
		if err := a.apply(context.Background(), []*pixelpb.Event{ev}); err != nil {
			t.Fatal(err)
		}
		top := hllstore.RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: hllstore.DayRecord}
		for id, r := range e.recs {
			if r.marks&unsnap != 0 {
				t.Errorf("%s: %+v owes a snapshot that is never published", name, id)
			}
		}
		e.dirty, e.bdirty = false, false
		e.recs[top].marks = 0 // raised
		a.evict(time.Now().Add(2 * cfg.IdleEvict))
		if a.days[dk] != nil {
			t.Errorf("%s: an idle day owing nothing stayed held", name)
		}
	}
}

//go:build integration

package aggregator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// recipientOf is the key of test recipient i.
func recipientOf(i int) hllstore.RecipientKey {
	var k hllstore.RecipientKey
	for j := range k {
		k[j] = byte(i*37 + j*11) // spread over buckets
	}
	return k
}

// withRecipients names a recipient on most events of a campaign, as the
// processor does for hits with a uid: one of a dozen, some with their uid
// kept; some of those events become opens, a person's or a mail proxy's.
func withRecipients(rng *rand.Rand, events []*pixelpb.Event) []*pixelpb.Event {
	for _, ev := range events {
		order := ev.GetKind() == pixelpb.Kind_KIND_CONVERSION && ev.GetOrderId() != ""
		if ev.GetCampaignId() == "" || ev.GetKind() == pixelpb.Kind_KIND_SESSION || (!order && rng.IntN(5) == 0) {
			continue
		}
		i := rng.IntN(12)
		if order {
			// Every event of an order names the same recipient: whichever
			// of them counts, the figures are the same.
			i = len(ev.GetOrderId()) % 12
		}
		k := recipientOf(i)
		ev.RecipientKey = k[:]
		if i%3 == 0 {
			ev.RecipientId = fmt.Sprintf("subscriber-%d", i)
		}
		if ev.GetKind() == pixelpb.Kind_KIND_IMPRESSION {
			ev.Kind = pixelpb.Kind_KIND_OPEN
			ev.MachineOpen = rng.IntN(3) == 0
		}
	}
	return events
}

// recipientRef is a recipient of a campaign.
type recipientRef struct {
	campaign string
	key      hllstore.RecipientKey
}

// referenceRecipients is what each recipient of each campaign did, counting
// each event once (orders once per content id and day, as the records).
func referenceRecipients(events []*pixelpb.Event) map[recipientRef]*hllstore.Activity {
	ref := map[recipientRef]*hllstore.Activity{}
	seen := map[string]bool{}
	for _, ev := range events {
		if !countedOrder(seen, ev) || ev.GetCampaignId() == "" || len(ev.GetRecipientKey()) != hllstore.RecipientKeySize {
			continue
		}
		r := recipientRef{ev.GetCampaignId(), hllstore.RecipientKey(ev.GetRecipientKey())}
		a := ref[r]
		if a == nil {
			a = &hllstore.Activity{}
		}
		machine, t := classOf(ev) != hllstore.Human, ev.GetOrigin().GetReceivedAtMs()
		switch {
		case ev.GetKind() == pixelpb.Kind_KIND_OPEN:
			a.AddOpen(t, machine)
		case ev.GetKind() == pixelpb.Kind_KIND_CLICK:
			a.AddClick(ev.GetClickDestination(), machine)
		case ev.GetKind() == pixelpb.Kind_KIND_CONVERSION && !machine:
			a.AddConversion(ev.GetOrderId(), ev.GetValueMicros(), ev.GetCurrency())
		case ev.GetKind() == pixelpb.Kind_KIND_VIEW && !machine:
			a.Views++
		default:
			continue
		}
		if id := ev.GetRecipientId(); id != "" {
			a.UID = id
		}
		ref[r] = a
	}
	return ref
}

// checkRecipients compares what store holds of every campaign's recipients
// over the content ids and days of events with reference.
func checkRecipients(t *testing.T, store *hllstore.Store, events []*pixelpb.Event) {
	t.Helper()
	ref := referenceRecipients(events)
	var days []hllstore.DayKey
	for _, ev := range events {
		if dk := dayKey(ev); !containsDay(days, dk) {
			days = append(days, dk)
		}
	}
	got := map[recipientRef]*hllstore.Activity{}
	for _, campaign := range []string{"spring"} {
		m, err := store.ReadRecipients(context.Background(), campaign, days, 0, hllstore.RecipientBuckets)
		if err != nil {
			t.Fatal(err)
		}
		for k, a := range m {
			got[recipientRef{campaign, k}] = a
		}
	}
	if len(ref) == 0 {
		t.Fatal("no recipient activity to check")
	}
	for r, want := range ref {
		g := got[r]
		if g == nil {
			t.Fatalf("recipient %s of %s: nothing stored, want %+v", r.key, r.campaign, want)
		}
		w := *want
		w.Clicks, g.Clicks = nonEmpty(w.Clicks), nonEmpty(g.Clicks)
		if !activityEqual(g, &w) {
			t.Fatalf("recipient %s of %s:\n got %+v\nwant %+v", r.key, r.campaign, *g, w)
		}
	}
	if len(got) != len(ref) {
		t.Fatalf("%d recipients stored, want %d", len(got), len(ref))
	}
}

func containsDay(days []hllstore.DayKey, dk hllstore.DayKey) bool {
	for _, d := range days {
		if d == dk {
			return true
		}
	}
	return false
}

func nonEmpty(m map[string]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

// activityEqual compares what is stored of two activities (orders in any
// order: the days store them apart).
func activityEqual(a, b *hllstore.Activity) bool {
	oa, ob := map[hllstore.Order]bool{}, map[hllstore.Order]bool{}
	for _, o := range a.Orders {
		oa[o] = true
	}
	for _, o := range b.Orders {
		ob[o] = true
	}
	x, y := *a, *b
	x.Orders, y.Orders = nil, nil
	x2, y2 := hllstore.Activity{}, hllstore.Activity{}
	x2.Merge(&x)
	y2.Merge(&y)
	return reflect.DeepEqual(oa, ob) && reflect.DeepEqual(x2, y2)
}

// An erasure leaves out the recipient's events received before it: those
// the aggregator holds unwritten when it is recorded, and those that come
// later (a replay, a late event), while events after it count again; other
// recipients keep theirs.
func TestErasureLeavesOut(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	ann, bob := recipientOf(1), recipientOf(2)
	off := int64(0)
	open := func(k hllstore.RecipientKey, at int64) *pixelpb.Event {
		off++
		return &pixelpb.Event{ContentId: "acme:mail", CampaignId: "spring", Kind: pixelpb.Kind_KIND_OPEN, RecipientKey: k[:],
			Origin: &pixelpb.Origin{ReceivedAtMs: at}, Source: &pixelpb.SourcePosition{Partition: 0, Offset: off}, VisitorKey: 7}
	}
	a := newTestAggregator(t, store)
	if err := a.apply(ctx, []*pixelpb.Event{open(ann, hour0), open(bob, hour0)}); err != nil {
		t.Fatal(err)
	}
	if err := a.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	// Ann opens again; before the aggregator writes it, she is erased.
	if err := a.apply(ctx, []*pixelpb.Event{open(ann, hour0+1000), open(bob, hour0+1000)}); err != nil {
		t.Fatal(err)
	}
	erasedAt := hour0 + 5000
	if n, err := store.EraseRecipient(ctx, "acme", ann, erasedAt); err != nil || n != 1 {
		t.Fatalf("erase: %d %v", n, err)
	}
	// Then a late event of hers from before the erasure, and one after it.
	if err := a.apply(ctx, []*pixelpb.Event{open(ann, hour0+4000)}); err != nil {
		t.Fatal(err)
	}
	if err := a.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	days := []hllstore.DayKey{{ContentID: "acme:mail", DayStart: hllstore.DayStart(hour0)}}
	got, err := store.ReadRecipient(ctx, "spring", days, ann, bob)
	if err != nil {
		t.Fatal(err)
	}
	if got[ann] != nil || got[bob] == nil || got[bob].Opens != 2 {
		t.Fatalf("after erasure: ann %+v, bob %+v", got[ann], got[bob])
	}
	if err := a.apply(ctx, []*pixelpb.Event{open(ann, hour0+6000)}); err != nil {
		t.Fatal(err)
	}
	// A new aggregator (a restart) reads the erasures before its first
	// write too.
	b := newTestAggregator(t, store)
	if err := b.apply(ctx, []*pixelpb.Event{open(ann, hour0+7000), open(ann, hour0+4500)}); err != nil {
		t.Fatal(err)
	}
	_ = a.flush(ctx, true) // refused or not: its day is b's now
	if err := b.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	got, _ = store.ReadRecipient(ctx, "spring", days, ann)
	if got[ann] == nil || got[ann].Opens < 1 || got[ann].FirstOpenMs <= erasedAt {
		t.Fatalf("after the erasure's time: ann %+v, want only opens after %d", got[ann], erasedAt)
	}
}

// A write with recipient activity waits for the erasures: when they cannot
// be read, the flush fails and writes nothing (its events stay to be
// written), and the next flush that can read them writes all.
func TestErasuresUnreadableHoldWrites(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	ann := recipientOf(3)
	a := newTestAggregator(t, store)
	ev := &pixelpb.Event{ContentId: "acme:mail", CampaignId: "spring", Kind: pixelpb.Kind_KIND_OPEN, RecipientKey: ann[:],
		Origin: &pixelpb.Origin{ReceivedAtMs: hour0}, Source: &pixelpb.SourcePosition{Partition: 0, Offset: 1}, VisitorKey: 7}
	if err := a.apply(ctx, []*pixelpb.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, prefix+":erased:v", "not a number", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.flush(ctx, true); err == nil {
		t.Fatal("flush wrote with the erasures unreadable")
	}
	days := []hllstore.DayKey{{ContentID: "acme:mail", DayStart: hllstore.DayStart(hour0)}}
	if got, _ := store.ReadRecipient(ctx, "spring", days, ann); len(got) != 0 {
		t.Fatalf("written before the erasures were read: %+v", got[ann])
	}
	if err := rdb.Del(ctx, prefix+":erased:v").Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got, err := store.ReadRecipient(ctx, "spring", days, ann); err != nil || got[ann] == nil || got[ann].Opens != 1 {
		t.Fatalf("after the erasures could be read: %+v %v", got[ann], err)
	}
}

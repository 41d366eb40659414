//go:build integration

package aggregator

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/money"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

var hour0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC).UnixMilli()

func newTestAggregator(t *testing.T, store *hllstore.Store) *Aggregator {
	t.Helper()
	cfg := DefaultConfig()
	cfg.LateHorizon = 100 * 365 * 24 * time.Hour                                                                          // the test's events are in the past
	cfg.HourRetention, cfg.DayRetention, cfg.RecipientRetention = 2*cfg.LateHorizon, 2*cfg.LateHorizon, 2*cfg.LateHorizon // above the horizon, as Validate requires
	cfg.MaxBreakdownValues = 4                                                                                            // six countries: "other" is exercised
	a, err := New(cfg, nil, prometheus.NewRegistry(), nil, store, Outputs{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// genEvents returns n distinct events over a few content ids, kinds, hours
// and source partitions, with offsets rising per source partition, and
// bot, campaign and conversion events among them.
func genEvents(rng *rand.Rand, n int) []*pixelpb.Event {
	out := make([]*pixelpb.Event, n)
	offsets := map[int32]int64{}
	for i := range n {
		p := int32(rng.IntN(4))
		offsets[p] += 1 + int64(rng.IntN(3)) // gaps: hits that became no event here
		ev := &pixelpb.Event{
			ContentId:  fmt.Sprintf("c%d", rng.IntN(3)),
			Kind:       pixelpb.Kind(1 + rng.IntN(4)),
			Origin:     &pixelpb.Origin{ReceivedAtMs: hour0 + int64(rng.IntN(3*3600_000))},
			Source:     &pixelpb.SourcePosition{Partition: p, Offset: offsets[p]},
			VisitorKey: uint64(rng.IntN(200))*0x9e3779b97f4a7c15 + 1,
		}
		if rng.IntN(5) == 0 {
			ev.CampaignId = "spring"
		}
		ev.Country = []string{"DE", "FR", "US", "NL", "SE", ""}[rng.IntN(6)]
		ev.DeviceType = []string{"desktop", "mobile"}[rng.IntN(2)]
		// The reports that count only events with a value: some have one.
		ev.PageUrl = []string{"", "https://a.example/", "https://a.example/p?x=1", "https://a.example/q#h"}[rng.IntN(4)]
		ev.SessionSeq = uint32(1 + rng.IntN(3))
		ev.ReferrerDomain = []string{"", "", "search.example", "t.co"}[rng.IntN(4)]
		ev.UtmCampaign = []string{"", "", "", "spring"}[rng.IntN(4)]
		if ev.Kind == pixelpb.Kind_KIND_CLICK && rng.IntN(2) == 0 {
			ev.ClickDestination = []string{"https://shop.example/sale", "https://shop.example/new?utm_source=mail"}[rng.IntN(2)]
		}
		if rng.IntN(3) == 0 { // custom properties: none, one or two
			ev.Props = []*pixelpb.Prop{{Key: "plan", Value: []string{"free", "pro"}[rng.IntN(2)]}}
			if rng.IntN(2) == 0 {
				ev.Props = append(ev.Props, &pixelpb.Prop{Key: "step", Value: fmt.Sprint(rng.IntN(3))})
			}
		}
		if rng.IntN(7) == 0 {
			ev.Bot, ev.BotReasons = true, []string{"headless"}
		}
		if ev.Kind == pixelpb.Kind_KIND_CONVERSION && rng.IntN(8) != 0 {
			// An order id, often seen more than once (a reloaded thank-you
			// page): every event of an order has its content id, time,
			// visitor, campaign, class and breakdown values, so which of
			// them counts changes no figure; only the first does.
			k := rng.IntN(20)
			ev.OrderId, ev.Currency, ev.ValueMicros = fmt.Sprintf("o%d", k), "EUR", 1_000_000+int64(k)
			ev.ContentId, ev.CampaignId = fmt.Sprintf("c%d", k%3), []string{"", "spring"}[k%2]
			ev.Origin.ReceivedAtMs = hour0 + int64(k%3)*3600_000 + int64(k)*1000
			ev.VisitorKey = uint64(k)*0x9e3779b97f4a7c15 + 7
			ev.Country, ev.DeviceType = []string{"DE", "FR", ""}[k%3], "mobile"
			ev.PageUrl, ev.SessionSeq = []string{"", "https://a.example/thanks"}[k%2], uint32(1+k%2)
			ev.ReferrerDomain, ev.UtmCampaign = []string{"", "t.co"}[k%4/2], []string{"", "spring"}[k%2]
			ev.Props = nil
			if k%3 == 0 {
				ev.Props = []*pixelpb.Prop{{Key: "plan", Value: "pro"}}
			}
			ev.Bot, ev.BotReasons = k%5 == 0, nil
			if ev.Bot {
				ev.BotReasons = []string{"headless"}
			}
		}
		out[i] = ev
	}
	return out
}

// visitEvent is a visit (an event of kind KIND_SESSION, as the processor
// writes one) closed by the record at source partition p, offset o, the
// index-th visit that record closed: a few content ids, campaigns, start
// hours, visitors and bots, of 1 to 6 pages.
func visitEvent(rng *rand.Rand, p int32, o int64, index uint32) *pixelpb.Event {
	start := hour0 + int64(rng.IntN(3*3600_000))
	pages := uint32(1 + rng.IntN(6))
	ev := &pixelpb.Event{
		ContentId:  fmt.Sprintf("c%d", rng.IntN(3)),
		Kind:       pixelpb.Kind_KIND_SESSION,
		Origin:     &pixelpb.Origin{ReceivedAtMs: start},
		Source:     &pixelpb.SourcePosition{Partition: p, Offset: o, Index: index},
		VisitorKey: uint64(rng.IntN(200))*0x9e3779b97f4a7c15 + 1,
		Bot:        rng.IntN(5) == 0,
		Session: &pixelpb.Session{
			StartMs: start, EndMs: start + int64(pages-1)*int64(rng.IntN(600_000)),
			Pages: pages, Bounce: pages == 1,
		},
	}
	if rng.IntN(4) == 0 {
		ev.CampaignId = "spring"
	}
	return ev
}

// withVisits adds visits to events as the processor writes them, in the
// order of each source partition: after or before some events, one to three
// visits the event's hit closed (indexes 0, 1, ...: their offset is the
// hit's), and at some offsets between two events visits a clock tick
// closed.
func withVisits(rng *rand.Rand, events []*pixelpb.Event) []*pixelpb.Event {
	visits := func(p int32, o int64) []*pixelpb.Event {
		var out []*pixelpb.Event
		for i := range 1 + rng.IntN(3) {
			out = append(out, visitEvent(rng, p, o, uint32(i)))
		}
		return out
	}
	last := map[int32]int64{}
	var out []*pixelpb.Event
	for _, ev := range events {
		p, o := ev.GetSource().GetPartition(), ev.GetSource().GetOffset()
		if o-1 > last[p] && rng.IntN(4) == 0 { // a tick between two hits
			out = append(out, visits(p, o-1)...)
		}
		last[p] = o
		switch rng.IntN(6) {
		case 0: // the hit's event, then the visits it closed
			out = append(append(out, ev), visits(p, o)...)
		case 1: // the visits first
			out = append(append(out, visits(p, o)...), ev)
		default:
			out = append(out, ev)
		}
	}
	return out
}

// deliveries interleaves the per-partition sequences of events at random
// (Kafka keeps order within a source partition only) and injects replays:
// at random points a partition's sequence restarts from an earlier event, as
// after a processor crash or a consumer restart.
func deliveries(rng *rand.Rand, events []*pixelpb.Event) []*pixelpb.Event {
	byPart := map[int32][]*pixelpb.Event{}
	var parts []int32
	for _, ev := range events {
		p := ev.GetSource().GetPartition()
		if byPart[p] == nil {
			parts = append(parts, p)
		}
		byPart[p] = append(byPart[p], ev)
	}
	next := map[int32]int{}
	var out []*pixelpb.Event
	for len(parts) > 0 {
		i := rng.IntN(len(parts))
		p := parts[i]
		seq := byPart[p]
		if next[p] > 0 && rng.IntN(40) == 0 {
			next[p] = rng.IntN(next[p]) // replay from an earlier point
		}
		out = append(out, seq[next[p]])
		next[p]++
		if next[p] == len(seq) {
			parts = append(parts[:i], parts[i+1:]...)
		}
	}
	return out
}

// countedOrder reports whether ev counts: not a conversion whose content id
// and day saw its order id already (seen, filled as it goes).
func countedOrder(seen map[string]bool, ev *pixelpb.Event) bool {
	if ev.GetKind() != pixelpb.Kind_KIND_CONVERSION || ev.GetOrderId() == "" {
		return true
	}
	k := fmt.Sprint(dayKey(ev), ev.GetOrderId())
	if seen[k] {
		return false
	}
	seen[k] = true
	return true
}

// reference counts events exactly, once each, and each order once per
// content id and day; visits once each, with their summed pages, durations
// and bounces.
func reference(events []*pixelpb.Event) map[hllstore.Key]*hllstore.Record {
	ref := map[hllstore.Key]*hllstore.Record{}
	var keys []hllstore.Key
	seen := map[string]bool{}
	for _, ev := range events {
		if !countedOrder(seen, ev) {
			continue
		}
		for _, k := range keysOf(keys[:0], ev) {
			r := ref[k]
			if r == nil {
				nr := hllstore.NewRecord()
				r = &nr
				ref[k] = r
			}
			r.Total++
			r.Sketch.InsertHash(ev.GetVisitorKey())
			if s := ev.GetSession(); ev.GetKind() == pixelpb.Kind_KIND_SESSION {
				if r.Sums == nil {
					r.Sums = map[string]uint64{}
				}
				r.Sums[hllstore.SumPages] += uint64(s.GetPages())
				r.Sums[hllstore.SumDurationMs] += uint64(s.GetEndMs() - s.GetStartMs())
				if s.GetBounce() {
					r.Sums[hllstore.SumBounces]++
				}
				continue
			}
			if k.Class != hllstore.Human {
				for _, reason := range ev.GetBotReasons() {
					r.AddReason(reason)
				}
			}
			if ev.GetOrderId() != "" {
				r.AddOrder(ev.GetOrderId(), ev.GetCurrency(), ev.GetValueMicros())
			}
		}
	}
	return ref
}

// referenceBreakdowns counts human events per breakdown value exactly once,
// with the same bound on values (first come, first kept).
func referenceBreakdowns(events []*pixelpb.Event, maxValues int) map[hllstore.BreakdownKey]*hllstore.Breakdown {
	ref := map[hllstore.BreakdownKey]*hllstore.Breakdown{}
	seen := map[string]bool{}
	for _, ev := range events {
		if !countedOrder(seen, ev) || classOf(ev) != hllstore.Human || ev.GetKind() == pixelpb.Kind_KIND_SESSION {
			continue // visits have no breakdowns
		}
		k := breakdownKey(ev)
		if ref[k] == nil {
			b := hllstore.NewBreakdown()
			ref[k] = &b
		}
		for _, dim := range hllstore.Dims() {
			if v := breakdownValue(ev, dim); v != "" || !optionalDim(dim) {
				ref[k].Add(dim, v, ev.GetVisitorKey(), maxValues)
			}
		}
		for _, p := range ev.GetProps() {
			ref[k].Add(hllstore.DimProp, p.GetKey()+"="+p.GetValue(), ev.GetVisitorKey(), maxValues)
		}
	}
	return ref
}

// TestPropertyReplaysCountOnce: any interleaving of the source partitions,
// with any replays injected, applied in batches of any size with flushes at
// any points and restarts of the aggregator (state rebuilt from Redis) in
// between, gives exactly the totals, sketch estimates, reasons, orders and
// values of counting each event once, and the visits, visitors and sums of
// counting each visit once: visits share offsets with hits and with each
// other (indexes), and come before or after the hit that closed them; and
// each recipient's activity (opens, clicks per link, orders, views) of
// counting each of its events once.
func TestPropertyReplaysCountOnce(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	ctx := context.Background()
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			store := hllstore.New(rdb, hllstore.Config{Prefix: fmt.Sprintf("%s:%d", prefix, seed)})
			events := withRecipients(rng, withVisits(rng, genEvents(rng, 300+rng.IntN(300))))
			stream := deliveries(rng, events)

			a := newTestAggregator(t, store)
			for i := 0; i < len(stream); {
				end := min(len(stream), i+1+rng.IntN(40))
				if err := a.apply(ctx, stream[i:end]); err != nil {
					t.Fatal(err)
				}
				i = end
				switch rng.IntN(6) {
				case 0:
					if err := a.flush(ctx, true); err != nil {
						t.Fatal(err)
					}
				case 1: // crash after a flush: a new aggregator reloads from Redis
					if err := a.flush(ctx, true); err != nil {
						t.Fatal(err)
					}
					a = newTestAggregator(t, store)
				}
			}
			if err := a.flush(ctx, true); err != nil {
				t.Fatal(err)
			}
			if a.stale {
				t.Fatal("a single owner had a write refused")
			}

			// Breakdowns: the bound keeps the first values seen, and the
			// order of first sight differs between the stream and the
			// reference, so compare the sums and the values both keep.
			bref := referenceBreakdowns(events, 4)
			var bkeys []hllstore.BreakdownKey
			for k := range bref {
				bkeys = append(bkeys, k)
			}
			bgot, err := store.LoadBreakdowns(ctx, bkeys)
			if err != nil {
				t.Fatal(err)
			}
			// Visits are neither broken down nor ranked.
			var vkeys []hllstore.BreakdownKey
			for _, ev := range events {
				if ev.GetKind() == pixelpb.Kind_KIND_SESSION {
					vkeys = append(vkeys, breakdownKey(ev))
				}
			}
			vgot, err := store.LoadBreakdowns(ctx, vkeys)
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range vgot {
				if len(b.Dims) != 0 {
					t.Fatalf("visits broken down: %+v: %v", vkeys[i], b.Dims)
				}
			}
			if top, err := store.Top(ctx, pixelpb.Kind_KIND_SESSION, hllstore.DayStart(hour0), hllstore.TopByTotal, 10); err != nil || len(top) != 0 {
				t.Fatalf("visits ranked: %v %v", top, err)
			}
			for i, k := range bkeys {
				for _, dim := range hllstore.Dims() {
					var sumGot, sumWant uint64
					for _, sc := range bgot[i].Dims[dim] {
						sumGot += sc.Total
					}
					for _, sc := range bref[k].Dims[dim] {
						sumWant += sc.Total
					}
					if sumGot != sumWant || len(bgot[i].Dims[dim]) > 5 {
						t.Fatalf("breakdown %+v %s: %d events in %d values, want %d events in at most 5", k, dim, sumGot, len(bgot[i].Dims[dim]), sumWant)
					}
				}
				// Two device types: under the bound, so exact per value.
				for v, sc := range bref[k].Dims[hllstore.DimDevice] {
					if g := bgot[i].Dims[hllstore.DimDevice][v]; g == nil || g.Total != sc.Total || g.Sketch.Estimate() != sc.Sketch.Estimate() {
						t.Fatalf("breakdown %+v device %s: got %+v, want total %d", k, v, g, sc.Total)
					}
				}
			}

			ref := reference(events)
			var keys []hllstore.Key
			for k := range ref {
				keys = append(keys, k)
			}
			got, err := store.Load(ctx, keys)
			if err != nil {
				t.Fatal(err)
			}
			visits := 0
			for i, k := range keys {
				want, g := ref[k], got[i]
				if g.Total != want.Total || g.Sketch.Estimate() != want.Sketch.Estimate() ||
					g.NOrders != uint64(len(want.Orders)) || g.Value["EUR"] != want.Value["EUR"] ||
					g.Reasons["headless"] != want.Reasons["headless"] || !maps.Equal(g.Sums, want.Sums) {
					t.Fatalf("%+v: got total %d est %d orders %d value %v reasons %v sums %v; want %d %d %d %v %v %v", k,
						g.Total, g.Sketch.Estimate(), g.NOrders, g.Value["EUR"], g.Reasons, g.Sums,
						want.Total, want.Sketch.Estimate(), len(want.Orders), want.Value["EUR"], want.Reasons, want.Sums)
				}
				if k.Kind == pixelpb.Kind_KIND_SESSION {
					visits++
				}
			}
			if visits == 0 {
				t.Fatal("no visit records to check")
			}
			checkRecipients(t, store, events)
		})
	}
}

// A stale owner, which loaded a record before another owner moved it on,
// cannot overwrite it, and knows it must rebuild.
func TestStaleOwnerIsRefused(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	events := genEvents(rand.New(rand.NewPCG(5, 5)), 60)
	for _, ev := range events {
		ev.ContentId, ev.Kind, ev.CampaignId, ev.Bot, ev.BotReasons, ev.OrderId = "c", pixelpb.Kind_KIND_VIEW, "", false, nil, ""
	}
	dayKey := hllstore.Key{ContentID: "c", Kind: pixelpb.Kind_KIND_VIEW, Gran: hllstore.GranularityDay, Start: hllstore.DayStart(hour0)}

	stale := newTestAggregator(t, store)
	if err := stale.apply(ctx, events[:10]); err != nil { // loads the empty records
		t.Fatal(err)
	}
	owner := newTestAggregator(t, store)
	if err := owner.apply(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := owner.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := stale.flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if !stale.stale {
		t.Fatal("the stale owner was not told its copy is stale")
	}
	recs, err := store.Load(ctx, []hllstore.Key{dayKey})
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Total != 60 {
		t.Fatalf("total %d after a stale write, want 60", recs[0].Total)
	}
}

func TestLateEvents(t *testing.T) {
	t.Parallel()
	a, err := New(DefaultConfig(), nil, prometheus.NewRegistry(), nil, nil, Outputs{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	at := func(d time.Duration) *pixelpb.Event {
		return &pixelpb.Event{Origin: &pixelpb.Origin{ReceivedAtMs: now.Add(-d).UnixMilli()}}
	}
	if a.isLate(at(7*24*time.Hour - time.Minute)) {
		t.Fatal("an event inside the horizon is late")
	}
	if !a.isLate(at(7*24*time.Hour + time.Minute)) {
		t.Fatal("an event past the horizon is not late")
	}
	if a.isLate(at(-time.Hour)) {
		t.Fatal("an event from an edge clock ahead is late")
	}
}

// TestOrderCountsOnce: a conversion whose order id its content id's day
// already counted (a reloaded thank-you page, a resent pixel) counts in
// nothing: not in conversions, orders or value, not in the hour series and
// not in breakdowns, even when it comes in another hour, class or campaign;
// and a replay of the event that counted the order still counts in
// breakdowns that were not written with the records (a crash between a
// record flush and a detail flush).
func TestOrderCountsOnce(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	conv := func(p int32, o int64, at int64, campaign string, bot bool, micros int64) *pixelpb.Event {
		ev := &pixelpb.Event{
			ContentId: "shop", Kind: pixelpb.Kind_KIND_CONVERSION, CampaignId: campaign, Country: "DE", DeviceType: "desktop",
			Origin: &pixelpb.Origin{ReceivedAtMs: at}, Source: &pixelpb.SourcePosition{Partition: p, Offset: o},
			VisitorKey: uint64(p+1) * 1000003, OrderId: "order-1", Currency: "EUR", ValueMicros: micros,
		}
		if bot {
			ev.Bot, ev.BotReasons = true, []string{"headless"}
		}
		return ev
	}
	first := conv(0, 10, hour0+60_000, "", false, 25_000_000)
	dups := []*pixelpb.Event{
		conv(1, 5, hour0+120_000, "", false, 25_000_000),          // the same order again
		conv(2, 7, hour0+2*3600_000, "spring", false, 99_000_000), // two hours later, with a campaign and another value
		conv(3, 9, hour0+3*3600_000, "", true, 25_000_000),        // from a bot
	}
	other := conv(0, 11, hour0+180_000, "", false, 5_000_000)
	other.OrderId = "order-2"
	noID := conv(0, 12, hour0+240_000, "", false, 0)
	noID.OrderId, noID.Currency = "", "" // conversions without an order id count per event

	a := newTestAggregator(t, store)
	if err := a.apply(ctx, append([]*pixelpb.Event{first, other, noID}, dups...)); err != nil {
		t.Fatal(err)
	}
	if err := a.flush(ctx, false); err != nil { // records only
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(a.m.dupOrder); n != 3 {
		t.Errorf("duplicate_order events: %v, want 3", n)
	}
	// A crash before the detail flush: a new owner replays everything, the
	// duplicates first.
	a = newTestAggregator(t, store)
	if err := a.apply(ctx, append(append([]*pixelpb.Event{}, dups...), first, other, noID)); err != nil {
		t.Fatal(err)
	}
	if err := a.flush(ctx, true); err != nil {
		t.Fatal(err)
	}

	day := hllstore.DayStart(hour0)
	key := func(campaign string, class hllstore.Class, gran hllstore.Granularity, start int64) hllstore.Key {
		return hllstore.Key{ContentID: "shop", Campaign: campaign, Kind: pixelpb.Kind_KIND_CONVERSION, Class: class, Gran: gran, Start: start}
	}
	dayGran, hourGran := hllstore.GranularityDay, hllstore.GranularityHour
	keys := []hllstore.Key{
		key("", hllstore.Human, dayGran, day), key("", hllstore.Human, hourGran, hour0),
		key("", hllstore.Human, hourGran, hour0+2*3600_000), key("spring", hllstore.Human, dayGran, day),
		key("", hllstore.Bot, dayGran, day),
	}
	got, err := store.Load(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		total, orders uint64
		eur           int64
	}{{3, 2, 30_000_000}, {3, 2, 30_000_000}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}}
	for i, w := range want {
		g := got[i]
		if g.Total != w.total || g.NOrders != w.orders || g.Value["EUR"] != money.Of(w.eur) {
			t.Errorf("%+v: total %d orders %d EUR %s; want %d %d %d", keys[i], g.Total, g.NOrders, g.Value["EUR"].Micros(), w.total, w.orders, w.eur)
		}
	}
	bd, err := store.LoadBreakdowns(ctx, []hllstore.BreakdownKey{{ContentID: "shop", Kind: pixelpb.Kind_KIND_CONVERSION, DayStart: day}})
	if err != nil {
		t.Fatal(err)
	}
	if sc := bd[0].Dims[hllstore.DimCountry]["DE"]; sc == nil || sc.Total != 3 {
		t.Errorf("country breakdown of conversions: %+v, want DE 3 (two orders once each, one conversion without an order id)", sc)
	}
	if n := testutil.ToFloat64(a.m.dupOrder); n != 0 {
		t.Errorf("duplicate_order events in the replay: %v, want 0 (their positions were written)", n)
	}
}

// TestRevenueCannotOverflow: ten orders of the largest value the edge
// accepts sum past int64 millionths (where an int64 sum turned negative)
// and are stored and read back exactly, through a flush and a new owner.
func TestRevenueCannotOverflow(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	const maxValue = 999_999_999_999_999_999 // 999999999999.999999 units
	var events []*pixelpb.Event
	for i := range 10 {
		events = append(events, &pixelpb.Event{
			ContentId: "shop", Kind: pixelpb.Kind_KIND_CONVERSION, Origin: &pixelpb.Origin{ReceivedAtMs: hour0},
			Source: &pixelpb.SourcePosition{Partition: 0, Offset: int64(i)}, VisitorKey: uint64(i + 1),
			OrderId: fmt.Sprint("big-", i), Currency: "EUR", ValueMicros: maxValue,
		})
	}
	for _, batch := range [][]*pixelpb.Event{events[:5], events[5:]} {
		a := newTestAggregator(t, store) // the second loads the first's sums
		if err := a.apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := a.flush(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.Load(ctx, []hllstore.Key{{ContentID: "shop", Kind: pixelpb.Kind_KIND_CONVERSION, Gran: hllstore.GranularityDay, Start: hllstore.DayStart(hour0)}})
	if err != nil {
		t.Fatal(err)
	}
	if v := got[0].Value["EUR"]; v.Micros() != "9999999999999999990" || v.Units() != "9999999999999.99999" || got[0].NOrders != 10 {
		t.Fatalf("revenue %s micros (%s EUR), %d orders; want 9999999999999999990, 9999999999999.99999, 10", v.Micros(), v.Units(), got[0].NOrders)
	}
}

//go:build integration

package hllstore

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/money"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// count returns a count of total events of visitors.
func count(total uint64, visitors ...uint64) Count {
	c := NewCount()
	for _, v := range visitors {
		c.Sketch.InsertHash(v)
	}
	c.Total = total
	return c
}

func TestSaveLoadAndWriteGuard(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix, DayRetention: time.Hour, HourRetention: time.Minute})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC).UnixMilli())
	k := Key{ContentID: "a-1", Kind: pixelpb.Kind_KIND_VIEW, Gran: GranularityDay, Start: day}
	dk, id := k.Split()
	hk := k
	hk.Gran, hk.Start = GranularityHour, day+15*HourMs
	_, hid := hk.Split()

	days, err := s.LoadDays(ctx, []DayKey{dk})
	if err != nil || days[0].Version != 0 || len(days[0].Records) != 0 || len(days[0].Pos) != 0 {
		t.Fatalf("empty load: %+v %v", days, err)
	}
	// build makes the state a writer holds: loaded at version ver and
	// token tok, positions pos, and total events of visitors in the day
	// record and the 15:00 hour record.
	build := func(ver uint64, tok string, pos Positions, total uint64, visitors ...uint64) *Day {
		d := NewDay()
		d.Version, d.guard, d.Pos = ver, tok, pos
		for _, rid := range []RecordID{id, hid} {
			r := d.Record(rid)
			for _, v := range visitors {
				r.Add(v)
			}
			r.Total = total
		}
		return d
	}
	save := func(d *Day, details bool) bool {
		t.Helper()
		w, err := s.SaveDays(ctx, []DayWrite{{Key: dk, Day: d, Details: details}})
		if err != nil {
			t.Fatal(err)
		}
		return w[0]
	}
	v1 := build(0, "", Positions{0: 10, 1: 5}, 3, 0x1111111111111111, 0x2222222222222222, 0x3333333333333333)
	retry := build(0, "", Positions{0: 10, 1: 5}, 3, 0x1111111111111111, 0x2222222222222222, 0x3333333333333333)
	if !save(v1, false) || v1.Version != 1 || v1.guard == "" || v1.Records[id].Dirty() {
		t.Fatalf("first save refused, version %d", v1.Version)
	}
	// The same write again (a go-redis retry after a lost reply) is refused:
	// the token it was made over is gone.
	if save(retry, false) {
		t.Fatal("retried save was accepted")
	}
	// A writer that loaded the day earlier (a stale owner) is refused, and
	// so is one whose version matches but whose token does not: a writer
	// whose last write Redis lost, after another loaded the older state and
	// wrote the same version number over it.
	if save(build(0, "", Positions{0: 50, 1: 50}, 99), false) {
		t.Fatal("stale save was accepted")
	}
	if save(build(1, "someone-else", Positions{0: 50, 1: 50}, 99), false) {
		t.Fatal("save over another writer's token was accepted")
	}
	// Breakdowns and their positions are written at detail writes.
	b1 := build(1, v1.guard, Positions{0: 10, 1: 5}, 3)
	b1.BPos = Positions{0: 7}
	b1.Breakdown(pixelpb.Kind_KIND_VIEW).Add(DimCountry, "DE", 1, 10)
	if !save(b1, true) || b1.Version != 2 || b1.guard == v1.guard {
		t.Fatal("breakdown save refused")
	}
	b2 := build(2, v1.guard, Positions{0: 10, 1: 5}, 3)
	b2.BPos = Positions{0: 8}
	b2.Breakdown(pixelpb.Kind_KIND_VIEW).Add(DimCountry, "FR", 1, 10)
	if save(b2, true) {
		t.Fatal("save over an older token was accepted")
	}

	recs, err := s.Load(ctx, []Key{k, hk})
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range recs {
		if got.Total != 3 || got.Sketch.Estimate() != 3 || got.Version == 0 {
			t.Fatalf("loaded %+v, estimate %d", got, got.Sketch.Estimate())
		}
	}
	days, err = s.LoadDays(ctx, []DayKey{dk})
	if err != nil {
		t.Fatal(err)
	}
	got := days[0]
	if got.Version != 2 || got.guard != b1.guard || len(got.Pos) != 2 || got.Pos[0] != 10 || got.Pos[1] != 5 || len(got.BPos) != 1 || got.BPos[0] != 7 {
		t.Fatalf("loaded day version %d pos %v bpos %v", got.Version, got.Pos, got.BPos)
	}
	if !got.Pos.Covers(0, 10) || got.Pos.Covers(0, 11) || got.Pos.Covers(7, 0) {
		t.Fatal("Covers disagrees with the stored positions")
	}
	if sc := got.Breakdowns[pixelpb.Kind_KIND_VIEW].Dims[DimCountry]["DE"]; sc == nil || sc.Total != 1 {
		t.Fatalf("breakdown %v", got.Breakdowns)
	}
	dayKey, hourKey, bdKey := s.DayRedisKeys(dk)
	// The day's record lists: one of its day records, one per hour.
	lists, err := rdb.HMGet(ctx, dayKey, "a-1|ids", "a-1|ids|15", "a-1|ids|14").Result()
	if err != nil || lists[0] != "2|0|" || lists[1] != "15|2|0|" || lists[2] != nil {
		t.Fatalf("record lists %q %v", lists, err)
	}
	for _, c := range []struct {
		key      string
		min, max time.Duration
	}{{dayKey, time.Minute, time.Hour}, {bdKey, time.Minute, time.Hour}, {hourKey, 0, time.Minute}} {
		if ttl, err := rdb.TTL(ctx, c.key).Result(); err != nil || ttl <= c.min || ttl > c.max {
			t.Fatalf("%s ttl %v %v, want in (%v, %v]", c.key, ttl, err, c.min, c.max)
		}
	}
}

func TestReasonsOrdersAndCampaignIndex(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli())
	k := Key{ContentID: "shop", Campaign: "spring", Kind: pixelpb.Kind_KIND_CONVERSION, Class: Bot, Gran: GranularityDay, Start: day}
	dk, id := k.Split()

	d := NewDay()
	r := d.Record(id)
	for range 3 {
		r.Add(7)
	}
	r.AddReason("headless")
	r.AddReason("headless")
	r.AddReason("datacenter")
	if !r.AddOrder("o-1", "EUR", 12_500_000) || r.AddOrder("o-1", "EUR", 12_500_000) || !r.AddOrder("o-2", "USD", 1_000_000) {
		t.Fatal("AddOrder does not count each order once")
	}
	save := func() {
		t.Helper()
		if w, err := s.SaveDays(ctx, []DayWrite{{Key: dk, Day: d}}); err != nil || !w[0] {
			t.Fatalf("save: %v %v", w, err)
		}
	}
	d.Pos[2] = 30
	save()
	// A later write adds an order; earlier orders stay.
	d.Pos[2] = 31
	r.AddOrder("o-3", "EUR", 500_000)
	save()
	recs, err := s.Load(ctx, []Key{k})
	if err != nil {
		t.Fatal(err)
	}
	got := recs[0]
	if got.Total != 3 || got.Reasons["headless"] != 2 || got.Reasons["datacenter"] != 1 {
		t.Fatalf("total %d reasons %v", got.Total, got.Reasons)
	}
	if got.NOrders != 3 || got.Value["EUR"] != money.Of(13_000_000) || got.Value["USD"] != money.Of(1_000_000) {
		t.Fatalf("orders %d value %v", got.NOrders, got.Value)
	}
	// The reloaded day knows its orders: a replayed order is not new.
	days, err := s.LoadDays(ctx, []DayKey{dk})
	if err != nil {
		t.Fatal(err)
	}
	if lr := days[0].Records[id]; lr == nil || len(lr.Orders) != 3 || lr.NOrders != 3 || lr.AddOrder("o-2", "USD", 1_000_000) {
		t.Fatalf("an order loaded from Redis counted again: %+v", lr)
	}
	ids, err := s.CampaignContents(ctx, "spring", day)
	if err != nil || len(ids) != 1 || ids[0] != "shop" {
		t.Fatalf("campaign index %v %v", ids, err)
	}
}

func TestBreakdownBoundTopAndWatermark(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli())
	k := BreakdownKey{ContentID: "a", Kind: pixelpb.Kind_KIND_VIEW, DayStart: day}
	dk := DayKey{ContentID: "a", DayStart: day}

	d := NewDay()
	b := d.Breakdown(pixelpb.Kind_KIND_VIEW)
	for i, c := range []string{"DE", "FR", "DE", "", "US", "NL", "DE"} {
		b.Add(DimCountry, c, uint64(i+1)*0x9e3779b97f4a7c15, 3) // at most 3 values, then "other"
		b.Add(DimDevice, "mobile", uint64(i+1)*0x9e3779b97f4a7c15, 3)
	}
	d.BPos[0] = 7
	if w, err := s.SaveDays(ctx, []DayWrite{{Key: dk, Day: d, Details: true}}); err != nil || !w[0] {
		t.Fatalf("save: %v %v", w, err)
	}
	got, err := s.LoadBreakdowns(ctx, []BreakdownKey{k})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"DE": 3, "FR": 1, Unknown: 1, Other: 2}
	countries := got[0].Dims[DimCountry]
	if len(countries) != len(want) {
		t.Fatalf("values %v", countries)
	}
	for v, n := range want {
		if sc := countries[v]; sc == nil || sc.Total != n || sc.Sketch.Estimate() != n {
			t.Fatalf("%s: %+v, want %d", v, sc, n)
		}
	}
	if sc := got[0].Dims[DimDevice]["mobile"]; sc == nil || sc.Total != 7 || len(got[0].Dims[DimDevice]) != 1 {
		t.Fatalf("devices %v", got[0].Dims[DimDevice])
	}
	// A stale copy of the breakdown is refused.
	stale := NewDay()
	stale.Breakdown(pixelpb.Kind_KIND_VIEW).Add(DimCountry, "SE", 1, 3)
	stale.BPos[0] = 9
	if w, _ := s.SaveDays(ctx, []DayWrite{{Key: dk, Day: stale, Details: true}}); w[0] {
		t.Fatal("stale breakdown accepted")
	}

	// Top index: scores only move up.
	rk := func(cid string) Key {
		return Key{ContentID: cid, Kind: pixelpb.Kind_KIND_VIEW, Gran: GranularityDay, Start: day}
	}
	v := func(i uint64) uint64 { return i * 0x9e3779b97f4a7c15 }
	big, small := count(50, v(1), v(2)), count(5, v(1), v(2), v(3))
	if err := s.RaiseTop(ctx, []TopUpdate{{rk("big"), big.Total, big.Sketch.Estimate()}, {rk("small"), small.Total, small.Sketch.Estimate()}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RaiseTop(ctx, []TopUpdate{{rk("big"), 1, 0}}); err != nil { // a stale owner's lower score
		t.Fatal(err)
	}
	top, err := s.Top(ctx, pixelpb.Kind_KIND_VIEW, day, TopByTotal, 10)
	if err != nil || len(top) != 2 || top[0] != (TopEntry{"big", 50}) || top[1] != (TopEntry{"small", 5}) {
		t.Fatalf("top by total %v %v", top, err)
	}
	top, _ = s.Top(ctx, pixelpb.Kind_KIND_VIEW, day, TopByUniques, 1)
	if len(top) != 1 || top[0] != (TopEntry{"small", 3}) {
		t.Fatalf("top by uniques %v", top)
	}

	if err := s.WriteWatermarks(ctx, map[int32]Watermark{0: {CompleteUntilMs: 100, WrittenAtMs: 200}, 3: {CompleteUntilMs: 50, WrittenAtMs: 210}}); err != nil {
		t.Fatal(err)
	}
	wms, err := s.Watermarks(ctx)
	if err != nil || len(wms) != 2 || wms[0] != (Watermark{100, 200}) || wms[3] != (Watermark{50, 210}) {
		t.Fatalf("watermarks %v %v", wms, err)
	}
}

// TestSaveDaysInGroups writes many days in one SaveDays: several share a
// group (one script call each, split above maxDaysPerCall), and a refused
// day in a call leaves the others of that call written.
func TestSaveDaysInGroups(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC).UnixMilli())
	// 150 content ids of one group (three calls), and 100 of any group.
	var keys []DayKey
	for i := 0; len(keys) < 150; i++ {
		if c := "g-" + strconv.Itoa(i); GroupOf(c) == "2a" {
			keys = append(keys, DayKey{ContentID: c, DayStart: day})
		}
	}
	for i := range 100 {
		keys = append(keys, DayKey{ContentID: "any-" + strconv.Itoa(i), DayStart: day})
	}
	id := RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}
	hid := RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: 9}
	oid := RecordID{Kind: pixelpb.Kind_KIND_CONVERSION, Hour: DayRecord}
	write := func(days []*Day, n uint64) []bool {
		t.Helper()
		ws := make([]DayWrite, len(keys))
		for i, k := range keys {
			d := days[i]
			d.Pos[0] = int64(n)
			r := d.Record(id)
			r.Add(uint64(i+1) * 0x9e3779b97f4a7c15)
			r.Total = n + uint64(i)
			// Every fifth day also has an hour record, an order, a
			// breakdown value, and is written with its details: calls mix
			// days with and without order hashes and breakdowns.
			details := i%5 == 0
			if details {
				d.Record(hid).Add(uint64(i + 1))
				d.Record(oid).AddOrder("ord-"+strconv.FormatUint(n, 10), "EUR", 1_000_000)
				d.BPos[0] = int64(n)
				d.Breakdown(pixelpb.Kind_KIND_VIEW).Add(DimCountry, "c"+strconv.FormatUint(n, 10), uint64(i+1), 50)
			}
			ws[i] = DayWrite{Key: k, Day: d, Details: details}
		}
		written, err := s.SaveDays(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		return written
	}
	days, err := s.LoadDays(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range write(days, 1) {
		if !ok {
			t.Fatalf("first write of %s refused", keys[i].ContentID)
		}
	}
	// Every third day's holder lost its token (a stale copy): only those
	// are refused.
	for i := 0; i < len(days); i += 3 {
		days[i].guard = "stale"
	}
	for i, ok := range write(days, 10) {
		if ok != (i%3 != 0) {
			t.Fatalf("%s: written %v", keys[i].ContentID, ok)
		}
	}
	got, err := s.LoadDays(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range got {
		want, ver := uint64(10+i), uint64(2)
		if i%3 == 0 {
			want, ver = uint64(1+i), 1
		}
		if r := d.Records[id]; r == nil || r.Total != want || d.Version != ver || d.Pos[0] != int64(want-uint64(i)) {
			t.Fatalf("%s: %+v version %d pos %v, want total %d version %d", keys[i].ContentID, r, d.Version, d.Pos, want, ver)
		}
		if i%5 != 0 {
			if len(d.Records) != 1 || len(d.Breakdowns) != 0 {
				t.Fatalf("%s: records %v breakdowns %v", keys[i].ContentID, d.Records, d.Breakdowns)
			}
			continue
		}
		// Written twice, or (refused the second time) once.
		orders, countries := 2, 2
		if i%3 == 0 {
			orders, countries = 1, 1
		}
		o := d.Records[oid]
		b := d.Breakdowns[pixelpb.Kind_KIND_VIEW]
		if o == nil || len(o.Orders) != orders || o.NOrders != uint64(orders) || o.Value["EUR"] != money.Of(int64(orders)*1_000_000) ||
			d.Records[hid] == nil || b == nil || len(b.Dims[DimCountry]) != countries || d.BPos[0] != int64(want-uint64(i)) {
			t.Fatalf("%s: order record %+v, breakdowns %+v, bpos %v, want %d orders and countries", keys[i].ContentID, o, b, d.BPos, orders)
		}
	}
}

// A top-N set keeps the TopDepth best content ids of its day however many
// are raised, and a content id left out or trimmed enters when its score
// rises above the last kept.
func TestTopDepth(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC).UnixMilli())
	up := func(cid string, score uint64) TopUpdate {
		return TopUpdate{Key: Key{ContentID: cid, Kind: pixelpb.Kind_KIND_VIEW, Gran: GranularityDay, Start: day}, Total: score, Uniques: score}
	}
	const n = TopDepth + 500
	var ups []TopUpdate
	for i := 1; i <= n; i++ {
		ups = append(ups, up("c"+strconv.Itoa(i), uint64(i)))
	}
	// In two calls: the second finds the set full and sends only what is
	// above its last.
	if err := s.RaiseTop(ctx, ups[:TopDepth+100]); err != nil {
		t.Fatal(err)
	}
	if err := s.RaiseTop(ctx, ups[TopDepth+100:]); err != nil {
		t.Fatal(err)
	}
	key := s.topKey(pixelpb.Kind_KIND_VIEW, day, TopByTotal)
	check := func(first TopEntry, last string) {
		t.Helper()
		if c := rdb.ZCard(ctx, key).Val(); c != TopDepth {
			t.Fatalf("top set holds %d content ids, want %d", c, TopDepth)
		}
		top, err := s.Top(ctx, pixelpb.Kind_KIND_VIEW, day, TopByTotal, n)
		if err != nil || len(top) != TopDepth || top[0] != first || top[TopDepth-1].ContentID != last {
			t.Fatalf("top: %d entries, first %v, last %v, %v; want %v ... %s", len(top), top[0], top[len(top)-1], err, first, last)
		}
	}
	check(TopEntry{"c1500", n}, "c501")
	// Below the last kept: left out. Above: in, and the last drops out.
	if err := s.RaiseTop(ctx, []TopUpdate{up("low", 10), up("c3", 2000)}); err != nil {
		t.Fatal(err)
	}
	check(TopEntry{"c3", 2000}, "c502")
	if rdb.ZScore(ctx, key, "low").Err() == nil {
		t.Fatal("a score below the last kept entered the top set")
	}
}

// A server without the save script cached (restarted, or a replica just
// promoted: Redis does not replicate its script cache) gets the script's
// text and runs it: every day is written once.
func TestSaveDaysWithoutCachedScript(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	day := DayStart(time.Date(2026, 5, 6, 0, 0, 0, 0, time.UTC).UnixMilli())
	id := RecordID{Kind: pixelpb.Kind_KIND_VIEW, Hour: DayRecord}
	var writes []DayWrite
	for i := range 40 { // several groups, so several servers of a cluster
		d := NewDay()
		d.Record(id).Add(uint64(i) + 1)
		d.Pos[0] = int64(i)
		writes = append(writes, DayWrite{Key: DayKey{ContentID: "n" + strconv.Itoa(i), DayStart: day}, Day: d})
	}
	for round := range 2 {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for _, w := range writes {
			w.Day.Record(id).Add(uint64(100 + round))
			w.Day.Pos[0] += 100
		}
		ok, err := s.SaveDays(ctx, writes)
		if err != nil || slices.Contains(ok, false) {
			t.Fatalf("round %d: %v %v", round, ok, err)
		}
	}
	for _, w := range writes {
		got, err := s.Load(ctx, []Key{w.Key.Key(id)})
		if err != nil || got[0].Total != 3 || got[0].Version != 2 {
			t.Fatalf("%s: %+v %v, want 3 events in 2 writes", w.Key.ContentID, got[0], err)
		}
	}
}

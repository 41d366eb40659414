//go:build integration

package hllstore

import (
	"context"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// rkey is a recipient key whose first byte (its bucket) is b.
func rkey(b, n byte) RecipientKey {
	return RecipientKey{b, n, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, n}
}

// Recipient activity goes with its day's write: the script merges a change
// into what is stored (opens add, first and last open keep the earliest
// and latest, orders once), readers merge over days and content ids, links
// count clicks and distinct clickers, and a refused write of a stale copy
// adds nothing.
func TestRecipientActivity(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	s := New(rdb, Config{Prefix: prefix, RecipientRetention: 48 * time.Hour, RecipientRetentionFor: map[string]time.Duration{"acme/other": 72 * time.Hour, "globex": time.Hour}})
	ctx := context.Background()
	day1 := DayStart(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	day2 := day1 + 24*HourMs
	a1 := DayKey{ContentID: "acme:mail-1", DayStart: day1}
	a2 := DayKey{ContentID: "acme:mail-1", DayStart: day2}
	b1 := DayKey{ContentID: "acme:landing", DayStart: day1}
	ann, bob, cat := rkey(3, 1), rkey(3, 2), rkey(200, 3)
	const shop, blog = "https://shop.example/sale", "https://blog.example/post"
	open := RecordID{Kind: pixelpb.Kind_KIND_OPEN, Campaign: "spring", Hour: DayRecord}

	save := func(dk DayKey, d *Day) {
		t.Helper()
		d.Record(open).Add(1) // activity goes with a change of the records
		if w, err := s.SaveDays(ctx, []DayWrite{{Key: dk, Day: d}}); err != nil || !w[0] {
			t.Fatalf("save %v: %v %v", dk, w, err)
		}
	}
	d1 := NewDay()
	d1.Recipient("spring", ann).AddOpen(day1+5000, false)
	d1.Recipient("spring", ann).AddOpen(day1+1000, true)
	d1.Recipient("spring", ann).UID = "ann@example.com"
	d1.Recipient("spring", bob).AddOpen(day1+2000, true)
	d1.Recipient("spring", bob).AddClick(blog, true)
	d1.Recipient("other", ann).AddOpen(day1+1, false)
	save(a1, d1)
	// A second write of the day merges into the stored activity.
	d1.Recipient("spring", ann).AddOpen(day1+3000, false)
	d1.Recipient("spring", ann).AddClick(shop, false)
	d1.Recipient("spring", ann).AddConversion("o-1", 25_000_000, "EUR")
	save(a1, d1)
	// A stale copy (loaded before that write) is refused, and its activity
	// with it.
	stale, err := s.LoadDays(ctx, []DayKey{a1})
	if err != nil {
		t.Fatal(err)
	}
	d1.Recipient("spring", cat).AddOpen(day1, false)
	save(a1, d1)
	stale[0].Recipient("spring", ann).AddOpen(day1+9, false)
	stale[0].Record(open).Add(2)
	if w, err := s.SaveDays(ctx, []DayWrite{{Key: a1, Day: stale[0]}}); err != nil || w[0] {
		t.Fatalf("stale save: %v %v", w, err)
	}
	d2 := NewDay()
	d2.Recipient("spring", ann).AddOpen(day2+7000, false)
	d2.Recipient("spring", ann).AddClick(shop, false)
	d2.Recipient("spring", ann).AddConversion("o-1", 25_000_000, "EUR") // the same order on another day
	save(a2, d2)
	e1 := NewDay()
	e1.Recipient("spring", ann).AddClick(blog, false)
	e1.Recipient("spring", ann).AddConversion("o-2", 5_000_000, "EUR")
	save(b1, e1)

	days := []DayKey{a1, a2, b1}
	got, err := s.ReadRecipients(ctx, "spring", days, 0, RecipientBuckets)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d recipients, want 3: %v", len(got), got)
	}
	a := got[ann]
	if a.UID != "ann@example.com" || a.Opens != 3 || a.FirstOpenMs != day1+3000 || a.LastOpenMs != day2+7000 || a.MachineOpens != 1 ||
		a.FirstMachineOpenMs != day1+1000 || a.Clicks[LinkID(shop)] != 2 || a.Clicks[LinkID(blog)] != 1 || len(a.Orders) != 2 {
		t.Fatalf("ann %+v", a)
	}
	if b := got[bob]; !b.MachineOnly() || b.MachineClicks != 1 {
		t.Fatalf("bob %+v", b)
	}
	// One bucket, and one recipient, read alone.
	part, err := s.ReadRecipients(ctx, "spring", days, 200, 201)
	if err != nil || len(part) != 1 || part[cat] == nil || part[cat].Opens != 1 {
		t.Fatalf("bucket 200: %v %v", part, err)
	}
	one, err := s.ReadRecipient(ctx, "spring", days, ann, rkey(9, 9))
	if err != nil || len(one) != 1 || one[ann].Opens != 3 {
		t.Fatalf("ReadRecipient: %v %v", one, err)
	}
	other, _ := s.ReadRecipients(ctx, "other", days, 0, RecipientBuckets)
	if len(other) != 1 || other[ann].Opens != 1 || other[ann].UID != "" {
		t.Fatalf("campaign other: %v", other)
	}

	links, err := s.CampaignLinks(ctx, "spring", days, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []Link{
		{ID: LinkID(shop), Destination: shop, Clicks: 2, Clickers: 1},
		{ID: LinkID(blog), Destination: blog, Clicks: 1, MachineClicks: 1, Clickers: 1},
	}
	if len(links) != 2 || links[0] != want[0] || links[1] != want[1] {
		t.Fatalf("links %+v\nwant %+v", links, want)
	}
	// Retention: the default, and a campaign's own.
	for _, c := range []struct {
		key  string
		want time.Duration
	}{
		{s.recipientBucketKey(a1, "spring", 3), 48 * time.Hour},
		{s.linksKey(a1, "spring"), 48 * time.Hour},
		{s.clickersKey(a2, "spring", 3), 48 * time.Hour},
		{s.recipientBucketKey(a1, "other", 3), 72 * time.Hour},
	} {
		if ttl := rdb.TTL(ctx, c.key).Val(); ttl <= c.want-time.Minute || ttl > c.want {
			t.Fatalf("%s: ttl %s, want %s", c.key, ttl, c.want)
		}
	}

	// Erasure: ann's activity goes from every day, campaign and link of
	// tenant acme; the others' stays.
	n, err := s.EraseRecipient(ctx, "acme", ann, day2)
	if err != nil || n != 4 {
		t.Fatalf("erase: %d %v", n, err)
	}
	for _, c := range []string{"spring", "other"} {
		left, err := s.ReadRecipient(ctx, c, days, ann)
		if err != nil || len(left) != 0 {
			t.Fatalf("campaign %s after erasure: %v %v", c, left, err)
		}
	}
	if got, _ := s.ReadRecipients(ctx, "spring", days, 0, RecipientBuckets); len(got) != 2 {
		t.Fatalf("after erasure %d recipients, want 2", len(got))
	}
	links, _ = s.CampaignLinks(ctx, "spring", days, true)
	if links[0].Clickers != 0 || links[0].Clicks != 2 || links[1].Clickers != 0 {
		t.Fatalf("links after erasure %+v (clicks stay as numbers, clickers go)", links)
	}
	v, erased, err := s.Erasures(ctx, 0)
	if err != nil || v != 1 || erased[ann] != day2 {
		t.Fatalf("erasures: %d %v %v", v, erased, err)
	}
	if v2, again, _ := s.Erasures(ctx, v); v2 != v || again != nil {
		t.Fatalf("erasures unchanged: %d %v", v2, again)
	}
}

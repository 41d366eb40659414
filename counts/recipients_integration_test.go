//go:build integration

package counts

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Paging a campaign's recipients: every recipient comes exactly once, in
// key order, whatever the page size and however dense the buckets, over
// the campaign's content ids and days, and a filter keeps exactly its
// recipients.
func TestRecipientPaging(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	r := NewReader(store)
	ctx := context.Background()
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const n = 3000
	key := func(i int) hllstore.RecipientKey {
		var k hllstore.RecipientKey
		binary.BigEndian.PutUint64(k[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.BigEndian.PutUint64(k[8:], uint64(i))
		if i%10 == 0 {
			k[0] = 7 // a dense bucket
		}
		return k
	}
	// Recipients on two content ids and two days; clickers are rare.
	for d := range 2 {
		for _, cid := range []string{"acme:mail", "acme:web"} {
			dk := hllstore.DayKey{ContentID: cid, DayStart: day.Add(time.Duration(d) * 24 * time.Hour).UnixMilli()}
			dd := hllstore.NewDay()
			dd.Record(hllstore.RecordID{Kind: pixelpb.Kind_KIND_OPEN, Campaign: "spring", Hour: hllstore.DayRecord}).Add(1)
			for i := range n {
				if (i+d)%3 == 0 && cid == "acme:web" {
					continue
				}
				a := dd.Recipient("spring", key(i))
				a.AddOpen(dk.DayStart+int64(i), i%4 == 0)
				if i%97 == 0 && d == 1 {
					a.AddClick("https://x.example/", false)
				}
			}
			if w, err := store.SaveDays(ctx, []hllstore.DayWrite{{Key: dk, Day: dd}}); err != nil || !w[0] {
				t.Fatalf("save: %v %v", w, err)
			}
		}
	}
	sc := RecipientScope{Campaign: "spring", From: day, To: day.Add(48 * time.Hour)}
	for _, c := range []struct {
		limit  int
		filter RecipientFilter
		want   func(i int) bool
	}{
		{1000, AllRecipients, func(int) bool { return true }},
		{7, AllRecipients, func(int) bool { return true }},
		{333, Clicked, func(i int) bool { return i%97 == 0 }},
		{250, MachineOnly, func(i int) bool { return i%4 == 0 && i%97 != 0 }},
		{5000, Opened, func(i int) bool { return i%4 != 0 }},
	} {
		want := map[hllstore.RecipientKey]bool{}
		for i := range n {
			if c.want(i) {
				want[key(i)] = true
			}
		}
		seen := map[hllstore.RecipientKey]bool{}
		var last []byte
		cursor, pages := "", 0
		for {
			page, err := r.Recipients(ctx, sc, c.filter, cursor, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(page.Recipients) > c.limit {
				t.Fatalf("page of %d, limit %d", len(page.Recipients), c.limit)
			}
			for _, row := range page.Recipients {
				if last != nil && bytes.Compare(row.Key[:], last) <= 0 {
					t.Fatalf("limit %d: key %s not after the last", c.limit, row.Key)
				}
				last = append(last[:0], row.Key[:]...)
				if seen[row.Key] || !want[row.Key] {
					t.Fatalf("limit %d filter %d: %s listed twice or unwanted", c.limit, c.filter, row.Key)
				}
				seen[row.Key] = true
				if row.Opens+row.MachineOpens == 0 {
					t.Fatalf("%s without its opens", row.Key)
				}
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		if len(seen) != len(want) {
			t.Fatalf("limit %d filter %d: %d listed, want %d", c.limit, c.filter, len(seen), len(want))
		}
		t.Logf("limit %d filter %d: %d recipients in %d pages", c.limit, c.filter, len(seen), pages)
	}
	// A recipient seen on both content ids and days is merged.
	got, err := r.Recipient(ctx, sc, key(1))
	if err != nil || got[key(1)] == nil || got[key(1)].Opens != 4 {
		t.Fatalf("merged recipient 1: %+v %v", got[key(1)], err)
	}
	for _, bad := range []string{"x", "300", "5.00", "3.0700000000000000000000000000000000"} {
		if _, err := r.Recipients(ctx, sc, AllRecipients, bad, 10); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

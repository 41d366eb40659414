//go:build integration

package query

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// seedCampaign writes the recipient activity of a campaign of n
// recipients on one content id over three days, as the aggregator writes
// it (SaveDays, 20,000 recipients a write): day 1 every recipient's first
// open, a mail proxy's for 4 in 10 and a person's for 6 in 10 (2 in 10
// both), with the uid as sent (a sender that asked for it); day 2 a second
// open by a quarter; day 3 clicks on one of three links by 4 %, an order by
// 1 %. It returns the scope's days.
func seedCampaign(b *testing.B, store *hllstore.Store, n int, day0 time.Time) {
	b.Helper()
	ctx := context.Background()
	keyer := visitor.NewKeyer("bench-secret")
	open := hllstore.RecordID{Kind: pixelpb.Kind_KIND_OPEN, Campaign: "launch", Hour: hllstore.DayRecord}
	links := []string{"https://shop.example/launch", "https://shop.example/pricing", "https://blog.example/launch-story"}
	for d := range 3 {
		dk := hllstore.DayKey{ContentID: "acme:nl-7", DayStart: day0.Add(time.Duration(d) * 24 * time.Hour).UnixMilli()}
		day := hllstore.NewDay()
		pending := 0
		save := func() {
			day.Record(open).Add(uint64(pending))
			if w, err := store.SaveDays(ctx, []hllstore.DayWrite{{Key: dk, Day: day}}); err != nil || !w[0] {
				b.Fatalf("seed: %v %v", w, err)
			}
			pending = 0
		}
		for i := range n {
			var k hllstore.RecipientKey
			uid := fmt.Sprintf("subscriber-%07d", i)
			keyer.RecipientKey(k[:0], "acme", uid)
			t := dk.DayStart + int64(i)*37%86_400_000
			switch d {
			case 0:
				a := day.Recipient("launch", k)
				a.UID = uid
				if i%10 < 4 {
					a.AddOpen(t, true)
				}
				if i%10 >= 2 {
					a.AddOpen(t+60_000, false)
				}
			case 1:
				if i%4 != 0 {
					continue
				}
				day.Recipient("launch", k).AddOpen(t, false)
			case 2:
				if i%25 == 0 {
					day.Recipient("launch", k).AddClick(links[i%3], false)
				}
				if i%100 == 0 {
					day.Recipient("launch", k).AddConversion(fmt.Sprintf("order-%d", i), 49_000_000, "EUR")
				}
				if i%25 != 0 && i%100 != 0 {
					continue
				}
			}
			if pending++; pending == 20_000 {
				save()
			}
		}
		if pending > 0 {
			save()
		}
	}
}

// BenchmarkRecipients lists a campaign of a million recipients through the
// handler (GET /v1/campaigns/{campaign}/recipients, 1,000 a page, following
// the cursors; the clickers, 4 %, with filter=clicked; one recipient by
// uid), next to the same on a campaign of 10,000 in the same run, each on
// a redis-server of its own; it reports the page latency (p50, p99) and the
// Redis memory per recipient of the campaign (used_memory before and after
// seeding, divided by the recipients).
func BenchmarkRecipients(b *testing.B) {
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(-3 * 24 * time.Hour)
	for _, n := range []int{10_000, 1_000_000} {
		pr := pipetest.StartPrivateRedis(b)
		rdb := redis.NewClient(&redis.Options{Addr: pr.Addr()})
		store := hllstore.New(rdb, hllstore.Config{Prefix: "bench"})
		before := pipetest.RedisInfoField(b, rdb, "memory", "used_memory")
		t0 := time.Now()
		seedCampaign(b, store, n, day0)
		seeded := time.Since(t0)
		after := pipetest.RedisInfoField(b, rdb, "memory", "used_memory")
		cfg := DefaultConfig()
		cfg.ListenAddr, cfg.Token, cfg.VisitorSecret = "127.0.0.1:0", "bench", "bench-secret"
		s, err := New(cfg, nil, nil, counts.NewReader(store), nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct{ name, query string }{
			{"all", "filter=all&limit=1000"},
			{"clicked", "filter=clicked&limit=1000"},
			{"one", ""},
		} {
			b.Run(fmt.Sprintf("recipients=%d/%s", n, c.name), func(b *testing.B) {
				lat := make([]time.Duration, 0, b.N)
				cursor, pages, listed := "", 0, 0
				for b.Loop() {
					target := "/v1/campaigns/launch/recipients?" + c.query + "&cursor=" + url.QueryEscape(cursor)
					if c.name == "one" {
						target = "/v1/campaigns/launch/recipients/subscriber-" + fmt.Sprintf("%07d", len(lat)*7919%n) + "?tenant=acme"
					}
					req := httptest.NewRequest("GET", target, nil)
					req.Header.Set("Authorization", "Bearer bench")
					rec := httptest.NewRecorder()
					t1 := time.Now()
					s.srv.Handler.ServeHTTP(rec, req)
					lat = append(lat, time.Since(t1))
					if rec.Code != 200 {
						b.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
					}
					if c.name == "one" {
						continue
					}
					body := rec.Body.String()
					listed += strings.Count(body, `"key":`)
					cursor = ""
					if i := strings.Index(body, `"next_cursor":"`); i >= 0 {
						rest := body[i+len(`"next_cursor":"`):]
						cursor = rest[:strings.IndexByte(rest, '"')]
					} else {
						pages = 0 // the last page: start over
					}
					pages++
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				if c.name != "one" {
					b.ReportMetric(float64(listed)/float64(len(lat)), "recipients/page")
				}
				b.ReportMetric((after-before)/float64(n), "redis-B/recipient")
				b.ReportMetric(seeded.Seconds()/float64(n)*1e6, "seed-us/recipient")
			})
		}
		_ = rdb.Close()
	}
}

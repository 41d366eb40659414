//go:build integration

package processor

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/kafkaconn"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// TestClockClosesVisits: on a partition that gets no hit after them, the
// sessions of a few visitors end by the clock ticks the processor writes,
// and each visit (a session with a page view) becomes one event of kind
// session with its landing content id, pages, bounce and class; a session
// of e-mail opens only is no visit. A second processor group that reads
// the same log from the start, writing no ticks of its own, writes the same
// visits at the same positions: the ticks are in the log.
func TestClockClosesVisits(t *testing.T) {
	kc, topics := pipetest.Kafka(t)
	rdb, prefix := pipetest.Redis(t)
	boot := time.Now().Add(-time.Minute).UnixMilli()
	browser := schemas.HeaderAccept | schemas.HeaderAcceptLanguage | schemas.HeaderAcceptEncoding | schemas.HeaderSecFetchMode
	var hits []schemas.HitFields
	add := func(user, content string, kind pixelpb.Kind, headers uint32) {
		h := laneHit(boot, uint64(len(hits)+1), 1)
		h.UserID, h.ContentID, h.Kind, h.PresentHeaders = []byte(user), []byte(content), kind, headers
		if user == "crawler" {
			h.UserAgent = []byte("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
		}
		h.PageURL = fmt.Appendf(nil, "https://news.example/%s", content)
		hits = append(hits, h)
	}
	add("reader", "home", pixelpb.Kind_KIND_VIEW, browser) // lands on home, reads two more pages
	add("reader", "story-1", pixelpb.Kind_KIND_VIEW, browser)
	add("reader", "story-2", pixelpb.Kind_KIND_VIEW, browser)
	add("bouncer", "story-1", pixelpb.Kind_KIND_VIEW, browser) // one page: a bounce
	add("crawler", "story-2", pixelpb.Kind_KIND_VIEW, browser) // a known crawler: a bot's visit
	add("subscriber", "newsletter", pixelpb.Kind_KIND_OPEN, 0) // opens only: no visit
	sendToPartition0(t, kc, topics.Hits, hits)

	type visit struct {
		Content          string
		Pages            uint32
		Bounce, Bot      bool
		Offset           int64
		Index            uint32
		StartMs, EndMs   int64
		Campaign, SiteID string
	}
	run := func(group string, clock bool) []visit {
		t.Helper()
		cfg := DefaultConfig()
		cfg.VisitorSecret, cfg.Group, cfg.SnapshotInterval = "s", group, time.Second
		cfg.Session.Timeout, cfg.ClockTick = 2*time.Second, 500*time.Millisecond
		cfg.HitsTopic, cfg.EventsTopic, cfg.SessionsTopic, cfg.DLQTopic = topics.Hits, topics.Events+"."+group, topics.Sessions, topics.DLQ
		if err := kafkaconn.EnsureTopics(context.Background(), kc, []schemas.TopicSpec{{Name: cfg.EventsTopic, Partitions: 1}}); err != nil {
			t.Fatal(err)
		}
		d := Deps{
			Reader:   kafkaconn.NewGroupReader(kc, cfg.HitsTopic, cfg.Group, nil),
			Events:   kafkaconn.NewProducer(kc, cfg.EventsTopic),
			Sessions: kafkaconn.NewProducer(kc, cfg.SessionsTopic),
			DLQ:      kafkaconn.NewProducer(kc, cfg.DLQTopic),
			State:    state.New(rdb, prefix+":"+group, time.Hour),
			Hits:     kafkaconn.NewRanges(kc, cfg.HitsTopic, nil),
		}
		if clock {
			d.Clock = kafkaconn.NewProducer(kc, cfg.HitsTopic)
		}
		p, err := New(cfg, nil, prometheus.NewRegistry(), d)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		var visits []visit
		pipetest.Eventually(t, time.Minute, func() string {
			visits = visits[:0]
			hitEvents := 0
			for _, v := range pipetest.ReadTopic(t, kc.Brokers[0], cfg.EventsTopic) {
				var ev pixelpb.Event
				if err := proto.Unmarshal(v, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.GetKind() != pixelpb.Kind_KIND_SESSION {
					hitEvents++
					continue
				}
				s := ev.GetSession()
				if ev.GetContentId() != s.GetContentId() || ev.GetOrigin().GetReceivedAtMs() != s.GetStartMs() || ev.GetBot() != s.GetBot() {
					t.Fatalf("visit event %v does not match its summary %v", &ev, s)
				}
				visits = append(visits, visit{
					Content: ev.GetContentId(), Pages: s.GetPages(), Bounce: s.GetBounce(), Bot: s.GetBot(),
					Offset: ev.GetSource().GetOffset(), Index: ev.GetSource().GetIndex(),
					StartMs: s.GetStartMs(), EndMs: s.GetEndMs(), Campaign: ev.GetCampaignId(), SiteID: ev.GetSiteId(),
				})
			}
			if hitEvents != len(hits) || len(visits) < 3 {
				return fmt.Sprintf("%d hit events (want %d), %d visits (want 3)", hitEvents, len(hits), len(visits))
			}
			return ""
		})
		slices.SortFunc(visits, func(a, b visit) int { return int(a.Offset-b.Offset)*1000 + int(a.Index) - int(b.Index) })
		return visits
	}
	first := run("live", true)
	if len(first) != 3 {
		t.Fatalf("%d visits, want 3: %+v", len(first), first)
	}
	byContent := map[string]visit{}
	for i, v := range first {
		byContent[v.Content] = v
		if v.Offset < int64(len(hits)) {
			t.Errorf("visit %+v closed at offset %d, before the last hit (%d): only a tick can have closed it", v, v.Offset, len(hits)-1)
		}
		if i > 0 && first[i-1].Offset == v.Offset && first[i-1].Index == v.Index {
			t.Errorf("two visits at one position: %+v", first[i-1:i+1])
		}
		if v.SiteID != "news" || v.EndMs < v.StartMs {
			t.Errorf("visit %+v", v)
		}
	}
	want := map[string]visit{
		"home":    {Content: "home", Pages: 3},
		"story-1": {Content: "story-1", Pages: 1, Bounce: true},
		"story-2": {Content: "story-2", Pages: 1, Bounce: true, Bot: true},
	}
	for c, w := range want {
		g := byContent[c]
		if g.Pages != w.Pages || g.Bounce != w.Bounce || g.Bot != w.Bot {
			t.Errorf("visit landing on %s: pages %d bounce %v bot %v, want %d %v %v", c, g.Pages, g.Bounce, g.Bot, w.Pages, w.Bounce, w.Bot)
		}
	}

	// The same log read again by another group, no ticks of its own.
	again := run("replay", false)
	if !slices.Equal(first, again) {
		t.Fatalf("a replay of the log wrote other visits:\nlive   %+v\nreplay %+v", first, again)
	}
}

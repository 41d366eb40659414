//go:build integration

package integration

import (
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/processor"
	"github.com/pixelpipe/pixelpipe/query"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// shortVisits makes a processor end sessions 2 s after their last hit, with
// a clock tick every 500 ms, so visits are counted within seconds.
func shortVisits(c *processor.Config) {
	c.Session.Timeout, c.ClockTick = 2*time.Second, 500*time.Millisecond
}

// TestVisits sends visits through the real pipeline (edge, Kafka,
// processor, aggregator, Redis, query API): readers landing on a front page
// and reading two more pages, some under a campaign; bouncers with one
// view; a crawler; mail opens (no visit). No hit comes after them: the
// processor's clock ends the sessions. The API must report per landing
// content id and per campaign exactly the visits, bounces and page views,
// a duration no shorter than the pauses between the readers' pages, the
// crawler's visits in the bot class, and no visit for the pages read after
// landing or for the mail.
func TestVisits(t *testing.T) {
	s := newStack(t)
	s.startEdge()
	p, _ := s.newProcessor("visits", shortVisits)
	s.run("processor", p)
	s.startAggregator("visits-agg")
	s.startQuery()

	const readers, campaignReaders, bouncers, crawlers, openers = 12, 5, 7, 3, 4
	pause := 300 * time.Millisecond
	for i := range readers {
		uid := fmt.Sprint("reader-", i)
		cmp := ""
		if i < campaignReaders {
			cmp = "&cmp=spring"
		}
		s.visitHit("/p.gif?cid=front&uid="+uid+cmp, chromeUA)
		time.Sleep(pause / readers) // the pauses add up to at least pause per reader
		s.visitHit("/p.gif?cid=story-1&uid="+uid+cmp, chromeUA)
		s.visitHit("/p.gif?cid=story-2&uid="+uid+cmp, chromeUA)
	}
	for i := range bouncers {
		s.visitHit(fmt.Sprint("/p.gif?cid=front&uid=bouncer-", i), chromeUA)
	}
	for i := range crawlers {
		s.visitHit(fmt.Sprint("/p.gif?cid=front&uid=crawler-", i), "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
	}
	for i := range openers {
		s.visitHit(fmt.Sprint("/p.gif?cid=mail&k=open&uid=recipient-", i), chromeUA)
	}

	var front query.StatsResponse
	pipetest.Eventually(t, time.Minute, func() string {
		var err error
		if front, err = s.stats("front"); err != nil {
			return err.Error()
		}
		if v := front.Human.Visits.Visits + front.Bot.Visits.Visits; v != readers+bouncers+crawlers {
			return fmt.Sprintf("front: %d visits, want %d", v, readers+bouncers+crawlers)
		}
		return ""
	})
	hv := front.Human.Visits
	if hv.Visits != readers+bouncers || hv.Bounces != bouncers || front.Bot.Visits.Visits != crawlers {
		t.Fatalf("front: human visits %d (want %d), bounces %d (want %d), bot visits %d (want %d)",
			hv.Visits, readers+bouncers, hv.Bounces, bouncers, front.Bot.Visits.Visits, crawlers)
	}
	if want := float64(3*readers+bouncers) / float64(readers+bouncers); math.Abs(hv.PagesPerVisit-want) > 1e-9 {
		t.Fatalf("front: %.4f pages per visit, want %.4f", hv.PagesPerVisit, want)
	}
	if want := float64(bouncers) / float64(readers+bouncers); math.Abs(hv.BounceRate-want) > 1e-9 {
		t.Fatalf("front: bounce rate %.4f, want %.4f", hv.BounceRate, want)
	}
	// Each reader paused at least pause/readers between its first and last
	// page; a bounce lasts 0.
	if lo, hi := pause.Seconds()/float64(readers+bouncers), 30.0; hv.MeanDurationS < lo || hv.MeanDurationS > hi {
		t.Fatalf("front: mean visit duration %.3f s, want between %.3f and %.0f", hv.MeanDurationS, lo, hi)
	}
	if hv.Visitors != readers+bouncers {
		t.Fatalf("front: %d visitors (± %d), want %d (sketches of this size are exact)", hv.Visitors, hv.VisitorsBound, readers+bouncers)
	}
	for _, cid := range []string{"story-1", "story-2", "mail"} {
		st, err := s.stats(cid)
		if err != nil {
			t.Fatal(err)
		}
		if st.Human.Visits.Visits != 0 || st.Bot.Visits.Visits != 0 {
			t.Fatalf("%s: %d visits, want none (no visit landed there)", cid, st.Human.Visits.Visits+st.Bot.Visits.Visits)
		}
	}
	var camp query.StatsResponse
	day, next := time.Now().UTC().Format("2006-01-02"), time.Now().UTC().Add(24*time.Hour).Format("2006-01-02")
	if err := s.getJSON("/v1/campaigns/spring/stats?from="+day+"&to="+next, &camp); err != nil {
		t.Fatal(err)
	}
	if v := camp.Human.Visits; v.Visits != campaignReaders || v.Bounces != 0 || v.PagesPerVisit != 3 {
		t.Fatalf("campaign spring: %d visits, %d bounces, %.2f pages per visit; want %d, 0, 3", v.Visits, v.Bounces, v.PagesPerVisit, campaignReaders)
	}
	var top query.StatsResponse
	if err := s.getJSON("/v1/stats/front?kind=session&from="+day+"&to="+next, &top); err != nil {
		t.Fatal(err)
	}
	if top.Total != readers+bouncers || top.Kind != "session" {
		t.Fatalf("kind=session: kind %q total %d, want session and %d", top.Kind, top.Total, readers+bouncers)
	}
	checkVisits(t, s, time.Minute)
}

// chromeUA is a desktop Chrome's user agent.
const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// visitHit sends a pixel request (path and query) with a browser's headers
// and user agent ua.
func (s *stack) visitHit(path, ua string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.edgeURL+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("User-Agent", ua)
	req.Header.Set("Accept", "image/avif,image/webp,*/*;q=0.8")
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	req.Header.Set("Sec-Fetch-Mode", "no-cors")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("pixel %s: status %d", path, resp.StatusCode)
	}
}

// checkVisits waits until the query API counts, per landing content id,
// exactly the visits the processors wrote to the events topic (each visit,
// by session id, once however often it was written) with their page views
// and bounces: visits are counted exactly once through whatever the test
// did to the pipeline.
func checkVisits(t *testing.T, s *stack, timeout time.Duration) {
	t.Helper()
	type tally struct{ visits, pages, bounces uint64 }
	pipetest.Eventually(t, timeout, func() string {
		want := map[string]*tally{}
		seen := map[string]bool{}
		for _, v := range pipetest.ReadTopic(t, s.kc.Brokers[0], s.topics.Events) {
			var ev pixelpb.Event
			if err := proto.Unmarshal(v, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.GetKind() != pixelpb.Kind_KIND_SESSION || seen[string(ev.GetSessionId())] {
				continue
			}
			seen[string(ev.GetSessionId())] = true
			w := want[ev.GetContentId()]
			if w == nil {
				w = &tally{}
				want[ev.GetContentId()] = w
			}
			w.visits++
			w.pages += uint64(ev.GetSession().GetPages())
			if ev.GetSession().GetBounce() {
				w.bounces++
			}
		}
		if len(want) == 0 {
			return "no visit in the events topic yet"
		}
		for cid, w := range want {
			st, err := s.stats(cid)
			if err != nil {
				return fmt.Sprintf("stats of %s: %v", cid, err)
			}
			h, b := st.Human.Visits, st.Bot.Visits
			got := tally{h.Visits + b.Visits, 0, h.Bounces + b.Bounces}
			got.pages = uint64(math.Round(h.PagesPerVisit*float64(h.Visits) + b.PagesPerVisit*float64(b.Visits)))
			if got != *w {
				return fmt.Sprintf("%s: API visits %+v, events topic %+v", cid, got, *w)
			}
		}
		return ""
	})
}

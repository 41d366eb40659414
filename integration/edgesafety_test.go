//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// pipeline writes every request on one connection at once (HTTP/1.1
// pipelining, as a flooding client does) and returns the status codes.
func pipeline(t *testing.T, addr string, reqs []string) []int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = c.Write([]byte(strings.Join(reqs, ""))) }()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	codes := make([]int, 0, len(reqs))
	for range reqs {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("answer %d of %d: %v", len(codes)+1, len(reqs), err)
		}
		var code, n int
		fmt.Sscanf(line, "HTTP/1.1 %d", &code)
		for { // headers
			h, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if h == "\r\n" {
				break
			}
			fmt.Sscanf(strings.ToLower(h), "content-length: %d", &n)
		}
		if _, err := br.Discard(n); err != nil {
			t.Fatal(err)
		}
		codes = append(codes, code)
	}
	return codes
}

// rawHits waits until the edge has published want hits, then reads them
// from the hits topic.
func rawHits(t *testing.T, s *stack, reg prometheus.Gatherer, want int) []*pixelpb.RawHit {
	t.Helper()
	pipetest.Eventually(t, time.Minute, func() string {
		if n := labelled(t, reg, "pixel_edge_published_total", "", ""); n < float64(want) {
			return fmt.Sprintf("%v hits published, want %d", n, want)
		}
		return ""
	})
	vals := pipetest.ReadTopic(t, s.kc.Brokers[0], s.topics.Hits)
	hits := make([]*pixelpb.RawHit, len(vals))
	for i, v := range vals {
		hits[i] = &pixelpb.RawHit{}
		if err := proto.Unmarshal(v, hits[i]); err != nil {
			t.Fatal(err)
		}
	}
	return hits
}

// TestRawTopicHoldsNoPII is T-S10 end to end: e-mail addresses (plain,
// %40, double-encoded, in the Referer header, in page URL, referrer and
// custom properties, as uid) and phone numbers sent to a real edge over a
// socket never reach pixel.hits.v1: every record, fully percent-decoded,
// has 0 matches for the e-mail expression.
func TestRawTopicHoldsNoPII(t *testing.T) {
	s := newStack(t)
	addr, reg := s.startEdgeWith(func(*edge.Config) {})
	reqs := []string{
		"/p.gif?cid=pii&url=https%3A%2F%2Fshop.example%2F%3Fe%3Djane.doe%40mail.example",
		"/p.gif?cid=pii&url=https://shop.example/?e=jane.doe@mail.example",
		"/p.gif?cid=pii&url=https%3A%2F%2Fshop.example%2F%3Fe%3Djane%252540mail.example",
		"/p.gif?cid=pii&ref=https%3A%2F%2Fmail.example%2Fu%2Fbob%2Btag%40corp.example.co.uk",
		"/p.gif?cid=pii&p.email=jane%40mail.example&p.note=call%20%2B44%2020%207946%200958",
		"/p.gif?cid=pii&p.phone=4155552671&url=https%3A%2F%2Fx.example%2F%3Ftel%3D%252B14155552671",
		"/p.gif?cid=pii&uid=jane%40mail.example",
		"/b?cid=pii&url=https%3A%2F%2Fx.example%2F%3Fe%3Djane%2540mail.example",
	}
	var raw []string
	for _, r := range reqs {
		raw = append(raw, "GET "+r+" HTTP/1.1\r\nHost: x\r\nReferer: https://news.example/?subscriber=jane%40mail.example&tel=%2B33612345678\r\n\r\n")
	}
	for i, code := range pipeline(t, addr, raw) {
		if code != 200 && code != 204 {
			t.Fatalf("%s: %d", reqs[i], code)
		}
	}
	email := regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	rawHits(t, s, reg, len(reqs))
	vals := pipetest.ReadTopic(t, s.kc.Brokers[0], s.topics.Hits)
	if len(vals) != len(reqs) {
		t.Fatalf("%d raw hits, want %d", len(vals), len(reqs))
	}
	for _, v := range vals {
		d := pii.DecodeAll(string(v))
		if m := email.FindString(d); m != "" {
			t.Fatalf("raw topic holds %q in %q", m, d)
		}
		for _, phone := range []string{"7946 0958", "4155552671", "14155552671", "33612345678"} {
			if strings.Contains(d, phone) {
				t.Fatalf("raw topic holds the phone number %s in %q", phone, d)
			}
		}
	}
	if n := labelled(t, reg, "pixel_edge_pii_redactions_total", "kind", "email"); n < float64(len(reqs)) {
		t.Fatalf("pixel_edge_pii_redactions_total{kind=email} = %v, want at least %d", n, len(reqs))
	}
}

// TestRateFloodFlaggedAsBot is T-S13 end to end: a flood from one client IP
// (pipelined on one connection, far above the configured rates) gets its
// GIF every time; hits above edge.rate.flag reach Kafka flagged and the
// processor labels them bot with reason "rate", hits above edge.rate.shed
// are not recorded and are counted; another client's hits meanwhile stay
// human, and a crawler's user agent is labelled as such.
func TestRateFloodFlaggedAsBot(t *testing.T) {
	s := newStack(t)
	addr, reg := s.startEdgeWith(func(c *edge.Config) {
		c.RateFlag, c.RateShed = 5, 100
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	s.startProcessor("rate")
	const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	browser := "User-Agent: " + chrome + "\r\nAccept: image/*\r\nAccept-Language: en\r\nAccept-Encoding: gzip\r\nSec-Fetch-Mode: no-cors\r\n"
	// Every flood hit has its own uid, so the processor's own per-visitor
	// rate rule cannot be what labels them: only the edge's flag can.
	const flood = 400
	var reqs []string
	for i := range flood {
		reqs = append(reqs, fmt.Sprintf("GET /p.gif?cid=flood&uid=f-%d HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.66\r\n%s\r\n", i, browser))
	}
	for i, code := range pipeline(t, addr, reqs) {
		if code != 200 {
			t.Fatalf("flood hit %d answered %d", i, code)
		}
	}
	var other []string
	for i := range 3 {
		other = append(other, fmt.Sprintf("GET /p.gif?cid=legit&uid=l-%d HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.7\r\n%s\r\n", i, browser))
	}
	other = append(other, "GET /p.gif?cid=crawler&uid=c-1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\nUser-Agent: Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)\r\n\r\n")
	pipeline(t, addr, other)

	shed := labelled(t, reg, "pixel_edge_rate_limited_total", "action", "shed")
	flaggedN := labelled(t, reg, "pixel_edge_rate_limited_total", "action", "flagged")
	if shed == 0 || flaggedN == 0 {
		t.Fatalf("flood of %d: %v flagged, %v shed; want both above 0", flood, flaggedN, shed)
	}
	recorded := flood - int(shed) + len(other)
	hits := rawHits(t, s, reg, recorded)
	if len(hits) != recorded {
		t.Fatalf("%d raw hits, want %d (%d shed)", len(hits), recorded, int(shed))
	}
	flaggedIDs := map[string]bool{}
	for _, h := range hits {
		if h.GetPresentHeaders()&schemas.EdgeFlagRate != 0 {
			flaggedIDs[string(h.GetOrigin().GetEventId())] = true
		}
	}
	if len(flaggedIDs) != int(flaggedN) {
		t.Fatalf("%d flagged raw hits, counter says %v", len(flaggedIDs), flaggedN)
	}

	var events []*pixelpb.Event
	pipetest.Eventually(t, time.Minute, func() string {
		events = events[:0]
		for _, v := range pipetest.ReadTopic(t, s.kc.Brokers[0], s.topics.Events) {
			ev := &pixelpb.Event{}
			if err := proto.Unmarshal(v, ev); err != nil {
				t.Fatal(err)
			}
			if ev.GetKind() != pixelpb.Kind_KIND_SESSION {
				events = append(events, ev)
			}
		}
		if len(events) < recorded {
			return fmt.Sprintf("%d events, want %d", len(events), recorded)
		}
		return ""
	})
	var rate, legit int
	for _, ev := range events {
		reasons := strings.Join(ev.GetBotReasons(), ",")
		switch ev.GetContentId() {
		case "flood":
			if flaggedIDs[string(ev.GetOrigin().GetEventId())] {
				if !ev.GetBot() || reasons != "rate" {
					t.Fatalf("flagged hit: bot=%v reasons %q, want rate", ev.GetBot(), reasons)
				}
				rate++
			} else if ev.GetBot() {
				t.Fatalf("unflagged flood hit labelled %q", reasons)
			}
		case "legit":
			legit++
			if ev.GetBot() {
				t.Fatalf("the other client's hit labelled bot: %q", reasons)
			}
		case "crawler":
			if !ev.GetBot() || !strings.Contains(reasons, "known_crawler") {
				t.Fatalf("crawler: bot=%v reasons %q", ev.GetBot(), reasons)
			}
		}
	}
	if rate != int(flaggedN) || legit != 3 {
		t.Fatalf("%d events with reason rate (want %v), %d legit (want 3)", rate, flaggedN, legit)
	}
	t.Logf("flood of %d from one IP: %d recorded plain, %d flagged (bot: rate), %d shed", flood, flood-int(shed)-rate, rate, int(shed))
}

// labelled returns the value of counter name with label = value (label
// "": the counter has no labels).
func labelled(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
			if label == "" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

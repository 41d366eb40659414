package processor

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/processor/recipient"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

func rawHit(edit func(h *schemas.HitFields)) []byte {
	h := &schemas.HitFields{
		ReceivedAtMs: 1_764_331_200_000, NodeID: "e1", Seq: 9,
		Kind: pixelpb.Kind_KIND_VIEW, ContentID: []byte("article-1"), SiteID: []byte("news"),
		ClientIP: []byte{203, 0, 113, 77}, UserAgent: []byte("UA"),
	}
	copy(h.EventID[:], "0123456789abcdef")
	if edit != nil {
		edit(h)
	}
	return schemas.AppendRawHit(nil, h)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	f := func(name string, edit func(*pixelpb.RawHit), want schemas.InvalidReason) {
		t.Helper()
		var h pixelpb.RawHit
		if err := proto.Unmarshal(rawHit(nil), &h); err != nil {
			t.Fatal(err)
		}
		edit(&h)
		if got := validate(&h); got != want {
			t.Errorf("%s: validate = %q, want %q", name, got, want)
		}
	}
	f("valid", func(*pixelpb.RawHit) {}, "")
	f("future schema", func(h *pixelpb.RawHit) { h.SchemaVersion = 2 }, "unknown schema version 2")
	f("no content", func(h *pixelpb.RawHit) { h.ContentId = "" }, "missing_cid")
	f("no origin", func(h *pixelpb.RawHit) { h.Origin = nil }, "bad_origin")
	f("short event id", func(h *pixelpb.RawHit) { h.Origin.EventId = []byte{1} }, "bad_origin")
	f("no kind", func(h *pixelpb.RawHit) { h.Kind = pixelpb.Kind_KIND_UNSPECIFIED }, "bad_kind")
	f("edge said invalid", func(h *pixelpb.RawHit) { h.InvalidReason = "bad_cid" }, "bad_cid")
	f("negative value from elsewhere", func(h *pixelpb.RawHit) {
		h.Kind, h.OrderId, h.ValueMicros, h.Currency = pixelpb.Kind_KIND_CONVERSION, "o-1", -1, "EUR"
	}, "negative_value")
}

// memoryProcessor returns a processor whose partition 0 is held in memory
// from offset 0 on, as if just started without a snapshot: transform runs
// on it without Redis or Kafka.
func memoryProcessor(t *testing.T) *Processor {
	t.Helper()
	cfg := DefaultConfig()
	cfg.VisitorSecret = "s"
	p, err := New(cfg, nil, prometheus.NewRegistry(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	pt := p.emptyPart(0)
	pt.clock.Next = 0
	p.parts[0] = pt
	return p
}

// TestClickDestination: a click's event carries where it redirected to,
// redacted as the page URL is; no other kind carries one, whatever its raw
// hit holds; and odd destinations (very long, not a URL, broken escapes)
// pass through harmlessly, while one that is not UTF-8 is dead-lettered
// like any undecodable hit.
func TestClickDestination(t *testing.T) {
	t.Parallel()
	long := "https://shop.example/" + strings.Repeat("a/", 32<<10) + "?to=jane%2540mail.example"
	cases := []struct {
		name string
		kind pixelpb.Kind
		dest string
		want string
	}{
		{"click, e-mail in the query", pixelpb.Kind_KIND_CLICK, "https://shop.example/sale?email=a@b.example&utm_source=news",
			"https://shop.example/sale?email=[redacted-email]&utm_source=news"},
		{"click, percent-encoded e-mail and a phone number", pixelpb.Kind_KIND_CLICK, "https://shop.example/p?to=a%40b.example&tel=%2B14155552671#x",
			"https://shop.example/p?to=[redacted-email]&tel=[redacted-phone]#x"},
		{"click, nothing personal", pixelpb.Kind_KIND_CLICK, "https://shop.example/sale?x=1&y=%C3%A9", "https://shop.example/sale?x=1&y=%C3%A9"},
		{"click without a destination", pixelpb.Kind_KIND_CLICK, "", ""},
		{"view carrying a destination", pixelpb.Kind_KIND_VIEW, "https://shop.example/sale?email=a@b.example", ""},
		{"impression carrying a destination", pixelpb.Kind_KIND_IMPRESSION, "https://shop.example/sale", ""},
		{"click, very long", pixelpb.Kind_KIND_CLICK, long, strings.TrimSuffix(long, "jane%2540mail.example") + "[redacted-email]"},
		{"click, not a URL", pixelpb.Kind_KIND_CLICK, "javascript:alert(1) %zz%%4 @@ \\", "javascript:alert(1) %zz%%4 @@ \\"},
	}
	p := memoryProcessor(t)
	var in []kafka.Message
	for i, tc := range cases {
		in = append(in, kafka.Message{Partition: 0, Offset: int64(i), Value: rawHit(func(h *schemas.HitFields) {
			h.EventID[0], h.Seq = byte(i), uint64(i+1)
			h.Kind, h.ClickDestination = tc.kind, []byte(tc.dest)
			if tc.kind == pixelpb.Kind_KIND_CLICK {
				h.Route = "click"
			}
		})})
	}
	in = append(in, kafka.Message{Partition: 0, Offset: int64(len(cases)), Value: rawHit(func(h *schemas.HitFields) {
		h.EventID[0], h.Seq = 0xff, 100
		h.Kind, h.ClickDestination = pixelpb.Kind_KIND_CLICK, []byte("https://shop.example/\xff")
	})})
	if err := p.transform(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if len(p.events) != len(cases) || len(p.dlq) != 1 || !strings.HasPrefix(deadLetterReason(p.dlq[0]), "decode: ") {
		t.Fatalf("%d events, %d dead letters; want %d events and the destination that is not UTF-8 dead-lettered", len(p.events), len(p.dlq), len(cases))
	}
	for i, tc := range cases {
		var ev pixelpb.Event
		if err := proto.Unmarshal(p.events[i].Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.GetKind() != tc.kind || ev.GetClickDestination() != tc.want {
			t.Errorf("%s: %v event, click_destination %.200q; want %v, %.200q", tc.name, ev.GetKind(), ev.GetClickDestination(), tc.kind, tc.want)
		}
		if strings.Contains(string(p.events[i].Value), "b.example&") || strings.Contains(string(p.events[i].Value), "mail.example") {
			t.Errorf("%s: an e-mail address reached the event", tc.name)
		}
	}
}

func deadLetterReason(m kafka.Message) string {
	for _, h := range m.Headers {
		if h.Key == "reason" {
			return string(h.Value)
		}
	}
	return ""
}

// TestUTMCampaign: a hit without a campaign counts under its page's
// utm_campaign when that is a valid id; its own campaign wins, an
// utm_campaign outside the id byte class is left out, and the option turns
// it off.
func TestUTMCampaign(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, camp, page, want string
	}{
		{"utm_campaign only", "", "https://news.example/a?utm_source=nl&utm_campaign=dec-2026", "dec-2026"},
		{"its own campaign wins", "spring", "https://news.example/a?utm_campaign=dec-2026", "spring"},
		{"not an id", "", "https://news.example/a?utm_campaign=Black%20Friday%20%7B1%7D", ""},
		{"too long", "", "https://news.example/a?utm_campaign=" + strings.Repeat("x", 129), ""},
		{"no utm_campaign", "", "https://news.example/a", ""},
	}
	for _, on := range []bool{true, false} {
		p := memoryProcessor(t)
		p.cfg.UTMCampaigns = on
		var in []kafka.Message
		for i, tc := range cases {
			in = append(in, kafka.Message{Partition: 0, Offset: int64(i), Value: rawHit(func(h *schemas.HitFields) {
				h.EventID[0], h.Seq = byte(i), uint64(i+1)
				h.Kind, h.CampaignID, h.PageURL = pixelpb.Kind_KIND_VIEW, []byte(tc.camp), []byte(tc.page)
			})})
		}
		if err := p.transform(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		evs := hitEvents(t, p)
		for i, tc := range cases {
			ev := evs[i]
			want := tc.want
			if !on {
				want = tc.camp
			}
			if ev.GetCampaignId() != want {
				t.Errorf("utmCampaigns=%v, %s: campaign %q, want %q", on, tc.name, ev.GetCampaignId(), want)
			}
		}
	}
}

// hitEvents decodes the batch's events of hits, leaving out the visits
// (kind session) the hits closed.
func hitEvents(t *testing.T, p *Processor) []*pixelpb.Event {
	t.Helper()
	var out []*pixelpb.Event
	for _, m := range p.events {
		ev := &pixelpb.Event{}
		if err := proto.Unmarshal(m.Value, ev); err != nil {
			t.Fatal(err)
		}
		if ev.GetKind() != pixelpb.Kind_KIND_SESSION {
			out = append(out, ev)
		}
	}
	return out
}

// TestRecipientIdentity: an event of a hit with a uid carries the uid's
// keyed hash under its content id's tenant, and the uid as sent only for
// the tenants and campaigns of -processor.recipientIDs; an event without a
// uid carries neither.
func TestRecipientIdentity(t *testing.T) {
	t.Parallel()
	p := memoryProcessor(t)
	var err error
	if p.recipientIDs, err = recipient.ParseRules("acme/spring"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		cid, campaign, uid string
		wantID             bool
	}{
		{"acme:newsletter-1", "spring", "subscriber-42", true},
		{"acme:newsletter-1", "summer", "subscriber-42", false},
		{"globex:newsletter-1", "spring", "subscriber-42", false},
		{"acme:newsletter-1", "spring", "", false},
	}
	var in []kafka.Message
	for i, c := range cases {
		in = append(in, kafka.Message{Partition: 0, Offset: int64(i), Value: rawHit(func(h *schemas.HitFields) {
			h.EventID[0], h.Seq = byte(i), uint64(i+1)
			h.Kind, h.ContentID, h.CampaignID, h.UserID = pixelpb.Kind_KIND_OPEN, []byte(c.cid), []byte(c.campaign), []byte(c.uid)
		})})
	}
	if err := p.transform(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	evs := hitEvents(t, p)
	if len(evs) != len(cases) {
		t.Fatalf("%d events, want %d", len(evs), len(cases))
	}
	k := visitor.NewKeyer("s")
	for i, c := range cases {
		ev := evs[i]
		var wantKey []byte
		if c.uid != "" {
			wantKey = k.RecipientKey(nil, schemas.Tenant(c.cid), c.uid)
		}
		if !bytes.Equal(ev.GetRecipientKey(), wantKey) {
			t.Errorf("%s %s %q: recipient key %x, want %x", c.cid, c.campaign, c.uid, ev.GetRecipientKey(), wantKey)
		}
		if got := ev.GetRecipientId() != ""; got != c.wantID || (got && ev.GetRecipientId() != c.uid) {
			t.Errorf("%s %s %q: recipient id %q, want it: %v", c.cid, c.campaign, c.uid, ev.GetRecipientId(), c.wantID)
		}
	}
	if bytes.Equal(evs[0].GetRecipientKey(), evs[2].GetRecipientKey()) {
		t.Error("one uid under two tenants has one key")
	}
}

// failingClock refuses its first writes, then takes them.
type failingClock struct {
	mu       sync.Mutex
	fails    int
	attempts int
	written  []int64
}

func (c *failingClock) WriteClockTicks(_ context.Context, atMs int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts++
	if c.attempts <= c.fails {
		return errors.New("broker away")
	}
	c.written = append(c.written, atMs)
	return nil
}

func (*failingClock) Close() error { return nil }

// TestClockTicksSurviveErrors: the processor writes clock ticks at once and
// every ClockTick; writes that fail (Kafka away) are counted and tried
// again at the next tick, and the ticks go on after.
func TestClockTicksSurviveErrors(t *testing.T) {
	t.Parallel()
	p := memoryProcessor(t)
	clock := &failingClock{fails: 2}
	p.d.Clock, p.cfg.ClockTick = clock, 10*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.runClock(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		clock.mu.Lock()
		n := len(clock.written)
		clock.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ticks written in 10 s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if n := testutil.ToFloat64(p.m.tickErr); n != 2 {
		t.Fatalf("%v failed tick writes counted, want 2", n)
	}
}

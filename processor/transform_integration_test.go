//go:build integration

package processor

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/processor/session"
	"github.com/pixelpipe/pixelpipe/processor/state"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// newTestProcessor returns a processor whose session state lives in the
// test Redis; it has no Kafka reader or writers, so only transform and the
// state calls may be used.
func newTestProcessor(t *testing.T) *Processor {
	t.Helper()
	rdb, prefix := pipetest.Redis(t)
	cfg := DefaultConfig()
	cfg.VisitorSecret = "s"
	p, err := New(cfg, nil, prometheus.NewRegistry(), Deps{State: state.New(rdb, prefix, time.Hour), Hits: noHistory{}})
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return time.UnixMilli(1_764_331_300_000) }
	return p
}

const chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

func fullHit(t *testing.T, edit func(*pixelpb.RawHit)) []byte {
	t.Helper()
	h := &pixelpb.RawHit{
		SchemaVersion: schemas.RawHitVersion,
		Origin:        &pixelpb.Origin{EventId: []byte("0123456789abcdef"), ReceivedAtMs: 1_764_331_200_000, NodeId: "e1", Seq: 9},
		Kind:          pixelpb.Kind_KIND_VIEW, ContentId: "article-1", SiteId: "news",
		ClientIp:  []byte{8, 8, 8, 8},
		UserAgent: chromeUA,
		PageUrl:   "https://news.example/a?utm_source=google&utm_medium=cpc&utm_campaign=bf&gclid=CJ1&email=jane.doe%40mail.example",
		Referrer:  "https://www.google.co.uk/search?q=x",
		Purpose:   "prefetch",
		AdId:      "ad-1", OrderId: "o-1", ValueMicros: 12_500_000, Currency: "EUR", Route: "pixel",
		Props:          []*pixelpb.Prop{{Key: "who", Value: "bob@corp.example"}, {Key: "n", Value: "1"}},
		PresentHeaders: schemas.HeaderAccept | schemas.HeaderAcceptLanguage | schemas.HeaderAcceptEncoding | schemas.HeaderSecFetchMode,
	}
	if edit != nil {
		edit(h)
	}
	b, err := proto.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTransform(t *testing.T) {
	t.Parallel()
	p := newTestProcessor(t)
	in := []kafka.Message{
		{Topic: "hits", Partition: 2, Offset: 40, Value: fullHit(t, nil)},
		{Topic: "hits", Partition: 2, Offset: 41, Value: []byte{0xff, 0xff, 0xff}},
		{Topic: "hits", Partition: 2, Offset: 42, Value: rawHit(func(h *schemas.HitFields) { h.InvalidReason = "missing_cid"; h.ContentID = nil })},
		{Topic: "hits", Partition: 3, Offset: 7, Value: rawHit(func(h *schemas.HitFields) {
			h.ClientIP = []byte{0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8}
			h.UserID = []byte("u-1")
		})},
		// An edge retry: the same hit again, at a later offset.
		{Topic: "hits", Partition: 2, Offset: 43, Value: fullHit(t, nil)},
	}
	if err := p.transform(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	events, dlq := p.events, p.dlq
	if len(events) != 2 || len(dlq) != 2 {
		t.Fatalf("%d events, %d dead letters; want 2 and 2 (the retry dropped)", len(events), len(dlq))
	}

	var ev pixelpb.Event
	if err := proto.Unmarshal(events[0].Value, &ev); err != nil {
		t.Fatal(err)
	}
	if string(events[0].Key) != "article-1" || ev.GetSource().GetPartition() != 2 || ev.GetSource().GetOffset() != 40 {
		t.Fatalf("event key %q, source %v", events[0].Key, ev.GetSource())
	}
	want, _ := visitor.NewKeyer("s").Key(1_764_331_200_000, []byte("news"), nil, nil, []byte{8, 8, 8, 8}, []byte(chromeUA))
	if ev.GetVisitorKey() != want || ev.GetIdentitySource() != pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIELESS {
		t.Fatalf("visitor %x/%v, want %x cookieless", ev.GetVisitorKey(), ev.GetIdentitySource(), want)
	}
	got := map[string]any{
		"ip": ev.GetIpTruncated(), "country": ev.GetCountry(), "device": ev.GetDeviceType(), "os": ev.GetOs(),
		"browser": ev.GetBrowser() + " " + ev.GetBrowserVersion(), "bot": ev.GetBot(), "reasons": strings.Join(ev.GetBotReasons(), ","),
		"refDomain": ev.GetReferrerDomain(), "medium": ev.GetReferrerMedium(), "utm": ev.GetUtmSource() + "/" + ev.GetUtmMedium() + "/" + ev.GetUtmCampaign(),
		"click": ev.GetClickNetwork() + ":" + ev.GetClickId(), "page": ev.GetPageUrl(), "props": ev.GetProps()[0].GetValue(),
		"seq": ev.GetSessionSeq(), "sessionLen": len(ev.GetSessionId()), "order": ev.GetOrderId(), "value": ev.GetValueMicros(),
	}
	wantFields := map[string]any{
		"ip": []byte{8, 8, 8, 0}, "country": "US", "device": "desktop", "os": "Windows",
		"browser": "Chrome 131.0.0.0", "bot": true, "reasons": "prefetch",
		"refDomain": "google.co.uk", "medium": "paid", "utm": "google/cpc/bf",
		"click": "google:CJ1", "page": "https://news.example/a?utm_source=google&utm_medium=cpc&utm_campaign=bf&gclid=CJ1&email=[redacted-email]",
		"props": "[redacted-email]", "seq": uint32(1), "sessionLen": 16, "order": "o-1", "value": int64(12_500_000),
	}
	if diff := cmp.Diff(wantFields, got); diff != "" {
		t.Fatalf("enriched event (-want +got):\n%s", diff)
	}
	for _, leak := range [][]byte{{8, 8, 8, 8}, []byte("jane.doe"), []byte("bob@")} {
		if bytes.Contains(events[0].Value, leak) {
			t.Fatalf("%q leaked into the event", leak)
		}
	}

	if err := proto.Unmarshal(events[1].Value, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.GetIdentitySource() != pixelpb.IdentitySource_IDENTITY_SOURCE_EXPLICIT ||
		!bytes.Equal(ev.GetIpTruncated(), []byte{0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("ipv6 event: %v", &ev)
	}

	for i, wantReason := range []string{"decode: ", "invalid: missing_cid"} {
		d := dlq[i]
		if !strings.HasPrefix(header(d, "reason"), wantReason) {
			t.Fatalf("dead letter %d reason %q, want prefix %q", i, header(d, "reason"), wantReason)
		}
		if !bytes.Equal(d.Value, in[i+1].Value) {
			t.Fatalf("dead letter %d does not keep the original bytes", i)
		}
	}
	if got := header(dlq[0], "source"); got != "hits/2/41" {
		t.Fatalf("source header %q", got)
	}
}

func header(m kafka.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestSweepAndHitOfOneVisitorInOneBatch: a batch in which another visitor's
// hit moves event time past visitor V's open session (so a sweep closes it)
// and then V's own hit arrives, with V's state only in the stored snapshot. The session is
// closed once, and V's hit starts the next one.
func TestSweepAndHitOfOneVisitorInOneBatch(t *testing.T) {
	t.Parallel()
	p := newTestProcessor(t)
	ctx := context.Background()
	t0 := int64(1_764_331_200_000)
	keyer := visitor.NewKeyer("s")
	vKey, _ := keyer.Key(t0, []byte("news"), []byte("v"), nil, []byte{8, 8, 8, 8}, []byte(chromeUA))
	cfg := DefaultConfig().Session
	st := &session.State{Visitor: vKey}
	cfg.Apply(st, &session.Hit{EventID: [16]byte{1}, AtMs: t0, Site: "news", IsPage: true})
	ok, _, err := p.d.State.SaveBase(ctx, p.statePart(0), -1, state.Clock{Next: 100, WatermarkMs: t0, NextSweepMs: t0 + 60_000}, []*session.State{st}, nil)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	at := func(uid string, ms int64, id byte) []byte {
		return fullHit(t, func(h *pixelpb.RawHit) {
			h.UserId, h.Purpose, h.PageUrl, h.Referrer = uid, "", "", ""
			h.Origin.EventId = bytes.Repeat([]byte{id}, 16)
			h.Origin.ReceivedAtMs = ms
		})
	}
	in := []kafka.Message{
		{Partition: 0, Offset: 100, Value: at("w", t0+40*60_000, 2)},
		{Partition: 0, Offset: 101, Value: at("v", t0+41*60_000, 3)},
	}
	if err := p.transform(ctx, in); err != nil {
		t.Fatal(err)
	}
	if len(p.closed) != 1 {
		t.Fatalf("%d session summaries, want V's one", len(p.closed))
	}
	var sum pixelpb.Session
	if err := proto.Unmarshal(p.closed[0].Value, &sum); err != nil {
		t.Fatal(err)
	}
	var ev pixelpb.Event
	if err := proto.Unmarshal(p.events[1].Value, &ev); err != nil {
		t.Fatal(err)
	}
	if sum.GetVisitorKey() != vKey || bytes.Equal(sum.GetSessionId(), ev.GetSessionId()) || ev.GetSessionSeq() != 1 {
		t.Fatalf("summary %v; V's new event in session %x seq %d", &sum, ev.GetSessionId(), ev.GetSessionSeq())
	}
}

// TestMaxVisitorsBoundsState: a flood of distinct visitors (each hit a new
// visitor id) keeps a partition's states within -processor.maxVisitors plus
// one minute of event time's hits; the forgotten visitors' open sessions are
// closed and written; and two processors given the same hits forget the
// same visitors (the state stays a function of the hits).
func TestMaxVisitorsBoundsState(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	newProc := func() *Processor {
		cfg := DefaultConfig()
		cfg.VisitorSecret, cfg.MaxVisitors = "s", 100
		p, err := New(cfg, nil, prometheus.NewRegistry(), Deps{State: state.New(rdb, prefix, time.Hour), Hits: noHistory{}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t0 := int64(1_764_331_200_000)
	var in []kafka.Message
	for i := range 1000 {
		in = append(in, kafka.Message{Partition: 0, Offset: int64(i), Value: fullHit(t, func(h *pixelpb.RawHit) {
			h.UserId, h.Purpose = fmt.Sprintf("flood-%d", i), ""
			h.Origin.EventId = []byte(fmt.Sprintf("%016d", i))
			h.Origin.ReceivedAtMs = t0 + int64(i)*1000 // a new visitor every second
		})})
	}
	a, b := newProc(), newProc()
	ctx := context.Background()
	if err := a.transform(ctx, in); err != nil {
		t.Fatal(err)
	}
	closed := len(a.closed)
	if err := b.transform(ctx, in); err != nil {
		t.Fatal(err)
	}
	pa, pb := a.parts[0], b.parts[0]
	if n := len(pa.visitors); n > 100+60 || n < 90 {
		t.Fatalf("%d visitor states held, want at most 100 plus a minute of hits (60)", n)
	}
	shed := testutil.ToFloat64(a.m.shed)
	if shed < 800 || closed < int(shed) {
		t.Fatalf("%v visitors forgotten and %d sessions closed; want at least 800 forgotten, each with its session closed", shed, closed)
	}
	for v := range pa.visitors {
		if pb.visitors[v] == nil {
			t.Fatalf("visitor %x kept by one processor and not the other", v)
		}
	}
	open := 0
	for _, st := range pa.visitors {
		if st.Open != nil {
			open++
		}
	}
	if open != len(pa.visitors) {
		t.Fatalf("%d open sessions for %d visitors (each has one)", open, len(pa.visitors))
	}
}

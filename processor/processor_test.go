package processor

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

func newTestProcessor(t *testing.T) *Processor {
	t.Helper()
	cfg := DefaultConfig()
	cfg.VisitorSecret = "s"
	p, err := New(cfg, nil, prometheus.NewRegistry(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return time.UnixMilli(1_764_331_300_000) }
	return p
}

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

func TestTransform(t *testing.T) {
	t.Parallel()
	p := newTestProcessor(t)
	in := []kafka.Message{
		{Topic: "hits", Partition: 2, Offset: 40, Value: rawHit(nil)},
		{Topic: "hits", Partition: 2, Offset: 41, Value: []byte{0xff, 0xff, 0xff}},
		{Topic: "hits", Partition: 2, Offset: 42, Value: rawHit(func(h *schemas.HitFields) { h.InvalidReason = "missing_cid"; h.ContentID = nil })},
		{Topic: "hits", Partition: 3, Offset: 7, Value: rawHit(func(h *schemas.HitFields) {
			h.ClientIP = []byte{0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8}
			h.UserID = []byte("u-1")
		})},
	}
	events, dlq := p.transform(in, nil, nil)
	if len(events) != 2 || len(dlq) != 2 {
		t.Fatalf("%d events, %d dead letters; want 2 and 2", len(events), len(dlq))
	}

	var ev pixelpb.Event
	if err := proto.Unmarshal(events[0].Value, &ev); err != nil {
		t.Fatal(err)
	}
	if string(events[0].Key) != "article-1" || ev.GetContentId() != "article-1" {
		t.Fatalf("event key %q, content %q", events[0].Key, ev.GetContentId())
	}
	if ev.GetSource().GetPartition() != 2 || ev.GetSource().GetOffset() != 40 {
		t.Fatalf("source position %v", ev.GetSource())
	}
	if ev.GetOrigin().GetSeq() != 9 || string(ev.GetOrigin().GetEventId()) != "0123456789abcdef" {
		t.Fatalf("origin not carried: %v", ev.GetOrigin())
	}
	want, _ := visitor.NewKeyer("s").Key(1_764_331_200_000, []byte("news"), nil, nil, []byte{203, 0, 113, 77}, []byte("UA"))
	if ev.GetVisitorKey() != want || ev.GetIdentitySource() != pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIELESS {
		t.Fatalf("visitor %x/%v, want %x cookieless", ev.GetVisitorKey(), ev.GetIdentitySource(), want)
	}
	if !bytes.Equal(ev.GetIpTruncated(), []byte{203, 0, 113, 0}) {
		t.Fatalf("ip %v not truncated to /24", ev.GetIpTruncated())
	}
	// The raw IP appears nowhere in the event's bytes.
	if bytes.Contains(events[0].Value, []byte{203, 0, 113, 77}) {
		t.Fatal("raw IP leaked into the event")
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

func TestValidate(t *testing.T) {
	t.Parallel()
	f := func(name string, edit func(*pixelpb.RawHit), want string) {
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
}

func TestTruncateIP(t *testing.T) {
	t.Parallel()
	if got := TruncateIP([]byte{1, 2, 3, 4}); !bytes.Equal(got, []byte{1, 2, 3, 0}) {
		t.Fatalf("v4: %v", got)
	}
	if got := TruncateIP([]byte{1, 2, 3}); got != nil {
		t.Fatalf("garbage: %v", got)
	}
}

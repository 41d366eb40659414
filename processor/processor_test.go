package processor

import (
	"testing"

	"google.golang.org/protobuf/proto"

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

package processor

import (
	"bytes"
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
	v6 := []byte{0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8}
	tests := []struct {
		name   string
		ip     []byte
		v4, v6 int
		want   []byte
	}{
		{"v4 /24", []byte{1, 2, 3, 4}, 24, 48, []byte{1, 2, 3, 0}},
		{"v4 /20", []byte{1, 2, 0xff, 4}, 20, 48, []byte{1, 2, 0xf0, 0}},
		{"v4 /0", []byte{1, 2, 3, 4}, 0, 48, []byte{0, 0, 0, 0}},
		{"v6 /48", v6, 24, 48, []byte{0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"v6 /36", v6, 24, 36, []byte{0x20, 0x01, 0x0d, 0xb8, 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"garbage", []byte{1, 2, 3}, 24, 48, nil},
	}
	for _, tt := range tests {
		if got := appendTruncatedIP(nil, tt.ip, tt.v4, tt.v6); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: appendTruncatedIP(%v, %d, %d) = %v, want %v", tt.name, tt.ip, tt.v4, tt.v6, got, tt.want)
		}
	}
	if got := TruncateIP([]byte{1, 2, 3, 4}); !bytes.Equal(got, []byte{1, 2, 3, 0}) {
		t.Fatalf("TruncateIP default: %v", got)
	}
}

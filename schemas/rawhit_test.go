package schemas

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

func sampleHit() *HitFields {
	h := &HitFields{
		ReceivedAtMs: 1_764_331_200_123,
		NodeID:       "edge-a",
		BootMs:       1_764_330_000_000,
		Seq:          42,
		Kind:         pixelpb.Kind_KIND_VIEW,
		ContentID:    []byte("article-7"),
		SiteID:       []byte("news"),
		ClientIP:     []byte{203, 0, 113, 9},
		UserAgent:    []byte("Mozilla/5.0"),
		PageURL:      []byte("https://news.example/a/7"),
		Referrer:     []byte("https://search.example/"),
		UserID:       []byte("u-1"),
		CookieID:     []byte("c-2"),
		CampaignID:   []byte("spring"),
	}
	copy(h.EventID[:], "0123456789abcdef")
	return h
}

func TestAppendRawHitMatchesGenerated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(h *HitFields)
	}{
		{"full", func(*HitFields) {}},
		{"empty optional fields", func(h *HitFields) {
			h.SiteID, h.UserID, h.CookieID, h.CampaignID, h.Referrer = nil, nil, nil, nil, nil
		}},
		{"invalid", func(h *HitFields) { h.InvalidReason = "missing_cid"; h.ContentID = nil }},
		{"conversion, click and privacy fields", func(h *HitFields) {
			h.AdID, h.CreativeID, h.PlacementID = []byte("ad-1"), []byte("cr-2"), []byte("pl-3")
			h.Route = "conversion"
			h.OrderID, h.ValueMicros, h.Currency = []byte("o-99"), 12_340_000, []byte("EUR")
			h.ClickDestination = []byte("https://shop.example/x?y=1")
			h.Verified, h.GPC, h.DNT, h.GDPRApplies, h.ConsentGiven = true, true, true, true, true
		}},
		{"props and request headers", func(h *HitFields) {
			h.Props = []Prop{{[]byte("color"), []byte("red")}, {[]byte("empty"), nil}, {[]byte("size"), []byte("XL ✓")}}
			h.Purpose, h.AcceptLanguage = []byte("prefetch"), []byte("de-CH,de;q=0.9")
			h.PresentHeaders = HeaderAccept | HeaderCookie | HeaderSecChUA
		}},
		{"signature error", func(h *HitFields) { h.SignatureError = SignatureBad }},
		{"negative value", func(h *HitFields) { h.ValueMicros = -5; h.Route = "conversion" }},
		{"long fields (multi-byte lengths)", func(h *HitFields) {
			h.UserAgent = bytes.Repeat([]byte("u"), 128)
			h.PageURL = bytes.Repeat([]byte("p"), 20000)
			h.InvalidReason = InvalidReason(strings.Repeat("r", 200))
			h.Props = []Prop{{bytes.Repeat([]byte("k"), 127), bytes.Repeat([]byte("v"), 300)}}
			h.AcceptLanguage = bytes.Repeat([]byte("l"), 16384)
		}},
		{"ipv6 and large seq", func(h *HitFields) {
			h.ClientIP = bytes.Repeat([]byte{0xfe}, 16)
			h.Seq = 1<<63 + 5
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := sampleHit()
			tc.edit(h)
			got := AppendRawHit(nil, h)

			want := &pixelpb.RawHit{
				SchemaVersion: RawHitVersion,
				Origin: &pixelpb.Origin{
					EventId:      h.EventID[:],
					ReceivedAtMs: h.ReceivedAtMs,
					NodeId:       h.NodeID,
					BootMs:       h.BootMs,
					Seq:          h.Seq,
				},
				Kind:             h.Kind,
				ContentId:        string(h.ContentID),
				SiteId:           string(h.SiteID),
				ClientIp:         h.ClientIP,
				UserAgent:        string(h.UserAgent),
				PageUrl:          string(h.PageURL),
				Referrer:         string(h.Referrer),
				UserId:           string(h.UserID),
				CookieId:         string(h.CookieID),
				InvalidReason:    string(h.InvalidReason),
				CampaignId:       string(h.CampaignID),
				AdId:             string(h.AdID),
				CreativeId:       string(h.CreativeID),
				PlacementId:      string(h.PlacementID),
				Route:            h.Route,
				OrderId:          string(h.OrderID),
				ValueMicros:      h.ValueMicros,
				Currency:         string(h.Currency),
				ClickDestination: string(h.ClickDestination),
				Verified:         h.Verified,
				Gpc:              h.GPC,
				Dnt:              h.DNT,
				GdprApplies:      h.GDPRApplies,
				ConsentGiven:     h.ConsentGiven,
				Purpose:          string(h.Purpose),
				AcceptLanguage:   string(h.AcceptLanguage),
				PresentHeaders:   h.PresentHeaders,
				SignatureError:   string(h.SignatureError),
			}
			for _, p := range h.Props {
				want.Props = append(want.Props, &pixelpb.Prop{Key: string(p.Key), Value: string(p.Value)})
			}
			wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wantBytes) {
				t.Fatalf("AppendRawHit differs from proto.Marshal\n got %x\nwant %x", got, wantBytes)
			}
			var back pixelpb.RawHit
			if err := proto.Unmarshal(got, &back); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !proto.Equal(&back, want) {
				t.Fatalf("round trip: got %v, want %v", &back, want)
			}
		})
	}
}

func TestAppendRawHitAppends(t *testing.T) {
	t.Parallel()
	prefix := []byte("keep")
	out := AppendRawHit(append([]byte(nil), prefix...), sampleHit())
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("prefix lost: %q", out[:4])
	}
	if !bytes.Equal(out[len(prefix):], AppendRawHit(nil, sampleHit())) {
		t.Fatal("encoding depends on dst")
	}
}

func TestAppendCountKey(t *testing.T) {
	t.Parallel()
	got := string(AppendCountKey(nil, "a-1", pixelpb.Kind_KIND_VIEW, "human", pixelpb.Granularity_GRANULARITY_DAY, 1764288000000))
	if want := "a-1|2|human|2|1764288000000"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestTopicsUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range Topics() {
		if seen[s.Name] || s.Partitions < 1 {
			t.Fatalf("bad topic spec %+v", s)
		}
		seen[s.Name] = true
	}
	if !seen[TopicHits] || !seen[TopicEvents] || !seen[TopicDLQ] {
		t.Fatalf("missing topics: %v", seen)
	}
}

func FuzzDecodeRawHit(f *testing.F) {
	f.Add(AppendRawHit(nil, sampleHit()))
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		var h pixelpb.RawHit
		if err := proto.Unmarshal(b, &h); err != nil {
			return
		}
		// A record that decodes re-encodes to something that decodes to the same message.
		again, err := proto.Marshal(&h)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var h2 pixelpb.RawHit
		if err := proto.Unmarshal(again, &h2); err != nil || !proto.Equal(&h, &h2) {
			t.Fatalf("round trip changed the record: %v", err)
		}
	})
}

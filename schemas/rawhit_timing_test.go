package schemas

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

var sinkBytes []byte

func BenchmarkAppendRawHit(b *testing.B) {
	h := sampleHit()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRawHit(buf[:0], h)
	}
	b.SetBytes(int64(len(buf)))
	sinkBytes = buf
}

// BenchmarkMarshalRawHitGenerated is the reference for BenchmarkAppendRawHit:
// the same record built as the generated type and encoded by proto.Marshal,
// as a handler would without the Append encoder (string conversions included).
func BenchmarkMarshalRawHitGenerated(b *testing.B) {
	h := sampleHit()
	opts := proto.MarshalOptions{}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		m := &pixelpb.RawHit{
			SchemaVersion: RawHitVersion,
			Origin: &pixelpb.Origin{
				EventId: h.EventID[:], ReceivedAtMs: h.ReceivedAtMs, NodeId: h.NodeID, BootMs: h.BootMs, Seq: h.Seq,
			},
			Kind: h.Kind, ContentId: string(h.ContentID), SiteId: string(h.SiteID), ClientIp: h.ClientIP,
			UserAgent: string(h.UserAgent), PageUrl: string(h.PageURL), Referrer: string(h.Referrer),
			UserId: string(h.UserID), CookieId: string(h.CookieID), CampaignId: string(h.CampaignID),
		}
		var err error
		buf, err = opts.MarshalAppend(buf[:0], m)
		if err != nil {
			b.Fatal(err)
		}
	}
	sinkBytes = buf
}

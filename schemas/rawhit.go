package schemas

import (
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Field numbers of pixelpb.RawHit and pixelpb.Origin, mirrored from the .proto
// files; TestAppendRawHitMatchesGenerated keeps them in step.
const (
	rawHitSchemaVersion = 1
	rawHitOrigin        = 2
	rawHitKind          = 3
	rawHitContentID     = 4
	rawHitSiteID        = 5
	rawHitClientIP      = 6
	rawHitUserAgent     = 7
	rawHitPageURL       = 8
	rawHitReferrer      = 9
	rawHitUserID        = 10
	rawHitCookieID      = 11
	rawHitInvalidReason = 12
	rawHitCampaignID    = 13
	rawHitAdID          = 14
	rawHitCreativeID    = 15
	rawHitPlacementID   = 16
	rawHitRoute         = 17
	rawHitOrderID       = 18
	rawHitValueMicros   = 19
	rawHitCurrency      = 20
	rawHitClickDest     = 21
	rawHitProps         = 22
	rawHitVerified      = 23
	rawHitGPC           = 24
	rawHitDNT           = 25
	rawHitGDPRApplies   = 26
	rawHitConsentGiven  = 27
	rawHitPurpose       = 28
	rawHitAcceptLang    = 29
	rawHitPresentHdrs   = 30
	rawHitSignatureErr  = 31

	propKey   = 1
	propValue = 2

	originEventID    = 1
	originReceivedAt = 2
	originNodeID     = 3
	originBootMs     = 4
	originSeq        = 5
	originLane       = 6
)

// HitFields is a raw hit as the edge sees it. The byte slices are borrowed:
// AppendRawHit copies them into its output and keeps no reference.
type HitFields struct {
	EventID      [16]byte
	ReceivedAtMs int64
	NodeID       string
	BootMs       int64
	Seq          uint64
	// Lane is the partition of the hits topic the edge chose, plus one;
	// when set, Seq numbers the hits of (NodeID, BootMs, Lane) without gaps.
	Lane uint32

	Kind          pixelpb.Kind
	ContentID     []byte
	SiteID        []byte
	ClientIP      []byte
	UserAgent     []byte
	PageURL       []byte
	Referrer      []byte
	UserID        []byte
	CookieID      []byte
	CampaignID    []byte
	InvalidReason InvalidReason

	AdID, CreativeID, PlacementID []byte
	// Route is the endpoint that received the hit: "pixel", "beacon",
	// "batch", "click", "conversion".
	Route string
	// Conversions: order id, value in millionths of the currency unit, ISO
	// 4217 currency.
	OrderID     []byte
	ValueMicros int64
	Currency    []byte
	// ClickDestination is where a click redirected to.
	ClickDestination []byte
	Verified         bool
	// SignatureError says why a signed pixel did not verify (Signature*
	// constants); empty when it verified or carried no signature.
	SignatureError SignatureError
	GPC, DNT       bool
	GDPRApplies    bool
	ConsentGiven   bool
	// Props are the hit's custom properties, in the order given.
	Props []Prop
	// Purpose is the Sec-Purpose (or Purpose) header, AcceptLanguage the
	// Accept-Language header, PresentHeaders a set of Header* bits.
	Purpose        []byte
	AcceptLanguage []byte
	PresentHeaders uint32
}

// Prop is one custom property, borrowed like the rest of HitFields.
type Prop struct {
	Key, Value []byte
}

// AppendRawHit appends the protobuf encoding of h as a pixelpb.RawHit to dst
// and returns the extended slice. It does not allocate when dst has room.
func AppendRawHit(dst []byte, h *HitFields) []byte {
	dst = appendTag(dst, rawHitSchemaVersion, protowire.VarintType)
	dst = protowire.AppendVarint(dst, RawHitVersion)

	dst = appendTag(dst, rawHitOrigin, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(originSize(h)))
	dst = appendBytesField(dst, originEventID, h.EventID[:])
	dst = appendVarintField(dst, originReceivedAt, uint64(h.ReceivedAtMs))
	dst = appendStringField(dst, originNodeID, h.NodeID)
	dst = appendVarintField(dst, originBootMs, uint64(h.BootMs))
	dst = appendVarintField(dst, originSeq, h.Seq)
	dst = appendVarintField(dst, originLane, uint64(h.Lane))

	dst = appendVarintField(dst, rawHitKind, uint64(h.Kind))
	dst = appendBytesField(dst, rawHitContentID, h.ContentID)
	dst = appendBytesField(dst, rawHitSiteID, h.SiteID)
	dst = appendBytesField(dst, rawHitClientIP, h.ClientIP)
	dst = appendBytesField(dst, rawHitUserAgent, h.UserAgent)
	dst = appendBytesField(dst, rawHitPageURL, h.PageURL)
	dst = appendBytesField(dst, rawHitReferrer, h.Referrer)
	dst = appendBytesField(dst, rawHitUserID, h.UserID)
	dst = appendBytesField(dst, rawHitCookieID, h.CookieID)
	dst = appendStringField(dst, rawHitInvalidReason, string(h.InvalidReason))
	dst = appendBytesField(dst, rawHitCampaignID, h.CampaignID)
	dst = appendBytesField(dst, rawHitAdID, h.AdID)
	dst = appendBytesField(dst, rawHitCreativeID, h.CreativeID)
	dst = appendBytesField(dst, rawHitPlacementID, h.PlacementID)
	dst = appendStringField(dst, rawHitRoute, h.Route)
	dst = appendBytesField(dst, rawHitOrderID, h.OrderID)
	dst = appendVarintField(dst, rawHitValueMicros, uint64(h.ValueMicros))
	dst = appendBytesField(dst, rawHitCurrency, h.Currency)
	dst = appendBytesField(dst, rawHitClickDest, h.ClickDestination)
	for _, p := range h.Props {
		dst = appendTag(dst, rawHitProps, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(bytesFieldSize(propKey, len(p.Key))+bytesFieldSize(propValue, len(p.Value))))
		dst = appendBytesField(dst, propKey, p.Key)
		dst = appendBytesField(dst, propValue, p.Value)
	}
	dst = appendBoolField(dst, rawHitVerified, h.Verified)
	dst = appendBoolField(dst, rawHitGPC, h.GPC)
	dst = appendBoolField(dst, rawHitDNT, h.DNT)
	dst = appendBoolField(dst, rawHitGDPRApplies, h.GDPRApplies)
	dst = appendBoolField(dst, rawHitConsentGiven, h.ConsentGiven)
	dst = appendBytesField(dst, rawHitPurpose, h.Purpose)
	dst = appendBytesField(dst, rawHitAcceptLang, h.AcceptLanguage)
	dst = appendVarintField(dst, rawHitPresentHdrs, uint64(h.PresentHeaders))
	dst = appendStringField(dst, rawHitSignatureErr, string(h.SignatureError))
	return dst
}

func appendBoolField(dst []byte, num protowire.Number, v bool) []byte {
	if !v {
		return dst
	}
	return appendVarintField(dst, num, 1)
}

func originSize(h *HitFields) int {
	n := bytesFieldSize(originEventID, len(h.EventID))
	n += varintFieldSize(originReceivedAt, uint64(h.ReceivedAtMs))
	n += bytesFieldSize(originNodeID, len(h.NodeID))
	n += varintFieldSize(originBootMs, uint64(h.BootMs))
	n += varintFieldSize(originSeq, h.Seq)
	n += varintFieldSize(originLane, uint64(h.Lane))
	return n
}

// proto3 omits zero scalars and empty strings; so do these, which keeps the
// output identical to proto.Marshal of the generated type.

func appendVarintField(dst []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return dst
	}
	dst = appendTag(dst, num, protowire.VarintType)
	if v < 0x80 {
		return append(dst, byte(v))
	}
	return protowire.AppendVarint(dst, v)
}

func appendBytesField(dst []byte, num protowire.Number, b []byte) []byte {
	if len(b) == 0 {
		return dst
	}
	dst = appendTag(dst, num, protowire.BytesType)
	if len(b) < 0x80 {
		dst = append(dst, byte(len(b)))
	} else {
		dst = protowire.AppendVarint(dst, uint64(len(b)))
	}
	return append(dst, b...)
}

func appendStringField(dst []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return dst
	}
	dst = appendTag(dst, num, protowire.BytesType)
	if len(s) < 0x80 {
		dst = append(dst, byte(len(s)))
	} else {
		dst = protowire.AppendVarint(dst, uint64(len(s)))
	}
	return append(dst, s...)
}

// appendTag is protowire.AppendTag for the field numbers of this file
// (below 2048, so at most 2 bytes), small enough to inline: the encoder
// writes about 20 tags a hit.
func appendTag(dst []byte, num protowire.Number, typ protowire.Type) []byte {
	x := uint64(num)<<3 | uint64(typ&7)
	if x < 0x80 {
		return append(dst, byte(x))
	}
	return append(dst, byte(x)|0x80, byte(x>>7))
}

func varintFieldSize(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func bytesFieldSize(num protowire.Number, n int) int {
	if n == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// AppendVisitorPartitionKey appends the Kafka message key of a raw hit: the
// visitor key as 8 big-endian bytes.
func AppendVisitorPartitionKey(dst []byte, visitorKey uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, visitorKey)
}

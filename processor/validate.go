package processor

import (
	"strconv"

	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// validate returns why a decoded hit cannot become an event, or "".
func validate(h *pixelpb.RawHit) string {
	switch {
	case h.GetInvalidReason() != "":
		return h.GetInvalidReason()
	case h.GetSchemaVersion() != schemas.RawHitVersion:
		return "unknown schema version " + strconv.Itoa(int(h.GetSchemaVersion()))
	case h.GetContentId() == "":
		return schemas.InvalidMissingCID
	case h.GetOrigin() == nil || len(h.GetOrigin().GetEventId()) != 16 || h.GetOrigin().GetReceivedAtMs() <= 0:
		return schemas.InvalidBadOrigin
	case h.GetKind() == pixelpb.Kind_KIND_UNSPECIFIED:
		return schemas.InvalidBadKind
	case h.GetValueMicros() < 0: // the edge refuses them; a hit from elsewhere may not
		return schemas.InvalidNegativeValue
	}
	return ""
}

// TruncateIP keeps the network part of an address: /24 of IPv4, /48 of IPv6.
// Anything else gives nil.
func TruncateIP(ip []byte) []byte { return appendTruncatedIP(nil, ip, 24, 48) }

// appendTruncatedIP appends to dst the first v4 bits of an IPv4 address or
// v6 bits of an IPv6 one, the rest zero; anything else gives nil.
func appendTruncatedIP(dst, ip []byte, v4, v6 int) []byte {
	bits := v4
	switch len(ip) {
	case 4:
	case 16:
		bits = v6
	default:
		return nil
	}
	full := bits / 8
	dst = append(dst, ip[:full]...)
	if rem := bits % 8; rem != 0 {
		dst = append(dst, ip[full]&byte(0xff<<(8-rem)))
		full++
	}
	for range len(ip) - full {
		dst = append(dst, 0)
	}
	return dst
}

func redactProps(in []*pixelpb.Prop) []*pixelpb.Prop {
	for i, pr := range in {
		k, v := pii.RedactPII(pr.GetKey()), pii.RedactParam(pr.GetKey(), pr.GetValue())
		if k != pr.GetKey() || v != pr.GetValue() {
			in[i] = &pixelpb.Prop{Key: k, Value: v}
		}
	}
	return in
}

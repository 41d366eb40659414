package processor

import (
	"strconv"

	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// validate returns why a decoded hit cannot become an event, or "".
func validate(h *pixelpb.RawHit) schemas.InvalidReason {
	switch {
	case h.GetInvalidReason() != "":
		return schemas.InvalidReason(h.GetInvalidReason())
	case h.GetSchemaVersion() != schemas.RawHitVersion:
		return schemas.InvalidReason("unknown schema version " + strconv.Itoa(int(h.GetSchemaVersion())))
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

func redactProps(in []*pixelpb.Prop) []*pixelpb.Prop {
	for i, pr := range in {
		k, v := pii.RedactPII(pr.GetKey()), pii.RedactParam(pr.GetKey(), pr.GetValue())
		if k != pr.GetKey() || v != pr.GetValue() {
			in[i] = &pixelpb.Prop{Key: k, Value: v}
		}
	}
	return in
}

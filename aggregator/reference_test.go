//go:build integration

package aggregator

import (
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// The reference counting of the tests: which records and breakdown values
// an event counts in, as apply decides it.

// keysOf returns the Keys of the records an event counts in.
func keysOf(dst []hllstore.Key, ev *pixelpb.Event) []hllstore.Key {
	dk := dayKey(ev)
	var ids [4]hllstore.RecordID
	for _, id := range recordsOf(ids[:0], ev, dk.DayStart) {
		dst = append(dst, dk.Key(id))
	}
	return dst
}

// breakdownValue is the value of event ev in dimension dim, in the order
// of apply's values array.
func breakdownValue(ev *pixelpb.Event, dim string) string {
	switch dim {
	case hllstore.DimCountry:
		return ev.GetCountry()
	case hllstore.DimDevice:
		return ev.GetDeviceType()
	case hllstore.DimBrowser:
		return ev.GetBrowser()
	case hllstore.DimOS:
		return ev.GetOs()
	case hllstore.DimSource:
		return ev.GetReferrerMedium()
	}
	return ""
}

func breakdownKey(ev *pixelpb.Event) hllstore.BreakdownKey {
	return hllstore.BreakdownKey{ContentID: ev.GetContentId(), Kind: ev.GetKind(), DayStart: hllstore.DayStart(ev.GetOrigin().GetReceivedAtMs())}
}

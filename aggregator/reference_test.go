//go:build integration

package aggregator

import (
	"cmp"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
	"net/url"
)

// The reference counting of the tests: which records and breakdown values
// an event counts in, as apply decides it.

// keysOf returns the Keys of the records an event counts in.
func keysOf(dst []hllstore.Key, ev *pixelpb.Event) []hllstore.Key {
	dk := dayKey(ev)
	var ids [4]hllstore.RecordID
	class := classOf(ev)
	if ev.GetKind() == pixelpb.Kind_KIND_SESSION {
		class = visitClass(ev)
	}
	for _, id := range recordsOf(ids[:0], ev, class, ev.GetCampaignId(), dk.DayStart) {
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
	case hllstore.DimReferrer:
		return ev.GetReferrerDomain()
	case hllstore.DimUTMSource:
		return ev.GetUtmSource()
	case hllstore.DimUTMMedium:
		return ev.GetUtmMedium()
	case hllstore.DimUTMCampaign:
		return ev.GetUtmCampaign()
	case hllstore.DimDestination:
		return ev.GetClickDestination()
	case hllstore.DimPage, hllstore.DimLanding:
		if dim == hllstore.DimLanding && (ev.GetSessionSeq() != 1 || ev.GetKind() != pixelpb.Kind_KIND_VIEW) {
			return ""
		}
		if ev.GetPageUrl() == "" {
			return ""
		}
		u, err := url.Parse(ev.GetPageUrl())
		if err != nil {
			panic(err)
		}
		return cmp.Or(u.Path, "/")
	}
	return ""
}

// optionalDim reports whether a dimension counts only events with a value.
func optionalDim(dim string) bool {
	switch dim {
	case hllstore.DimCountry, hllstore.DimDevice, hllstore.DimBrowser, hllstore.DimOS, hllstore.DimSource:
		return false
	}
	return true
}

func breakdownKey(ev *pixelpb.Event) hllstore.BreakdownKey {
	return hllstore.BreakdownKey{ContentID: ev.GetContentId(), Kind: ev.GetKind(), DayStart: hllstore.DayStart(ev.GetOrigin().GetReceivedAtMs())}
}

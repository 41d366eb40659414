//go:build !race

package aggregator

import (
	"testing"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// TestPropBreakdownAllocations: counting an event under custom property
// values the day's breakdown holds already allocates nothing. It runs
// without -race, which allocates.
func TestPropBreakdownAllocations(t *testing.T) {
	b := hllstore.NewBreakdown()
	var v hllstore.Values
	var scratch []byte
	ev := &pixelpb.Event{Kind: pixelpb.Kind_KIND_CUSTOM, Country: "DE", VisitorKey: 7,
		Props: []*pixelpb.Prop{{Key: "action", Value: "share"}, {Key: "network", Value: "email"}}}
	countBreakdowns(&b, &v, &scratch, ev, 50)
	if n := testing.AllocsPerRun(100, func() { countBreakdowns(&b, &v, &scratch, ev, 50) }); n != 0 {
		t.Errorf("countBreakdowns allocates %.1f times per event of known property values, want 0", n)
	}
	if got := b.Dims[hllstore.DimProp]["action=share"].Total; got != 102 {
		t.Errorf("action=share counted %d times, want 102 (once, then AllocsPerRun's warm-up and 100 runs)", got)
	}
}

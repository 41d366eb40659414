//go:build !race

package processor

import (
	"testing"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// TestClickDestinationAllocations: a click's destination costs no
// allocation when it holds nothing to redact, like the page URL. It runs
// without -race, which allocates (and empties sync.Pools at random).
func TestClickDestinationAllocations(t *testing.T) {
	h := &pixelpb.RawHit{Kind: pixelpb.Kind_KIND_CLICK, ClickDestination: "https://shop.example/sale?utm_source=news&cb=1732800000123&q=%E2%82%AC"}
	if clickDestination(h) != h.GetClickDestination() {
		t.Fatalf("clickDestination changed %q", h.GetClickDestination())
	}
	if n := testing.AllocsPerRun(100, func() { clickDestination(h) }); n != 0 {
		t.Errorf("clickDestination allocates %.1f times per clean destination, want 0", n)
	}
}

//go:build !race

package pii

import "testing"

// TestFindAllocations: the edge calls Find on every text field of every
// hit; clean text must cost no allocation, also when it has a '%' or a
// long digit run to look at. It runs without -race, which allocates (and
// empties sync.Pools at random).
func TestFindAllocations(t *testing.T) {
	for _, s := range []string{
		"https://news.example/2026/11/28/story?utm_source=x&cb=1732800000123",
		"https://news.example/a%20b?q=%E2%82%AC",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
	} {
		b := []byte(s)
		Find(nil, b) // warm the pool
		if n := testing.AllocsPerRun(100, func() { Find(nil, b) }); n != 0 {
			t.Errorf("Find(%q) allocates %.1f times", s, n)
		}
		if Redact(s) != s {
			t.Errorf("Redact changed %q", s)
		}
	}
}

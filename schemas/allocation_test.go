//go:build !race

package schemas

import "testing"

func TestAppendRawHitAllocations(t *testing.T) {
	h := sampleHit()
	buf := make([]byte, 0, 1024)
	n := testing.AllocsPerRun(100, func() { buf = AppendRawHit(buf[:0], h) })
	if n != 0 {
		t.Fatalf("AppendRawHit allocates %.1f times per call, want 0", n)
	}
}

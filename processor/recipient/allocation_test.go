//go:build !race

package recipient

import "testing"

// TestKeyAllocations: a warm keyer allocates nothing. It runs without
// -race, which allocates.
func TestKeyAllocations(t *testing.T) {
	k := NewKeyer("s")
	buf := make([]byte, 0, KeySize)
	if n := testing.AllocsPerRun(100, func() { buf = k.Append(buf[:0], "acme", "subscriber-42") }); n != 0 {
		t.Errorf("Append allocates %.1f times, want 0", n)
	}
}

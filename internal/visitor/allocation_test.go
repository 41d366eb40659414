//go:build !race

package visitor

import "testing"

// The race detector makes sync.Pool drop entries at random, so this runs
// without -race (make test runs the allocation tests separately).
func TestKeyAllocations(t *testing.T) {
	k := NewKeyer("s")
	ip, ua, site := []byte{1, 2, 3, 4}, []byte("UA"), []byte("site")
	k.Key(0, site, nil, nil, ip, ua)
	n := testing.AllocsPerRun(200, func() { k.Key(1000, site, nil, nil, ip, ua) })
	if n > 0.05 {
		t.Fatalf("Key allocates %.2f per call", n)
	}
}

func TestPartitionKeyAllocations(t *testing.T) {
	k := NewKeyer("s")
	ip, ua, site := []byte{1, 2, 3, 4}, []byte("UA"), []byte("site")
	n := testing.AllocsPerRun(200, func() { k.PartitionKey(1000, site, nil, nil, ip, ua) })
	if n > 0 {
		t.Fatalf("PartitionKey allocates %.2f per call", n)
	}
}

func TestRecipientKeyAllocations(t *testing.T) {
	k := NewKeyer("s")
	buf := make([]byte, 0, RecipientKeySize)
	buf = k.RecipientKey(buf[:0], "acme", "subscriber-42")
	n := testing.AllocsPerRun(200, func() { buf = k.RecipientKey(buf[:0], "acme", "subscriber-42") })
	if n > 0.05 {
		t.Fatalf("RecipientKey allocates %.2f per call", n)
	}
}

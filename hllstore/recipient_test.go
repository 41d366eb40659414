package hllstore

import (
	"reflect"
	"testing"
)

// An activity goes through its encoding unchanged, uids with spaces, '='
// and '%' included; a malformed value is refused.
func TestActivityEncoding(t *testing.T) {
	var a Activity
	a.UID = "ann smith=50% \x01"
	a.AddOpen(2000, false)
	a.AddOpen(1000, false)
	a.AddOpen(500, true)
	a.AddClick("https://shop.example/a", false)
	a.AddClick("https://shop.example/a", false)
	a.AddClick("https://shop.example/b", true)
	a.AddConversion("ord-1", 19_990_000, "EUR")
	a.AddConversion("ord-1", 5, "EUR") // the same order again
	a.AddConversion("", 0, "")
	a.Views = 3
	got, ok := decodeActivity(string(encodeActivity(nil, &a)))
	if !ok {
		t.Fatalf("decode %q", encodeActivity(nil, &a))
	}
	a.dests = nil
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("decoded %+v\nwant %+v", got, a)
	}
	if got.Opens != 2 || got.FirstOpenMs != 1000 || got.LastOpenMs != 2000 || got.MachineOpens != 1 || got.Clicks[LinkID("https://shop.example/a")] != 2 ||
		got.MachineClicks != 1 || len(got.Orders) != 1 || got.Conversions != 1 || !got.Human() || got.MachineOnly() {
		t.Fatalf("activity %+v", got)
	}
	for _, bad := range []string{"ofive", "cabc", "xord", "i%4", "i%zz"} {
		if _, ok := decodeActivity(bad); ok {
			t.Errorf("decodeActivity(%q) accepted", bad)
		}
	}
	var m Activity
	m.AddOpen(7, true)
	m.AddClick("https://x.example/", true)
	if !m.MachineOnly() || m.Human() {
		t.Fatalf("machine-only %+v", m)
	}
}

// Merging keeps the earliest first, the latest last, an order once, and
// adds counts.
func TestActivityMerge(t *testing.T) {
	var a, b Activity
	a.AddOpen(100, false)
	a.AddConversion("o1", 10, "USD")
	b.AddOpen(50, false)
	b.AddOpen(300, false)
	b.AddConversion("o1", 99, "USD")
	b.AddConversion("o2", 20, "USD")
	b.UID = "u"
	a.Merge(&b)
	if a.Opens != 3 || a.FirstOpenMs != 50 || a.LastOpenMs != 300 || len(a.Orders) != 2 || a.Orders[0].ValueMicros != 10 || a.UID != "u" {
		t.Fatalf("merged %+v", a)
	}
}

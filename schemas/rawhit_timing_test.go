package schemas

import "testing"

var sinkBytes []byte

func BenchmarkAppendRawHit(b *testing.B) {
	h := sampleHit()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRawHit(buf[:0], h)
	}
	b.SetBytes(int64(len(buf)))
	sinkBytes = buf
}

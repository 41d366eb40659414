package edge

import (
	"testing"

	"github.com/pixelpipe/pixelpipe/internal/pii"
)

var sinkBool bool

// BenchmarkMayHoldPII is the edge's quick pre-test on the text of a plain
// hit (user agent, page URL, referrer); the reference is pii.Find on the
// same text, which the pre-test spares.
func BenchmarkMayHoldPII(b *testing.B) {
	texts := [][]byte{
		[]byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"),
		[]byte("https://x.example/a"), []byte("https://www.example.com/news/2026/11/article-7"),
	}
	b.Run("quick", func(b *testing.B) {
		for b.Loop() {
			for _, t := range texts {
				sinkBool = mayHoldPII(t)
			}
		}
	})
	b.Run("pii.Find", func(b *testing.B) {
		for b.Loop() {
			for _, t := range texts {
				sinkBool = pii.Find(nil, t) != 0
			}
		}
	})
}

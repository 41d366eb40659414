package edge

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/pixelpipe/pixelpipe/schemas"
)

const benchQuery = "cid=article-7&site=news&k=impression&cmp=spring&url=https%3A%2F%2Fx.example%2Fa&cb=123"

// BenchmarkFromQuery is the handler's parse of BenchmarkPixelHandler's
// query string; BenchmarkFromArgs is the same with fasthttp's Args.
func BenchmarkFromQuery(b *testing.B) {
	q := []byte(benchQuery)
	var p hitParams
	var buf []byte
	var props []schemas.Prop
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		buf, props = p.fromQuery(q, buf[:0], props[:0])
	}
}

func BenchmarkFromArgs(b *testing.B) {
	q := []byte(benchQuery)
	var p hitParams
	var args fasthttp.Args
	var props []schemas.Prop
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		args.ParseBytes(q)
		props = p.fromArgs(&args, props[:0])
	}
}

package edge

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkPixelHandler measures the handler alone: parse, key, encode,
// append to the spool (a copy into its mapped segment); the spool is drained as the publisher
// would, without Kafka.
func BenchmarkPixelHandler(b *testing.B) {
	s := newTestServer(b, nil)
	done := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			recs, pos, err := s.spool.Read(2000, 8<<20)
			if err == nil && len(recs) > 0 {
				_ = s.spool.Ack(pos, len(recs))
				continue
			}
			select {
			case <-s.spool.Notify():
			case <-done:
				return
			}
		}
	}()
	defer func() { close(done); <-drained }()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		req := benchRequest()
		defer fasthttp.ReleaseRequest(req)
		ctx.Init(req, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 4000}, nil)
		uri := append([]byte(nil), req.RequestURI()...)
		for pb.Next() {
			// A served request is parsed afresh: setting the request
			// line again makes fasthttp parse the URI and query again.
			ctx.Request.SetRequestURIBytes(uri)
			ctx.Response.Reset()
			s.handle(&ctx)
		}
	})
}

// BenchmarkBareGIFHandler is the reference for BenchmarkPixelHandler: a
// fasthttp handler that answers the same GIF with the same headers and
// records nothing. The difference is what recording a hit costs.
func BenchmarkBareGIFHandler(b *testing.B) {
	bare := func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Response.Header
		h.SetContentTypeBytes(contentTypeGIF)
		h.SetBytesKV(headerCacheControl, valueNoCache)
		h.SetBytesKV(headerPragma, valuePragma)
		h.SetBytesKV(headerExpires, valueExpires)
		ctx.SetBody(transparentGIF)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		req := benchRequest()
		defer fasthttp.ReleaseRequest(req)
		ctx.Init(req, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 4000}, nil)
		uri := append([]byte(nil), req.RequestURI()...)
		for pb.Next() {
			ctx.Request.SetRequestURIBytes(uri)
			ctx.Response.Reset()
			bare(&ctx)
		}
	})
}

// benchRequest is the pixel request both handler benchmarks serve; release
// it with fasthttp.ReleaseRequest.
func benchRequest() *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI("/p.gif?cid=article-7&site=news&k=impression&cmp=spring&url=https%3A%2F%2Fx.example%2Fa&cb=123")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
	return req
}

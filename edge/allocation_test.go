//go:build !race

package edge

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestPixelAllocations holds the handler to its budget: no allocation per
// pixel request once pools are warm, appending to the spool included. It runs
// without -race, which allocates.
func TestPixelAllocations(t *testing.T) {
	s := newTestServer(t, nil)
	var ctx fasthttp.RequestCtx
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("/p.gif?cid=article-7&site=news&k=impression&cmp=spring&url=https%3A%2F%2Fx.example%2Fa&cb=123")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
	req.Header.Set("Referer", "https://news.example/")
	ctx.Init(req, &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 4000}, nil)
	serve := func() {
		ctx.Response.Reset()
		s.handle(&ctx)
	}
	for range 10 {
		serve()
	}
	if n := testing.AllocsPerRun(1000, serve); n != 0 {
		t.Fatalf("pixel request allocates %.2f times, want 0", n)
	}
}

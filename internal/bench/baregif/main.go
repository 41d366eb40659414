// Command baregif is the reference `make bench-edge` measures the edge
// against: a fasthttp server answering every request with the edge's
// 43-byte GIF and the same cache headers, recording nothing.
package main

import (
	"flag"
	"log"

	"github.com/valyala/fasthttp"
)

var gif = []byte{
	'G', 'I', 'F', '8', '9', 'a', 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
	0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18480", "listen address")
	flag.Parse()
	s := &fasthttp.Server{
		Name:                  "baregif",
		NoDefaultServerHeader: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			h := &ctx.Response.Header
			h.SetContentType("image/gif")
			h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
			h.Set("Pragma", "no-cache")
			h.Set("Expires", "0")
			ctx.SetBody(gif)
		},
	}
	log.Fatal(s.ListenAndServe(*addr))
}

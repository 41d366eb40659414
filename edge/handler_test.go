package edge

import (
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"google.golang.org/protobuf/proto"

	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// newTestServer returns an edge whose publisher is never started: handled
// hits stay in its spool, where tests read them.
func newTestServer(t testing.TB, edit func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NodeID = "test-node"
	cfg.VisitorSecret = "test-secret"
	cfg.Spool.Dir = t.TempDir()
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"} // nothing listens: hits stay in the spool
	// The clock is frozen (testNow) and most tests send from one public
	// address, so the rate policy would judge them all; its own tests
	// (safety_test.go) turn it on.
	cfg.RateFlag, cfg.RateShed = 0, 0
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.release)
	s.clock = func() time.Time { return testNow }
	return s
}

// do serves one request and returns the response and the hit it queued, if any.
func do(t testing.TB, s *Server, method, uri string, headers map[string]string, remote string) (*fasthttp.Response, *pixelpb.RawHit, []byte) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	addr, err := net.ResolveTCPAddr("tcp", remote)
	if err != nil {
		t.Fatal(err)
	}
	ctx.Init(req, addr, nil)
	s.handle(&ctx)
	resp := &fasthttp.Response{}
	ctx.Response.CopyTo(resp)
	hit, key := spooled(t, s)
	return resp, hit, key
}

// spooled takes the next hit out of the spool, if there is one.
func spooled(t testing.TB, s *Server) (*pixelpb.RawHit, []byte) {
	t.Helper()
	recs, pos, err := s.spool.Read(1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	var hit pixelpb.RawHit
	if err := proto.Unmarshal(recs[0][headerLen:], &hit); err != nil {
		t.Fatalf("spooled record does not decode: %v", err)
	}
	key := append([]byte(nil), recs[0][:keyLen]...)
	if err := s.spool.Ack(pos, 1); err != nil {
		t.Fatal(err)
	}
	return &hit, key
}

func assertGIF(t *testing.T, resp *fasthttp.Response) {
	t.Helper()
	if resp.StatusCode() != 200 || !bytes.Equal(resp.Body(), transparentGIF) || len(transparentGIF) != 43 {
		t.Fatalf("want 200 and the 43-byte GIF, got %d and %d bytes", resp.StatusCode(), len(resp.Body()))
	}
	for k, want := range map[string]string{
		"Content-Type":  "image/gif",
		"Cache-Control": "no-cache, no-store, must-revalidate",
		"Pragma":        "no-cache",
		"Expires":       "0",
	} {
		if got := string(resp.Header.Peek(k)); got != want {
			t.Fatalf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestPixel(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", maxIDLen+1)
	for _, tc := range []struct {
		name    string
		uri     string
		headers map[string]string
		want    func(t *testing.T, h *pixelpb.RawHit)
	}{
		{"minimal view", "/p.gif?cid=article-7", nil, func(t *testing.T, h *pixelpb.RawHit) {
			if h.GetContentId() != "article-7" || h.GetKind() != pixelpb.Kind_KIND_VIEW || h.GetInvalidReason() != "" {
				t.Fatalf("got %v", h)
			}
		}},
		{"all parameters", "/p.gif?cid=ad-1&site=news&k=impression&cmp=spring&ad=a1&cr=c2&pl=p3&uid=u1&url=https%3A%2F%2Fx.example%2Fa&ref=https%3A%2F%2Fs.example%2F&cb=123",
			map[string]string{"User-Agent": "UA/1", "Cookie": "ppuid=c-9"}, func(t *testing.T, h *pixelpb.RawHit) {
				want := &pixelpb.RawHit{
					ContentId: "ad-1", SiteId: "news", Kind: pixelpb.Kind_KIND_IMPRESSION, CampaignId: "spring",
					UserId: "u1", PageUrl: "https://x.example/a", Referrer: "https://s.example/", UserAgent: "UA/1", CookieId: "c-9",
					AdId: "a1", CreativeId: "c2", PlacementId: "p3", Route: "pixel", PresentHeaders: schemas.HeaderCookie,
				}
				h.Origin, h.ClientIp, h.SchemaVersion = nil, nil, 0
				if !proto.Equal(h, want) {
					t.Fatalf("got %v\nwant %v", h, want)
				}
			}},
		// The page and its referrer, as the page snippet sends them; the
		// Referer header of an image request is the page that loaded it.
		{"url and ref", "/p.gif?cid=a&url=https%3A%2F%2Fshop.example%2Fp%3Futm_source%3Dnl&ref=https%3A%2F%2Fwww.google.com%2F",
			map[string]string{"Referer": "https://shop.example/p?utm_source=nl"}, func(t *testing.T, h *pixelpb.RawHit) {
				if h.GetPageUrl() != "https://shop.example/p?utm_source=nl" || h.GetReferrer() != "https://www.google.com/" {
					t.Fatalf("page %q, referrer %q", h.GetPageUrl(), h.GetReferrer())
				}
			}},
		{"referer header is the page", "/p.gif?cid=a", map[string]string{"Referer": "https://shop.example/post?gclid=G1"}, func(t *testing.T, h *pixelpb.RawHit) {
			if h.GetPageUrl() != "https://shop.example/post?gclid=G1" || h.GetReferrer() != "" {
				t.Fatalf("page %q, referrer %q", h.GetPageUrl(), h.GetReferrer())
			}
		}},
		{"referer header and ref", "/p.gif?cid=a&ref=https%3A%2F%2Ft.co%2Fx", map[string]string{"Referer": "https://shop.example/"}, func(t *testing.T, h *pixelpb.RawHit) {
			if h.GetPageUrl() != "https://shop.example/" || h.GetReferrer() != "https://t.co/x" {
				t.Fatalf("page %q, referrer %q", h.GetPageUrl(), h.GetReferrer())
			}
		}},
		{"direct visit: empty ref, no fallback", "/p.gif?cid=a&url=https%3A%2F%2Fshop.example%2F&ref=", map[string]string{"Referer": "https://shop.example/"}, func(t *testing.T, h *pixelpb.RawHit) {
			if h.GetPageUrl() != "https://shop.example/" || h.GetReferrer() != "" {
				t.Fatalf("page %q, referrer %q", h.GetPageUrl(), h.GetReferrer())
			}
		}},
		{"missing cid is recorded invalid", "/p.gif?site=x", nil, func(t *testing.T, h *pixelpb.RawHit) {
			if schemas.InvalidReason(h.GetInvalidReason()) != schemas.InvalidMissingCID {
				t.Fatalf("reason %q", h.GetInvalidReason())
			}
		}},
		{"hostile cid", "/p.gif?cid=%3Cscript%3E", nil, func(t *testing.T, h *pixelpb.RawHit) {
			if schemas.InvalidReason(h.GetInvalidReason()) != schemas.InvalidBadCID || h.GetContentId() != "" {
				t.Fatalf("got %v", h)
			}
		}},
		{"overlong cid", "/p.gif?cid=" + long, nil, func(t *testing.T, h *pixelpb.RawHit) {
			if schemas.InvalidReason(h.GetInvalidReason()) != schemas.InvalidBadCID {
				t.Fatalf("reason %q", h.GetInvalidReason())
			}
		}},
		{"unknown kind", "/p.gif?cid=a&k=boom", nil, func(t *testing.T, h *pixelpb.RawHit) {
			if schemas.InvalidReason(h.GetInvalidReason()) != schemas.InvalidBadKind {
				t.Fatalf("reason %q", h.GetInvalidReason())
			}
		}},
		{"invalid UTF-8 and malformed escapes", "/p.gif?cid=a&url=%ff%fe%zz&site=%C0%AF", nil, func(t *testing.T, h *pixelpb.RawHit) {
			if schemas.InvalidReason(h.GetInvalidReason()) != schemas.InvalidBadID || h.GetPageUrl() != "\ufffd\ufffd%zz" {
				t.Fatalf("reason %q, url %q", h.GetInvalidReason(), h.GetPageUrl())
			}
		}},
		{"invalid UTF-8 in user agent and uid", "/p.gif?cid=a&uid=%ff", map[string]string{"User-Agent": "bad\xffua"}, func(t *testing.T, h *pixelpb.RawHit) {
			if schemas.InvalidReason(h.GetInvalidReason()) != schemas.InvalidBadID || h.GetUserAgent() != "bad\ufffdua" || h.GetUserId() != "" {
				t.Fatalf("got %v", h)
			}
		}},
		{"a rune cut at the length limit", "/p.gif?cid=a&url=" + strings.Repeat("x", maxTextLen-1) + "%C3%A9", nil, func(t *testing.T, h *pixelpb.RawHit) {
			if !strings.HasSuffix(h.GetPageUrl(), "x\ufffd") {
				t.Fatalf("url ends %q", h.GetPageUrl()[len(h.GetPageUrl())-5:])
			}
		}},
		{"long url is cut", "/p.gif?cid=a&url=" + strings.Repeat("x", 3000), nil, func(t *testing.T, h *pixelpb.RawHit) {
			if len(h.GetPageUrl()) != maxTextLen && len(h.GetPageUrl()) != maxTextLen+2 {
				t.Fatalf("url of %d bytes", len(h.GetPageUrl()))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, nil)
			resp, hit, _ := do(t, s, "GET", tc.uri, tc.headers, "198.51.100.7:5555")
			assertGIF(t, resp)
			if hit == nil {
				t.Fatal("no hit queued")
			}
			tc.want(t, hit)
		})
	}
}

func TestPixelOrigin(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	_, h1, key := do(t, s, "GET", "/p.gif?cid=a", map[string]string{"User-Agent": "UA"}, "198.51.100.7:1")
	_, h2, _ := do(t, s, "HEAD", "/p.gif?cid=b", nil, "[2001:db8::1]:1")
	o1, o2 := h1.GetOrigin(), h2.GetOrigin()
	if o1.GetSeq() != 1 || o2.GetSeq() != 2 || o1.GetNodeId() != "test-node" || o1.GetReceivedAtMs() != testNow.UnixMilli() {
		t.Fatalf("origins %v %v", o1, o2)
	}
	if len(o1.GetEventId()) != 16 || bytes.Equal(o1.GetEventId(), o2.GetEventId()) {
		t.Fatalf("event ids %x %x", o1.GetEventId(), o2.GetEventId())
	}
	if !bytes.Equal(h1.GetClientIp(), []byte{198, 51, 100, 7}) || len(h2.GetClientIp()) != 16 {
		t.Fatalf("client ips %v %v", h1.GetClientIp(), h2.GetClientIp())
	}
	// The Kafka key is the visitor's partition key (for a cookieless
	// visitor, one that does not change at midnight).
	want := visitor.NewKeyer("test-secret").PartitionKey(testNow.UnixMilli(), nil, nil, nil, []byte{198, 51, 100, 7}, []byte("UA"))
	if got := binary.BigEndian.Uint64(key); got != want {
		t.Fatalf("partition key %x, want %x", got, want)
	}
}

func TestNonPixelRoutes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	resp, hit, _ := do(t, s, "POST", "/p.gif?cid=a", nil, "127.0.0.1:1")
	if resp.StatusCode() != 405 || hit != nil || string(resp.Header.Peek("Allow")) != "GET, HEAD" {
		t.Fatalf("POST: %d, hit %v", resp.StatusCode(), hit)
	}
	resp, hit, _ = do(t, s, "GET", "/nope", nil, "127.0.0.1:1")
	if resp.StatusCode() != 404 || hit != nil {
		t.Fatalf("unknown path: %d", resp.StatusCode())
	}
}

func TestSpoolFullDropsAndCounts(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *Config) { c.Spool.MaxBytes, c.Spool.SegmentBytes = 4096, 4096 })
	var ctx fasthttp.RequestCtx
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("/p.gif?cid=a")
	ctx.Init(req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
	const n = 100
	for range n {
		s.handle(&ctx)
		if ctx.Response.StatusCode() != 200 || !bytes.Equal(ctx.Response.Body(), transparentGIF) {
			t.Fatal("a full spool must not change the answer")
		}
	}
	accepted, dropped := testutil.ToFloat64(s.m.accepted), testutil.ToFloat64(s.m.dropped)
	if accepted+dropped != n || dropped == 0 || accepted == 0 {
		t.Fatalf("accepted %v + dropped %v, want both > 0 and %d together", accepted, dropped, n)
	}
	if st := s.spool.Stats(); float64(st.Records) != accepted || st.Bytes > 4096 {
		t.Fatalf("spool holds %d hits in %d bytes, want the %v accepted within 4096 bytes", st.Records, st.Bytes, accepted)
	}
	if s.Ready() == nil {
		t.Fatal("ready with a full spool")
	}
}

func FuzzParseHit(f *testing.F) {
	for _, s := range []string{"cid=a", "cid=%zz&k=view", "c%69d=a%2&p.x=1+2%&p.%79=%41&cid=b", "=&==&k&cid&cid=c&p.=&%", "url=%E2%82%AC%e2&ref=%%41+%4g", "cid=a&&&=x", "cid=%00", "cid=%C0%AF&site=%ff", "k=click&cid=" + strings.Repeat("z", 300)} {
		f.Add(s)
	}
	s := newTestServer(f, nil)
	f.Fuzz(func(t *testing.T, query string) {
		// Only what can stand in a request target: no controls, spaces or
		// fragment (a raw request with them is refused by the HTTP parser).
		if len(query) > 4096 || strings.IndexFunc(query, func(r rune) bool { return r <= ' ' || r == '#' || r == 0x7f }) >= 0 {
			return
		}
		resp, hit, _ := do(t, s, "GET", "/p.gif?"+query, nil, "192.0.2.1:1")
		if resp.StatusCode() != 200 || !bytes.Equal(resp.Body(), transparentGIF) {
			t.Fatalf("status %d for %q", resp.StatusCode(), query)
		}
		if hit == nil {
			t.Fatal("no hit recorded")
		}
		if hit.GetInvalidReason() == "" && (hit.GetContentId() == "" || len(hit.GetContentId()) > maxIDLen) {
			t.Fatalf("a valid hit with content id %q", hit.GetContentId())
		}

		checkFromQuery(t, query)
	})
}

// fromArgs is what fromQuery must agree with: the parameters and p.*
// properties read from fasthttp's Args of the query string (the handler's
// parser before fromQuery), the first occurrence of a name counting.
func (p *hitParams) fromArgs(args *fasthttp.Args, props []schemas.Prop) []schemas.Prop {
	*p = hitParams{}
	var seen uint32
	for k, v := range args.All() {
		p.n++
		dst, bit := p.field(k)
		if dst == nil {
			if bytes.HasPrefix(k, propPrefix) {
				props = append(props, schemas.Prop{Key: k[len(propPrefix):], Value: v})
			}
			continue
		}
		if seen&bit == 0 {
			seen |= bit
			*dst = v
		}
	}
	return props
}

// FuzzFromQuery is FuzzParseHit's differential check alone, on any bytes
// (a query string that reached the handler may hold more than a request
// line would), and fast enough to explore the escapes.
func FuzzFromQuery(f *testing.F) {
	for _, s := range []string{"cid=a&cid=b", "c%69d=a%2&p.x=1+2%&p.%79=%41&cid=b", "=&==&k&cid&cid=c&p.=&%", "url=%E2%82%AC%e2&ref=%%41+%4g", "p.a=%&p.b=%4&p.c=%+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		if len(query) > 4096 {
			return
		}
		checkFromQuery(t, query)
	})
}

// checkFromQuery fails t unless fromQuery reads from query what fromArgs
// reads from fasthttp's Args of it.
func checkFromQuery(t *testing.T, query string) {
	t.Helper()
	var args fasthttp.Args
	args.Parse(query)
	var want, got hitParams
	wantProps := want.fromArgs(&args, nil)
	_, gotProps := got.fromQuery([]byte(query), nil, nil)
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(hitParams{}), cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("fromQuery(%q) differs from Args (-Args +fromQuery):\n%s", query, diff)
	}
	if diff := cmp.Diff(wantProps, gotProps, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("fromQuery(%q) properties differ from Args (-Args +fromQuery):\n%s", query, diff)
	}
}

package edge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// The bad-input suite (T-S1 to T-S12 of docs/test-catalogue.md) runs the real
// fasthttp server, configured as New configures it, on 127.0.0.1 and talks
// to it over TCP with raw bytes. The publisher is not started: accepted hits
// stay in the spool, where the tests read them. Every answer is checked for
// its documented status and for never being a 5xx.

// Short timeouts keep the slow-client tests bounded.
const (
	testReadTimeout = time.Second
	testIdleTimeout = time.Second
)

// socketServer starts a hardened edge on 127.0.0.1 serving over a real socket.
func socketServer(t *testing.T, edit func(*Config)) *Server {
	t.Helper()
	s := newTestServer(t, func(c *Config) {
		c.ReadTimeout, c.WriteTimeout, c.IdleTimeout = testReadTimeout, testReadTimeout, testIdleTimeout
		if edit != nil {
			edit(c)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.srv.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	return s
}

// exchange writes raw to a new connection (concurrently, as a client that
// does not wait would) and reads every response until the server closes the
// connection or wait passes. closed reports that the server closed it.
func exchange(t *testing.T, addr, raw string, wait time.Duration) (resps []*fasthttp.Response, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = io.WriteString(c, raw) }()
	return readResponses(t, c, wait, strings.HasPrefix(raw, "HEAD "))
}

func readResponses(t *testing.T, c net.Conn, wait time.Duration, head bool) (resps []*fasthttp.Response, closed bool) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	for {
		if _, err := br.Peek(1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return resps, false
			}
			return resps, true // EOF or reset: the server closed
		}
		resp := &fasthttp.Response{}
		resp.SkipBody = head
		if err := resp.Read(br); err != nil {
			t.Fatalf("response %d does not parse: %v", len(resps)+1, err)
		}
		if resp.StatusCode() >= 500 {
			t.Fatalf("got %d: %s", resp.StatusCode(), resp.Body())
		}
		resps = append(resps, resp)
	}
}

// get sends one GET with the given extra header lines and returns its answer.
func get(t *testing.T, s *Server, target string, headers ...string) *fasthttp.Response {
	t.Helper()
	req := "GET " + target + " HTTP/1.1\r\nHost: px.example\r\nConnection: close\r\n" + strings.Join(headers, "") + "\r\n"
	resps, _ := exchange(t, s.Addr(), req, 5*time.Second)
	if len(resps) != 1 {
		t.Fatalf("want one answer to %.80q, got %d", target, len(resps))
	}
	return resps[0]
}

// allSpooled takes every hit out of the spool.
func allSpooled(t *testing.T, s *Server) []*pixelpb.RawHit {
	t.Helper()
	var hits []*pixelpb.RawHit
	for {
		h, _ := spooled(t, s)
		if h == nil {
			return hits
		}
		hits = append(hits, h)
	}
}

func oneHit(t *testing.T, s *Server) *pixelpb.RawHit {
	t.Helper()
	hits := allSpooled(t, s)
	if len(hits) != 1 {
		t.Fatalf("want one recorded hit, got %d", len(hits))
	}
	return hits[0]
}

// TestBadQueryStrings is T-S1: malformed, invalid-UTF-8 and oversized query
// strings still get the GIF, are recorded as decodable protobuf (string
// fields valid UTF-8), and never with a malformed id.
func TestBadQueryStrings(t *testing.T) {
	t.Parallel()
	s := socketServer(t, nil)
	many := "/p.gif?cid=many" + strings.Repeat("&p=1", maxParams)
	fits := "/p.gif?cid=fits" + strings.Repeat("&p=1", maxParams-1)
	for _, tc := range []struct {
		name, target string
		cid, url     string                // recorded content id and page URL
		invalid      schemas.InvalidReason // recorded invalid reason
	}{
		{"lone percent", "/p.gif?cid=a&url=%", "a", "%", ""},
		{"bad escape", "/p.gif?cid=a&url=%zz", "a", "%zz", ""},
		{"double percent", "/p.gif?cid=a&url=%%41", "a", "%A", ""},
		{"empty pairs", "/p.gif?cid=a&&&url=x&&", "a", "x", ""},
		{"empty key", "/p.gif?=x&cid=a", "a", "", ""},
		{"plus is a space", "/p.gif?cid=a&url=a+b%20c", "a", "a b c", ""},
		{"NUL in text", "/p.gif?cid=a&url=x%00y", "a", "x\x00y", ""},
		{"overlong slash", "/p.gif?cid=a&url=%C0%AF", "a", "\uFFFD\uFFFD", ""},
		{"surrogate", "/p.gif?cid=a&url=%ED%A0%80", "a", "\uFFFD\uFFFD\uFFFD", ""},
		{"invalid UTF-8 raw byte in a value", "/p.gif?cid=a&url=x\xffy", "a", "x\uFFFDy", ""},
		{"invalid UTF-8 in a key", "/p.gif?cid=a&\xff%fe=1", "a", "", ""},
		{"invalid UTF-8 in cid", "/p.gif?cid=%ff", "", "", schemas.InvalidBadCID},
		{"NUL in cid", "/p.gif?cid=a%00b", "", "", schemas.InvalidBadCID},
		{"repeated cid: the first wins", "/p.gif?cid=first&cid=second&url=1&url=2", "first", "1", ""},
		{"no query", "/p.gif", "", "", schemas.InvalidMissingCID},
		{"bare question mark", "/p.gif?", "", "", schemas.InvalidMissingCID},
		{"parameters up to the cap", fits, "fits", "", ""},
		{"parameters past the cap", many, "many", "", schemas.InvalidTooManyParam},
		{"uid with invalid UTF-8", "/p.gif?cid=a&uid=%ff", "a", "", schemas.InvalidBadID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, s, tc.target)
			assertGIF(t, resp)
			h := oneHit(t, s)
			if h.GetContentId() != tc.cid || h.GetPageUrl() != tc.url || schemas.InvalidReason(h.GetInvalidReason()) != tc.invalid {
				t.Fatalf("recorded cid %q url %q invalid %q; want %q %q %q", h.GetContentId(), h.GetPageUrl(), h.GetInvalidReason(), tc.cid, tc.url, tc.invalid)
			}
			if !utf8.ValidString(h.GetUserAgent()) || !utf8.ValidString(h.GetReferrer()) {
				t.Fatalf("recorded text is not UTF-8: %v", h)
			}
		})
	}
	t.Run("ten thousand parameters", func(t *testing.T) {
		// 10,000 parameters do not fit in the request line bound: 431, and
		// nothing recorded.
		resp := get(t, s, "/p.gif?cid=a"+strings.Repeat("&p=1", 10000))
		if resp.StatusCode() != fasthttp.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("got %d, want 431", resp.StatusCode())
		}
		if hits := allSpooled(t, s); len(hits) != 0 {
			t.Fatalf("recorded %d hits", len(hits))
		}
	})
}

// TestOversizedRequests is T-S2 and T-S3: URLs and headers past
// MaxHeaderBytes get 431 and a closed connection; nothing is recorded; the
// server keeps answering.
func TestOversizedRequests(t *testing.T) {
	t.Parallel()
	s := socketServer(t, nil)
	var thousand strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&thousand, "X-H%d: v\r\n", i)
	}
	manyXFF := strings.Repeat("X-Forwarded-For: 1.2.3.4\r\n", 100)
	for _, tc := range []struct {
		name, target, headers string
		want                  int
	}{
		{"8 KB URL", "/p.gif?cid=a&url=" + strings.Repeat("u", 8<<10), "", 431},
		{"64 KB URL", "/p.gif?cid=a&url=" + strings.Repeat("u", 64<<10), "", 431},
		{"1,000 headers", "/p.gif?cid=a", thousand.String(), 431},
		{"100 KB cookie", "/p.gif?cid=a", "Cookie: c=" + strings.Repeat("c", 100<<10) + "\r\n", 431},
		{"one huge header", "/p.gif?cid=a", "X-Big: " + strings.Repeat("b", 16<<10) + "\r\n", 431},
		{"100 X-Forwarded-For headers within the bound", "/p.gif?cid=a", manyXFF, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := "GET " + tc.target + " HTTP/1.1\r\nHost: px.example\r\n" + tc.headers + "\r\n"
			resps, closed := exchange(t, s.Addr(), req, 5*time.Second)
			if len(resps) != 1 || resps[0].StatusCode() != tc.want {
				t.Fatalf("want one %d, got %d answers %v", tc.want, len(resps), statuses(resps))
			}
			hits := allSpooled(t, s)
			if tc.want != 200 {
				if !closed || len(hits) != 0 {
					t.Fatalf("want the connection closed and nothing recorded; closed %v, %d hits", closed, len(hits))
				}
				return
			}
			if len(hits) != 1 || !bytes.Equal(hits[0].GetClientIp(), []byte{127, 0, 0, 1}) {
				t.Fatalf("want one hit from the peer, got %v", hits)
			}
		})
	}
	assertGIF(t, get(t, s, "/p.gif?cid=after"))
}

func statuses(resps []*fasthttp.Response) []int {
	var out []int
	for _, r := range resps {
		out = append(out, r.StatusCode())
	}
	return out
}

// TestBodyAbuse is T-S4: a body over MaxBodyBytes gets 413 whether announced
// or chunked, and a chunked body that never ends is cut at ReadTimeout.
func TestBodyAbuse(t *testing.T) {
	t.Parallel()
	s := socketServer(t, nil)
	t.Run("5 MB body", func(t *testing.T) {
		req := fmt.Sprintf("POST /b?cid=a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 5<<20) + strings.Repeat("x", 5<<20)
		resps, closed := exchange(t, s.Addr(), req, 5*time.Second)
		if len(resps) != 1 || resps[0].StatusCode() != fasthttp.StatusRequestEntityTooLarge || !closed {
			t.Fatalf("want one 413 and a close, got %v closed %v", statuses(resps), closed)
		}
	})
	t.Run("chunked body past the bound", func(t *testing.T) {
		c := dial(t, s)
		go func() {
			_, _ = io.WriteString(c, "POST /b?cid=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
			chunk := "400\r\n" + strings.Repeat("x", 1024) + "\r\n"
			for { // never ends, until the server closes
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
		}()
		resps, closed := readResponses(t, c, 5*time.Second, false)
		if len(resps) != 1 || resps[0].StatusCode() != fasthttp.StatusRequestEntityTooLarge || !closed {
			t.Fatalf("want one 413 and a close, got %v closed %v", statuses(resps), closed)
		}
	})
	t.Run("chunked body that trickles forever", func(t *testing.T) {
		c := dial(t, s)
		start := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			_, _ = io.WriteString(c, "POST /b?cid=a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := io.WriteString(c, "1\r\nx\r\n"); err != nil {
					return
				}
			}
		}()
		resps, closed := readResponses(t, c, 4*testReadTimeout, false)
		took := time.Since(start)
		if !closed || took > testReadTimeout+2*time.Second {
			t.Fatalf("want the connection closed within ReadTimeout (%v), closed %v after %v", testReadTimeout, closed, took)
		}
		if len(resps) > 1 || (len(resps) == 1 && resps[0].StatusCode() != fasthttp.StatusRequestTimeout) {
			t.Fatalf("want nothing or 408, got %v", statuses(resps))
		}
	})
	if hits := allSpooled(t, s); len(hits) != 0 {
		t.Fatalf("refused bodies recorded %d hits", len(hits))
	}
}

func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestSlowloris is T-S5, kept small: 100 connections that send nothing or
// trickle a request line a byte at a time are closed by ReadTimeout, while a
// normal client keeps getting prompt answers.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	s := socketServer(t, nil)
	const slow = 100
	var wg sync.WaitGroup
	closedIn := make(chan time.Duration, slow)
	for i := range slow {
		c := dial(t, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if i%2 == 1 { // trickle the request line, one byte per 100 ms
				go func() {
					for _, b := range []byte("GET /p.gif?cid=slow HTTP/1.1\r\nHost: x\r\n") {
						if _, err := c.Write([]byte{b}); err != nil {
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
				}()
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * testReadTimeout))
			buf := make([]byte, 512)
			for {
				n, err := c.Read(buf)
				if n > 0 && !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 408")) {
					t.Errorf("slow connection got %.40q, want nothing or 408", buf[:n])
				}
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						closedIn <- -1 // never closed
					} else {
						closedIn <- time.Since(start)
					}
					return
				}
			}
		}()
	}
	// A normal client meanwhile: keep-alive requests every 50 ms.
	c := dial(t, s)
	br := bufio.NewReader(c)
	var worst time.Duration
	for i := range 20 {
		start := time.Now()
		fmt.Fprintf(c, "GET /p.gif?cid=normal-%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var resp fasthttp.Response
		if err := resp.Read(br); err != nil {
			t.Fatalf("normal request %d: %v", i, err)
		}
		assertGIF(t, &resp)
		worst = max(worst, time.Since(start))
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	close(closedIn)
	for d := range closedIn {
		// The bound leaves room for a loaded CI machine; without the
		// timeouts these connections are never closed.
		if d < 0 || d > testReadTimeout+2*time.Second {
			t.Fatalf("a slow connection was closed after %v, want within ReadTimeout %v (-1: never)", d, testReadTimeout)
		}
	}
	if worst > time.Second {
		t.Fatalf("normal client's slowest answer took %v during the attack", worst)
	}
	hits := allSpooled(t, s)
	if len(hits) != 20 {
		t.Fatalf("want the 20 normal hits recorded, got %d", len(hits))
	}
	for _, h := range hits {
		if !strings.HasPrefix(h.GetContentId(), "normal-") {
			t.Fatalf("recorded %q from a slow connection", h.GetContentId())
		}
	}
	t.Logf("100 slow connections closed; normal client's slowest answer %v", worst)
}

// TestConnectionLimitPerIP checks MaxConnsPerIP: the connection past the
// limit is refused with 429 and closed, the others are served.
func TestConnectionLimitPerIP(t *testing.T) {
	t.Parallel()
	s := socketServer(t, func(c *Config) { c.MaxConnsPerIP = 3 })
	for range 3 {
		c := dial(t, s)
		fmt.Fprintf(c, "GET /p.gif?cid=held HTTP/1.1\r\nHost: x\r\n\r\n")
		resps, _ := readResponses(t, c, 300*time.Millisecond, false)
		if len(resps) != 1 {
			t.Fatalf("held connection: %v", statuses(resps))
		}
		assertGIF(t, resps[0])
	}
	resps, closed := exchange(t, s.Addr(), "GET /p.gif?cid=over HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || resps[0].StatusCode() != fasthttp.StatusTooManyRequests || !closed {
		t.Fatalf("want 429 and a close past the limit, got %v closed %v", statuses(resps), closed)
	}
}

// TestSmuggling is T-S6: each request is written so that a server which
// read its framing the lenient way would find a second, smuggled request
// (a pixel hit for cid=smuggled) after it. The edge must answer at most the
// first, never 2xx for an ambiguous one, close the connection, and never
// record the smuggled hit.
func TestSmuggling(t *testing.T) {
	t.Parallel()
	s := socketServer(t, nil)
	const smuggled = "GET /p.gif?cid=smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	front := "POST /b?cid=front HTTP/1.1\r\nHost: x\r\n"
	chunkedSmuggle := "0\r\n\r\n" + smuggled
	for _, tc := range []struct{ name, raw string }{
		{"CL and TE", front + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n", len(chunkedSmuggle)) + chunkedSmuggle},
		{"TE and CL", front + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunkedSmuggle},
		{"duplicate differing CL", front + fmt.Sprintf("Content-Length: 0\r\nContent-Length: %d\r\n\r\n", len(smuggled)) + smuggled},
		{"duplicate differing CL, long first", front + fmt.Sprintf("Content-Length: %d\r\nContent-Length: 0\r\n\r\n", len(smuggled)) + smuggled},
		{"space before the colon", front + "Transfer-Encoding : chunked\r\n\r\n" + chunkedSmuggle},
		{"TE with a trailing tab value", front + "Transfer-Encoding: chunked\t,identity\r\n\r\n" + chunkedSmuggle},
		{"TE xchunked", front + "Transfer-Encoding: xchunked\r\n\r\n" + chunkedSmuggle},
		{"TE with a Unicode dash", front + "Transfer-Encoding: ch\u2013nked\r\n\r\n" + chunkedSmuggle},
		{"TE on a folded line", front + "Transfer-Encoding:\r\n chunked\r\n\r\n" + chunkedSmuggle},
		{"two TE headers", front + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" + chunkedSmuggle},
		{"chunk extension with a bare LF", front + "Transfer-Encoding: chunked\r\n\r\n" + "2;ext\nxx\r\n" + chunkedSmuggle},
		{"chunk size with a bare LF", front + "Transfer-Encoding: chunked\r\n\r\n" + "2\nxx\r\n" + chunkedSmuggle},
		{"signed CL", front + fmt.Sprintf("Content-Length: +%d\r\n\r\n", len(smuggled)) + smuggled},
		{"negative CL", front + "Content-Length: -1\r\n\r\n" + smuggled},
		{"CL with a trailing comma list", front + fmt.Sprintf("Content-Length: %d, 0\r\n\r\n", len(smuggled)) + smuggled},
		{"bare LF header line", "GET /p.gif?cid=front HTTP/1.1\nHost: x\nContent-Length: 0\nX: y\r\n\r\n" + smuggled},
		{"GET with a body", fmt.Sprintf("GET /p.gif?cid=front HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(smuggled)) + smuggled},
		{"GET with a chunked body", "GET /p.gif?cid=front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedSmuggle},
		{"NUL in a header", front + "X: a\x00b\r\nContent-Length: 0\r\n\r\n" + smuggled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resps, closed := exchange(t, s.Addr(), tc.raw, 3*time.Second)
			hits := allSpooled(t, s)
			for _, h := range hits {
				if h.GetContentId() == "smuggled" {
					t.Fatalf("the smuggled request was served (answers %v)", statuses(resps))
				}
			}
			if len(resps) != 1 || !closed {
				t.Fatalf("want one answer and a closed connection, got %v closed %v", statuses(resps), closed)
			}
			if code := resps[0].StatusCode(); code != fasthttp.StatusBadRequest && code != fasthttp.StatusNotImplemented {
				t.Fatalf("got %d, want 400", code)
			}
		})
	}
}

// TestXFFSpoofing is T-S8 over the socket: X-Forwarded-For is ignored from
// an untrusted peer and walked right to left from a trusted one.
func TestXFFSpoofing(t *testing.T) {
	t.Parallel()
	direct := socketServer(t, nil)
	behind := socketServer(t, func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	})
	for _, tc := range []struct {
		name    string
		s       *Server
		headers []string
		want    string
	}{
		{"spoofed, untrusted peer", direct, []string{"X-Forwarded-For: 1.2.3.4\r\n"}, "127.0.0.1"},
		{"spoofed X-Real-IP", direct, []string{"X-Real-IP: 1.2.3.4\r\n"}, "127.0.0.1"},
		{"via the trusted LB", behind, []string{"X-Forwarded-For: 203.0.113.9\r\n"}, "203.0.113.9"},
		{"client-supplied hop left of the real one", behind, []string{"X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.1.2.3\r\n"}, "203.0.113.9"},
		{"several headers", behind, []string{"X-Forwarded-For: 6.6.6.6\r\n", "X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"}, "203.0.113.9"},
		{"IPv6", behind, []string{"X-Forwarded-For: 2001:db8::7\r\n"}, "2001:db8::7"},
		{"garbage right of the client", behind, []string{"X-Forwarded-For: 203.0.113.9, not-an-ip\r\n"}, "127.0.0.1"},
		{"no header behind the LB", behind, nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertGIF(t, get(t, tc.s, "/p.gif?cid=a", tc.headers...))
			h := oneHit(t, tc.s)
			got, _ := netip.AddrFromSlice(h.GetClientIp())
			if got.String() != tc.want {
				t.Fatalf("client IP %v, want %s", got, tc.want)
			}
		})
	}
}

// TestCacheHeaders is T-S9: every pixel, beacon and click answer forbids
// caching, and Host / X-Forwarded-Host never change a body or a Location.
func TestCacheHeaders(t *testing.T) {
	t.Parallel()
	s := socketServer(t, func(c *Config) {
		c.ClickAllowHosts = map[string][]string{"news": {"shop.example"}}
	})
	hosts := []string{"Host: px.example\r\n", "Host: evil.example\r\nX-Forwarded-Host: evil.example\r\n"}
	for _, target := range []string{
		"/p.gif?cid=a", "/p.gif?cid=%ff", "/p.gif", "/b?cid=a",
		"/c?cid=a&site=news&u=https%3A%2F%2Fshop.example%2Fp", "/c?cid=a&u=https%3A%2F%2Fevil.example%2F",
	} {
		var first *fasthttp.Response
		for _, method := range []string{"GET", "HEAD"} {
			for _, host := range hosts {
				req := method + " " + target + " HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n"
				resps, _ := exchange(t, s.Addr(), req, 5*time.Second)
				if len(resps) != 1 {
					t.Fatalf("%s %s: %v", method, target, statuses(resps))
				}
				r := resps[0]
				if got := string(r.Header.Peek("Cache-Control")); got != "no-cache, no-store, must-revalidate" || string(r.Header.Peek("Pragma")) != "no-cache" || string(r.Header.Peek("Expires")) != "0" {
					t.Fatalf("%s %s with %q: Cache-Control %q Pragma %q Expires %q", method, target, host, got, r.Header.Peek("Pragma"), r.Header.Peek("Expires"))
				}
				if strings.Contains(string(r.Header.Header())+string(r.Body()), "evil.example") && !strings.Contains(target, "evil") {
					t.Fatalf("%s %s: the Host header leaked into the answer", method, target)
				}
				if method == "HEAD" {
					continue
				}
				if first == nil {
					first = r
					continue
				}
				if r.StatusCode() != first.StatusCode() || !bytes.Equal(r.Body(), first.Body()) || !bytes.Equal(r.Header.Peek("Location"), first.Header.Peek("Location")) {
					t.Fatalf("%s: the answer depends on Host", target)
				}
			}
		}
	}
	_ = allSpooled(t, s)
}

// TestConsent is T-S11: without consent no Set-Cookie goes out and no
// visitor id is recorded; with consent and cookie issuance on, a browser
// without a cookie gets one, Secure, HttpOnly and SameSite=None.
func TestConsent(t *testing.T) {
	t.Parallel()
	s := socketServer(t, func(c *Config) { c.IssueVisitorCookie = true; c.ConsentVendorID = 755 })
	cookie := "Cookie: ppuid=v-123\r\n"
	for _, tc := range []struct {
		name, target string
		headers      []string
		wantID       bool
	}{
		{"gdpr=1 without consent", "/p.gif?cid=a&gdpr=1&uid=u-1", []string{cookie}, false},
		{"gdpr=1 with an empty consent string", "/p.gif?cid=a&gdpr=1&gdpr_consent=&uid=u-1", []string{cookie}, false},
		{"gdpr=1 with consent", "/p.gif?cid=a&gdpr=1&gdpr_consent=" + consentGiven + "&uid=u-1", []string{cookie}, true},
		{"gdpr=1 with a malformed consent string", "/p.gif?cid=a&gdpr=1&gdpr_consent=CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA&uid=u-1", []string{cookie}, false},
		{"gdpr=1 with consent cut short", "/p.gif?cid=a&gdpr=1&gdpr_consent=" + consentGiven[:30] + "&uid=u-1", []string{cookie}, false},
		{"gdpr=1 without consent to purpose 1", "/p.gif?cid=a&gdpr=1&gdpr_consent=" + consentNoStorage + "&uid=u-1", []string{cookie}, false},
		{"gdpr=1 without consent for the configured vendor", "/p.gif?cid=a&gdpr=1&gdpr_consent=" + consentOtherVendor + "&uid=u-1", []string{cookie}, false},
		{"gdpr=0", "/p.gif?cid=a&gdpr=0&uid=u-1", []string{cookie}, true},
		{"GPC", "/p.gif?cid=a&uid=u-1", []string{cookie, "Sec-GPC: 1\r\n"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := get(t, s, tc.target, tc.headers...)
			assertGIF(t, resp)
			if sc := resp.Header.PeekAll("Set-Cookie"); !tc.wantID && len(sc) > 0 {
				t.Fatalf("Set-Cookie without consent: %q", sc)
			}
			h := oneHit(t, s)
			if got := h.GetUserId() != "" || h.GetCookieId() != ""; got != tc.wantID {
				t.Fatalf("identifiers recorded = %v, want %v (uid %q cookie %q)", got, tc.wantID, h.GetUserId(), h.GetCookieId())
			}
			// The same request from a browser without a visitor cookie.
			resp = get(t, s, tc.target, tc.headers[1:]...)
			sc := string(resp.Header.Peek("Set-Cookie"))
			if !tc.wantID {
				if sc != "" {
					t.Fatalf("Set-Cookie without consent: %q", sc)
				}
			} else if !strings.HasPrefix(sc, "ppuid=") || !strings.Contains(sc, "; secure") || !strings.Contains(sc, "; HttpOnly") || !strings.Contains(sc, "; SameSite=None") {
				t.Fatalf("want a visitor cookie with Secure, HttpOnly, SameSite=None; got %q", sc)
			}
			if h := oneHit(t, s); tc.wantID != (h.GetCookieId() != "" && strings.Contains(sc, h.GetCookieId())) {
				t.Fatalf("recorded cookie id %q, Set-Cookie %q", h.GetCookieId(), sc)
			}
		})
	}
}

// TestIPForms is T-S12 at the edge: the raw hit carries the full address in
// its canonical form (4 bytes for IPv4 including IPv4-mapped IPv6, 16 for
// IPv6), which the processor truncates (/24, /48) before anything else
// stores it; the raw topic needs the full address for geo and the
// cookieless visitor key.
func TestIPForms(t *testing.T) {
	t.Parallel()
	s := socketServer(t, func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	for _, tc := range []struct {
		xff  string
		want []byte
	}{
		{"203.0.113.9", []byte{203, 0, 113, 9}},
		{"::ffff:203.0.113.9", []byte{203, 0, 113, 9}},
		{"2001:db8:1:2::7", netip.MustParseAddr("2001:db8:1:2::7").AsSlice()},
	} {
		assertGIF(t, get(t, s, "/p.gif?cid=a", "X-Forwarded-For: "+tc.xff+"\r\n"))
		if got := oneHit(t, s).GetClientIp(); !bytes.Equal(got, tc.want) {
			t.Fatalf("%s recorded as %v, want %v", tc.xff, got, tc.want)
		}
	}
}

// FuzzServeRaw feeds raw bytes to the edge's
// fasthttp server as one connection (fasthttp's ServeConn, with the
// hardened configuration of New): it never panics, never answers 5xx, and
// every answer has a status from the documented set.
func FuzzServeRaw(f *testing.F) {
	for _, seed := range []string{
		"GET /p.gif?cid=a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /p.gif?cid=a&url=%zz&p.k=v HTTP/1.1\r\nHost: x\r\nCookie: ppuid=abc\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n[{\"cid\":\"a\"}]\n",
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /p.gif?cid=s HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;a\nxx\r\n0\r\n\r\n",
		"GET /c?cid=a&u=https%3A%2F%2Fevil.example HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /p.gif HTTP/1.1\nHost: x\n X: folded\r\n\r\n",
		"HEAD /p.gif?cid=a HTTP/1.0\r\n\r\n",
		"OPTIONS /e HTTP/1.1\r\nHost: x\r\n\r\n",
		"\x00\xff garbage",
	} {
		f.Add([]byte(seed))
	}
	s := newTestServer(f, func(c *Config) {
		c.Spool.MaxBytes = 64 << 20
		c.ClickAllowHosts = map[string][]string{"*": {"shop.example"}}
	})
	allowed := map[int]bool{200: true, 204: true, 302: true, 400: true, 404: true, 405: true, 408: true, 413: true, 429: true, 431: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := &rawConn{in: bytes.NewReader(raw)}
		_ = s.srv.ServeConn(c)
		out := c.out.Bytes()
		for len(out) > 0 {
			i := bytes.Index(out, []byte("HTTP/1.1 "))
			if i < 0 {
				break
			}
			out = out[i+len("HTTP/1.1 "):]
			code := 0
			if len(out) < 3 {
				t.Fatalf("truncated answer to %q", raw)
			}
			if _, err := fmt.Sscanf(string(out[:3]), "%d", &code); err != nil || !allowed[code] {
				t.Fatalf("answer %q to %q", out[:min(len(out), 40)], raw)
			}
		}
	})
}

// rawConn is a connection whose client sends in and then closes.
type rawConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *rawConn) Read(b []byte) (int, error)  { return c.in.Read(b) }
func (c *rawConn) Write(b []byte) (int, error) { return c.out.Write(b) }
func (c *rawConn) Close() error                { return nil }
func (c *rawConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *rawConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 4000}
}
func (c *rawConn) SetDeadline(time.Time) error      { return nil }
func (c *rawConn) SetReadDeadline(time.Time) error  { return nil }
func (c *rawConn) SetWriteDeadline(time.Time) error { return nil }

// TestOpenRedirectOverSocket is T-S7 end to end (TestClick covers the full
// corpus in memory): over a real socket, only a signed or allow-listed
// destination gets 302 with exactly that Location; everything else gets 400
// without a Location, and is recorded as an invalid click.
func TestOpenRedirectOverSocket(t *testing.T) {
	t.Parallel()
	s := socketServer(t, func(c *Config) {
		c.ClickKeys = map[string][]byte{"k1": clickKey}
		c.ClickAllowHosts = map[string][]string{"news": {"shop.example"}}
	})
	good := "https://advertiser.example/landing?x=1"
	for _, tc := range []struct{ target, loc string }{
		{signedClick("ad-1", good, "k1", testNow.Unix()+3600, clickKey), good},
		{"/c?cid=a&site=news&u=https%3A%2F%2Fshop.example%2Fp", "https://shop.example/p"},
		{"/c?cid=a&u=" + strings.ReplaceAll(good, "?", "%3F"), ""},
		{"/c?cid=a&site=news&u=%2F%2Fevil.example", ""},
		{"/c?cid=a&site=news&u=https%3A%2F%2Fshop.example%40evil.example%2F", ""},
		{"/c?cid=a&site=news&u=https://shop.example/%0d%0aSet-Cookie:%20x=1", ""},
		{"/c?cid=a&site=news&u=javascript:alert(1)", ""},
	} {
		r := get(t, s, tc.target, "X-Forwarded-Host: evil.example\r\n")
		loc := string(r.Header.Peek("Location"))
		h := oneHit(t, s)
		if tc.loc == "" {
			if r.StatusCode() != 400 || loc != "" || len(r.Header.PeekAll("Set-Cookie")) != 0 || schemas.InvalidReason(h.GetInvalidReason()) != schemas.InvalidBadClick {
				t.Fatalf("%s: got %d, Location %q, hit %v", tc.target, r.StatusCode(), loc, h)
			}
			continue
		}
		if r.StatusCode() != 302 || loc != tc.loc || h.GetClickDestination() != tc.loc {
			t.Fatalf("%s: got %d, Location %q", tc.target, r.StatusCode(), loc)
		}
	}
}

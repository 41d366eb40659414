package edge

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pixelpipe/pixelpipe/internal/pii"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// TCF v2 consent strings built by edge/tcf's test encoder (tc.encode).
const (
	// consentGiven: purposes 1-4, vendor 755.
	consentGiven = "CQb6BYAQb6BYAAHADBENCWEgAPAAAAAAAAYgF5wAQF5gAAA"
	// consentNoStorage: purposes 2-4 (no purpose 1), vendor 755.
	consentNoStorage = "CQb6BYAQb6BYAAHADBENCWEgAHAAAAAAAAYgF5wAQF5gAAA"
	// consentOtherVendor: purposes 1-4, vendors 756 and 900.
	consentOtherVendor = "CQb6BYAQb6BYAAHADBENCWEgAPAAAAAAAAYgHCQAgF6AOEAAAA"
)

// emailRE is the T-S10 oracle: what "an e-mail address" means in the raw
// topic, independent of the redactor's own expression.
var emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)

// piiRequests are the T-S10 variants: e-mail addresses and phone numbers in
// every place a pixel carries text. Each is "target, extra header lines".
func piiRequests() [][2]string {
	return [][2]string{
		{"/p.gif?cid=pii&url=https%3A%2F%2Fshop.example%2F%3Fe%3Djane.doe%40mail.example", ""},
		{"/p.gif?cid=pii&url=https://shop.example/?e=jane.doe@mail.example", ""},
		{"/p.gif?cid=pii&url=https%3A%2F%2Fshop.example%2F%3Fe%3Djane%252540mail.example", ""}, // double-encoded
		{"/p.gif?cid=pii&ref=https%3A%2F%2Fmail.example%2Finbox%2Fbob%2Btag%40corp.example.co.uk", ""},
		{"/p.gif?cid=pii", "Referer: https://news.example/?subscriber=jane%40mail.example&x=1\r\n"},
		{"/p.gif?cid=pii", "Referer: https://news.example/u/jane@mail.example/\r\n"},
		{"/p.gif?cid=pii&p.email=jane%40mail.example&p.note=" + "call%20%2B44%2020%207946%200958", ""},
		{"/p.gif?cid=pii&p.phone=4155552671&url=https%3A%2F%2Fx.example%2F%3Ftel%3D%252B14155552671", ""},
		{"/p.gif?cid=pii&uid=jane%40mail.example", ""},
		{"/p.gif?cid=pii&url=https%3A%2F%2Fx.example%2Fcall%2F06-12-34-56-78", "User-Agent: Mozilla/5.0 (contact ops@bot.example)\r\n"},
		{"/b?cid=pii&url=https%3A%2F%2Fx.example%2F%3Fe%3Djane%2540mail.example", ""},
	}
}

// assertNoPII fails when a recorded hit still holds an e-mail address after
// full percent-decoding (the T-S10 oracle) or a phone number.
func assertNoPII(t *testing.T, raw []byte) {
	t.Helper()
	d := pii.DecodeAll(string(raw))
	if m := emailRE.FindString(d); m != "" {
		t.Fatalf("recorded hit holds an e-mail address %q: %q", m, d)
	}
	for _, phone := range []string{"4155552671", "7946 0958", "06-12-34-56-78", "14155552671"} {
		if strings.Contains(d, phone) {
			t.Fatalf("recorded hit holds the phone number %q: %q", phone, d)
		}
	}
}

// TestPIIRedactedBeforeRecording is T-S10 at the edge, over a socket: the
// spooled bytes (what goes to pixel.hits.v1 unchanged) hold no address or
// phone number, the redaction counter moves, the hit still counts, and the
// uid is replaced by a stable keyed hash. integration.TestRawTopicHoldsNoPII
// checks the same against the raw topic of a real Kafka.
func TestPIIRedactedBeforeRecording(t *testing.T) {
	t.Parallel()
	s := socketServer(t, nil)
	for _, r := range piiRequests() {
		resp := get(t, s, r[0], r[1])
		if code := resp.StatusCode(); code != 200 && code != 204 {
			t.Fatalf("%s: got %d", r[0], code)
		}
		recs, pos, err := s.spool.Read(10, 1<<20)
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s: %d records, %v", r[0], len(recs), err)
		}
		raw := append([]byte(nil), recs[0]...)
		if err := s.spool.Ack(pos, 1); err != nil {
			t.Fatal(err)
		}
		assertNoPII(t, raw)
	}
	if n := testutil.ToFloat64(s.safe.redactedEmail); n < 8 {
		t.Fatalf("email redactions counted: %v, want at least 8", n)
	}
	if n := testutil.ToFloat64(s.safe.redactedPhone); n < 3 {
		t.Fatalf("phone redactions counted: %v, want at least 3", n)
	}
	// The same address as uid is the same pseudonymous visitor twice.
	get(t, s, "/p.gif?cid=a&uid=jane%40mail.example")
	get(t, s, "/p.gif?cid=b&uid=jane%40mail.example")
	hits := allSpooled(t, s)
	if len(hits) != 2 || hits[0].GetUserId() != hits[1].GetUserId() || !strings.HasPrefix(hits[0].GetUserId(), "h:") || hits[0].GetInvalidReason() != "" {
		t.Fatalf("uid not pseudonymized stably: %v", hits)
	}
}

// TestRatePolicy is T-S13 at the edge, over a socket, on a frozen clock so
// that every hit falls in one second: a flood from one client IP is
// answered throughout, recorded plain up to edge.rate.flag, flagged above
// it and shed above edge.rate.shed, while another client's hits in the same
// second stay unflagged, and a private address (an internal proxy) sending
// 500 in that second is not judged at all.
func TestRatePolicy(t *testing.T) {
	t.Parallel()
	// 50k hits/s scaled down 25 times, with thresholds low enough that all
	// three outcomes occur within the frozen second.
	const flag, shed, flood = 100, 1000, 2000
	s := socketServer(t, func(c *Config) {
		c.RateFlag, c.RateShed = flag, shed
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.Spool.MaxBytes = 64 << 20
	})
	c := dial(t, s)
	var req strings.Builder
	for i := range flood {
		fmt.Fprintf(&req, "GET /p.gif?cid=flood-%d HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.66\r\nUser-Agent: python-requests/2.32\r\n\r\n", i)
		if i%100 == 50 { // another client, interleaved with the flood
			fmt.Fprintf(&req, "GET /p.gif?cid=legit-%d HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n", i)
		}
		if i%4 == 0 { // a private address (an internal proxy): never judged
			fmt.Fprintf(&req, "GET /p.gif?cid=internal-%d HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.8.7\r\n\r\n", i)
		}
	}
	go func() { _, _ = c.Write([]byte(req.String())) }()
	resps, _ := readResponses(t, c, 10*time.Second, false)
	if len(resps) != flood+flood/100+flood/4 {
		t.Fatalf("%d answers to %d requests", len(resps), flood+flood/100+flood/4)
	}
	for _, r := range resps {
		assertGIF(t, r)
	}
	var plain, flagged, legit, internal int
	for _, h := range allSpooled(t, s) {
		isFlagged := h.GetPresentHeaders()&schemas.EdgeFlagRate != 0
		switch {
		case strings.HasPrefix(h.GetContentId(), "legit-"):
			legit++
			if isFlagged {
				t.Fatalf("legit client's hit %s flagged", h.GetContentId())
			}
		case strings.HasPrefix(h.GetContentId(), "internal-"):
			internal++
			if isFlagged {
				t.Fatalf("private client's hit %s flagged", h.GetContentId())
			}
		case isFlagged:
			flagged++
		default:
			plain++
		}
	}
	if plain != flag || flagged != shed-flag || legit != flood/100 || internal != flood/4 {
		t.Fatalf("flood recorded %d plain and %d flagged, legit %d, internal %d; want %d, %d, %d, %d", plain, flagged, legit, internal, flag, shed-flag, flood/100, flood/4)
	}
	if got := testutil.ToFloat64(s.safe.rateShed); got != flood-shed {
		t.Fatalf("shed counter %v, want %d", got, flood-shed)
	}
	if got := testutil.ToFloat64(s.safe.rateFlagged); got != shed-flag {
		t.Fatalf("flagged counter %v, want %d", got, shed-flag)
	}
}

func TestConfigRateValidation(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.VisitorSecret = "s"
	c.RateFlag, c.RateShed = 500, 100
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "edge.rate") {
		t.Fatalf("shed below flag accepted: %v", err)
	}
}

// TestPartitionKeyAcrossMidnight runs the edge on a fake clock: a
// cookieless visitor's hits at 23:55 and 00:05 UTC go to Kafka under one
// key, so one processor sees both days' keys of the visit and links them;
// an explicit id's key is its visitor key, unchanged.
func TestPartitionKeyAcrossMidnight(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	midnight := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	var keys []string
	for _, at := range []time.Time{midnight.Add(-5 * time.Minute), midnight.Add(5 * time.Minute)} {
		s.clock = func() time.Time { return at }
		_, hit, key := do(t, s, "GET", "/p.gif?cid=a&site=news", map[string]string{"User-Agent": "UA"}, "198.51.100.7:4000")
		if hit == nil || hit.GetOrigin().GetReceivedAtMs() != at.UnixMilli() {
			t.Fatalf("hit %v", hit)
		}
		keys = append(keys, string(key))
	}
	if keys[0] != keys[1] {
		t.Fatalf("a cookieless visitor's partition key changed at midnight: %x %x", keys[0], keys[1])
	}
}

// TestPseudonymise: with -edge.pseudonymise the raw hit holds the client's
// network, not its address, and keyed hashes of the cookie and uid: the
// same for the same id (the visitor still counts once), different between a
// cookie and a uid of the same text, and different under another secret;
// the issued cookie sent to the browser is the real one. Without it, the
// full address and ids are recorded.
func TestPseudonymise(t *testing.T) {
	t.Parallel()
	on := newTestServer(t, func(c *Config) { c.Pseudonymise = true; c.IssueVisitorCookie = true })
	off := newTestServer(t, nil)
	other := newTestServer(t, func(c *Config) { c.Pseudonymise = true; c.VisitorSecret = "another-secret" })
	ua := map[string]string{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0", "Cookie": "ppuid=same-id"}
	pseudonym := regexp.MustCompile(`^h:[0-9a-f]{32}$`)

	_, h1, _ := do(t, on, "GET", "/p.gif?cid=a&uid=same-id", ua, "198.51.100.77:1")
	_, h2, _ := do(t, on, "GET", "/p.gif?cid=b&uid=same-id", ua, "[2001:db8:1234:5678::9]:1")
	_, hOther, _ := do(t, other, "GET", "/p.gif?cid=a&uid=same-id", ua, "198.51.100.77:1")
	_, hOff, _ := do(t, off, "GET", "/p.gif?cid=a&uid=same-id", ua, "198.51.100.77:1")

	if !bytes.Equal(h1.GetClientIp(), []byte{198, 51, 100, 0}) {
		t.Errorf("IPv4 recorded as %v, want its /24", h1.GetClientIp())
	}
	if want := append([]byte{0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34}, make([]byte, 10)...); !bytes.Equal(h2.GetClientIp(), want) {
		t.Errorf("IPv6 recorded as %x, want its /48", h2.GetClientIp())
	}
	for _, id := range []string{h1.GetUserId(), h1.GetCookieId(), hOther.GetUserId(), hOther.GetCookieId()} {
		if !pseudonym.MatchString(id) {
			t.Errorf("id recorded as %q, want a pseudonym", id)
		}
	}
	if h1.GetUserId() != h2.GetUserId() || h1.GetCookieId() != h2.GetCookieId() {
		t.Error("the same ids got different pseudonyms")
	}
	if h1.GetUserId() == h1.GetCookieId() || h1.GetUserId() == hOther.GetUserId() {
		t.Error("pseudonyms of a uid and a cookie, or under two secrets, are equal")
	}
	if hOff.GetUserId() != "same-id" || hOff.GetCookieId() != "same-id" || !bytes.Equal(hOff.GetClientIp(), []byte{198, 51, 100, 77}) {
		t.Errorf("without the option: %v", hOff)
	}
	// A browser without a cookie gets a real one; the hit records its hash.
	resp, h3, _ := do(t, on, "GET", "/p.gif?cid=a", map[string]string{"User-Agent": ua["User-Agent"]}, "198.51.100.77:1")
	set := string(resp.Header.PeekCookie("ppuid"))
	if !strings.Contains(set, "ppuid=") || strings.Contains(set, "h:") || !pseudonym.MatchString(h3.GetCookieId()) || strings.Contains(set, h3.GetCookieId()) {
		t.Errorf("issued cookie %q, recorded %q", set, h3.GetCookieId())
	}
}

package edge

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

var clickKey = []byte("0123456789abcdef0123456789abcdef")

func clickServer(t testing.TB) *Server {
	return newTestServer(t, func(c *Config) {
		c.ClickKeys = map[string][]byte{"k1": clickKey}
		c.ClickAllowHosts = map[string][]string{"news": {"shop.example", ".brand.example"}}
	})
}

func signedClick(cid, dest, kid string, exp int64, key []byte) string {
	q := url.Values{"cid": {cid}, "u": {dest}, "kid": {kid}, "sig": {SignClick(key, cid, dest, exp)}}
	if exp != 0 {
		q.Set("exp", strconv.FormatInt(exp, 10))
	}
	return "/c?" + q.Encode()
}

// TestClickReferrer: a click's Referer header names the page that held the
// link (a site, a webmail): where the visitor comes from, its referrer.
func TestClickReferrer(t *testing.T) {
	t.Parallel()
	s := clickServer(t)
	uri := "/c?cid=a&site=news&u=" + url.QueryEscape("https://shop.example/p")
	_, hit, _ := do(t, s, "GET", uri, map[string]string{"Referer": "https://mail.example.net/inbox"}, "198.51.100.7:1")
	if hit.GetReferrer() != "https://mail.example.net/inbox" || hit.GetPageUrl() != "" {
		t.Fatalf("click: referrer %q, page %q", hit.GetReferrer(), hit.GetPageUrl())
	}
}

func TestClick(t *testing.T) {
	t.Parallel()
	future, past := testNow.Unix()+3600, testNow.Unix()-1
	good := "https://advertiser.example/landing?x=1"
	tampered := signedClick("ad-1", good, "k1", future, clickKey)
	tampered = strings.Replace(tampered, "landing", "landinh", 1)
	for _, tc := range []struct {
		name, uri string
		wantLoc   string // empty: refused with 400 and no Location
	}{
		{"signed", signedClick("ad-1", good, "k1", future, clickKey), good},
		{"signed without expiry", signedClick("ad-1", good, "k1", 0, clickKey), good},
		{"expired", signedClick("ad-1", good, "k1", past, clickKey), ""},
		{"unknown key id", signedClick("ad-1", good, "k2", future, clickKey), ""},
		{"wrong key", signedClick("ad-1", good, "k1", future, []byte("another-key-of-32-bytes-00000000")), ""},
		{"tampered destination", tampered, ""},
		{"signature for another content id", strings.Replace(signedClick("ad-1", good, "k1", future, clickKey), "cid=ad-1", "cid=ad-2", 1), ""},
		{"unsigned", "/c?cid=ad-1&u=" + url.QueryEscape(good), ""},
		{"allow-listed host", "/c?cid=a&site=news&u=" + url.QueryEscape("https://shop.example/p?q=1"), "https://shop.example/p?q=1"},
		{"allow-listed subdomain", "/c?cid=a&site=news&u=" + url.QueryEscape("https://www.brand.example/"), "https://www.brand.example/"},
		{"allow-list of another site", "/c?cid=a&site=blog&u=" + url.QueryEscape("https://shop.example/"), ""},
		{"allow-listed host as user info", "/c?cid=a&site=news&u=" + url.QueryEscape("https://shop.example@evil.example/"), ""},
		{"allow-listed host as prefix", "/c?cid=a&site=news&u=" + url.QueryEscape("https://shop.example.evil.example/"), ""},
		{"scheme-relative", "/c?cid=a&site=news&u=" + url.QueryEscape("//shop.example/"), ""},
		{"missing slashes", "/c?cid=a&site=news&u=" + url.QueryEscape("https:shop.example"), ""},
		{"backslash", "/c?cid=a&site=news&u=" + url.QueryEscape("https://shop.example\\@evil.example/"), ""},
		{"javascript", "/c?cid=a&site=news&u=" + url.QueryEscape("javascript:alert(1)//shop.example"), ""},
		{"data", "/c?cid=a&site=news&u=" + url.QueryEscape("data:text/html,hi"), ""},
		{"CRLF injection", "/c?cid=a&site=news&u=https://shop.example/%0d%0aSet-Cookie:%20x=1", ""},
		{"IDN homograph", "/c?cid=a&site=news&u=" + url.QueryEscape("https://shоp.example/"), ""},
		{"allow-listed host, bad scheme", "/c?cid=a&site=news&u=" + url.QueryEscape("ftp://shop.example/"), ""},
		{"no destination", "/c?cid=a&site=news", ""},
		{"fragment dropped", "/c?cid=a&site=news&u=" + url.QueryEscape("https://shop.example/p#frag"), "https://shop.example/p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := clickServer(t)
			resp, hit, _ := do(t, s, "GET", tc.uri, nil, "198.51.100.7:1")
			loc := string(resp.Header.Peek("Location"))
			if hit == nil || hit.GetKind() != pixelpb.Kind_KIND_CLICK || hit.GetRoute() != routeClick {
				t.Fatalf("want a click recorded, got %v", hit)
			}
			if tc.wantLoc == "" {
				if resp.StatusCode() != 400 || loc != "" || schemas.InvalidReason(hit.GetInvalidReason()) != schemas.InvalidBadClick || hit.GetClickDestination() != "" {
					t.Fatalf("want 400, no Location, an invalid click; got %d, Location %q, hit %v", resp.StatusCode(), loc, hit)
				}
				return
			}
			if resp.StatusCode() != 302 || loc != tc.wantLoc || hit.GetClickDestination() != tc.wantLoc || hit.GetInvalidReason() != "" {
				t.Fatalf("want 302 to %q; got %d, Location %q, hit %v", tc.wantLoc, resp.StatusCode(), loc, hit)
			}
			if cc := string(resp.Header.Peek("Cache-Control")); cc != string(valueNoCache) {
				t.Fatalf("Cache-Control %q", cc)
			}
			// A signed click is verified; an allow-listed one is not.
			if signed := strings.HasPrefix(tc.name, "signed"); hit.GetVerified() != signed {
				t.Fatalf("verified %v, want %v", hit.GetVerified(), signed)
			}
		})
	}
}

func TestBeaconOptOutConversion(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)

	resp, hit, _ := do(t, s, "POST", "/b?cid=a&k=custom", nil, "198.51.100.7:1")
	if resp.StatusCode() != 204 || len(resp.Body()) != 0 || hit.GetRoute() != routeBeacon || hit.GetKind() != pixelpb.Kind_KIND_CUSTOM {
		t.Fatalf("beacon: %d, %d bytes, hit %v", resp.StatusCode(), len(resp.Body()), hit)
	}

	resp, hit, _ = do(t, s, "GET", "/optout", nil, "198.51.100.7:1")
	c := string(resp.Header.Peek("Set-Cookie"))
	for _, want := range []string{"ppoptout=1", "Secure", "HttpOnly", "SameSite=None", "max-age="} {
		if !strings.Contains(strings.ToLower(c), strings.ToLower(want)) {
			t.Fatalf("opt-out cookie %q lacks %q", c, want)
		}
	}
	if hit != nil {
		t.Fatal("the opt-out request was recorded")
	}
	resp, hit, _ = do(t, s, "GET", "/p.gif?cid=a", map[string]string{"Cookie": "ppoptout=1"}, "198.51.100.7:1")
	assertGIF(t, resp)
	if hit != nil {
		t.Fatal("an opted-out hit was recorded")
	}

	// Conversions: every malformed, negative, absurd or unsummable value is
	// invalid with its own reason (dead-lettered by the processor, never
	// counted); nothing is clamped.
	for _, tc := range []struct {
		query  string
		micros int64
		reason schemas.InvalidReason
	}{
		{"oid=o-1&val=12.34&cur=EUR", 12_340_000, ""},
		{"oid=o-1&val=0.000001&cur=USD", 1, ""},
		{"oid=o-1&val=7&cur=JPY", 7_000_000, ""},
		{"oid=o-1&val=.5&cur=EUR", 500_000, ""},
		{"oid=o-1&val=999999999999.999999&cur=EUR", 999_999_999_999_999_999, ""},
		{"oid=o-1&val=000000000000001&cur=EUR", 1_000_000, ""}, // leading zeros are not digits of the value
		{"oid=o-1&cur=EUR", 0, ""},
		{"oid=o-1", 0, ""},
		{"val=3&cur=EUR", 3_000_000, ""}, // no order id: counts per hit
		{"oid=o-1&val=-0&cur=EUR", 0, ""},
		{"oid=o-1&val=-3&cur=EUR", 0, schemas.InvalidNegativeValue},
		{"oid=o-1&val=-0.000001&cur=USD", 0, schemas.InvalidNegativeValue},
		{"oid=o-1&val=1000000000000&cur=EUR", 0, schemas.InvalidValueTooLarge},
		{"oid=o-1&val=99999999999999999999999&cur=EUR", 0, schemas.InvalidValueTooLarge},
		{"oid=o-1&val=1.0000001&cur=EUR", 0, schemas.InvalidBadValue},
		{"oid=o-1&val=1e5&cur=EUR", 0, schemas.InvalidBadValue},
		{"oid=o-1&val=NaN&cur=EUR", 0, schemas.InvalidBadValue},
		{"oid=o-1&val=Inf&cur=EUR", 0, schemas.InvalidBadValue},
		{"oid=o-1&val=1%2C5&cur=EUR", 0, schemas.InvalidBadValue},
		{"oid=o-1&val=.&cur=EUR", 0, schemas.InvalidBadValue},
		{"oid=o-1&val=-&cur=EUR", 0, schemas.InvalidBadValue},
		{"oid=o-1&val=1.2.3&cur=EUR", 0, schemas.InvalidBadValue},
		{"oid=o-1&val=3&cur=eur", 0, schemas.InvalidUnknownCurrency},
		{"oid=o-1&val=3&cur=EURO", 0, schemas.InvalidUnknownCurrency},
		{"oid=o-1&val=3&cur=ABC", 0, schemas.InvalidUnknownCurrency},
		{"oid=o-1&val=3&cur=XXX", 0, schemas.InvalidUnknownCurrency},
		{"oid=o-1&val=7", 0, schemas.InvalidValueNoCurrency},
		{"oid=%3Cx%3E&val=3&cur=EUR", 0, schemas.InvalidBadOrderID},
	} {
		_, hit, _ = do(t, s, "GET", "/p.gif?cid=a&k=conversion&"+tc.query, nil, "198.51.100.7:1")
		if hit.GetRoute() != routeConversion || schemas.InvalidReason(hit.GetInvalidReason()) != tc.reason || hit.GetValueMicros() != tc.micros {
			t.Fatalf("%s: got %v, want reason %q and %d micros", tc.query, hit, tc.reason, tc.micros)
		}
		if tc.reason != "" && (hit.GetOrderId() != "" || hit.GetCurrency() != "") {
			t.Fatalf("%s: an invalid conversion kept its order or currency: %v", tc.query, hit)
		}
	}
}

func TestPrivacySignals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		query   string
		headers map[string]string
		ids     bool // uid and cookie kept
	}{
		{"no signal", "", nil, true},
		{"gdpr without consent", "&gdpr=1", nil, false},
		{"gdpr with consent", "&gdpr=1&gdpr_consent=" + consentGiven, nil, true},
		{"gdpr=0", "&gdpr=0", nil, true},
		{"GPC honoured", "", map[string]string{"Sec-GPC": "1"}, false},
		{"DNT recorded, not honoured by default", "", map[string]string{"DNT": "1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, nil)
			h := map[string]string{"Cookie": "ppuid=c-1"}
			for k, v := range tc.headers {
				h[k] = v
			}
			_, hit, _ := do(t, s, "GET", "/p.gif?cid=a&uid=u-1"+tc.query, h, "198.51.100.7:1")
			if got := hit.GetUserId() != "" && hit.GetCookieId() != ""; got != tc.ids {
				t.Fatalf("identifiers kept = %v, want %v: %v", got, tc.ids, hit)
			}
			if hit.GetGpc() != (tc.headers["Sec-GPC"] == "1") || hit.GetDnt() != (tc.headers["DNT"] == "1") ||
				hit.GetGdprApplies() != strings.Contains(tc.query, "gdpr=1") {
				t.Fatalf("signals not recorded: %v", hit)
			}
		})
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	f := func(peer string, xff []string, want string) {
		t.Helper()
		var hdrs [][]byte
		for _, h := range xff {
			hdrs = append(hdrs, []byte(h))
		}
		if got := clientAddr(netip.MustParseAddr(peer), hdrs, trusted); got.String() != want {
			t.Errorf("peer %s, XFF %q: got %s, want %s", peer, xff, got, want)
		}
	}
	f("203.0.113.5", []string{"1.2.3.4"}, "203.0.113.5")             // untrusted peer: XFF ignored
	f("10.0.0.1", []string{"1.2.3.4, 198.51.100.9"}, "198.51.100.9") // rightmost untrusted hop
	f("10.0.0.1", []string{"1.2.3.4, 198.51.100.9, 10.0.0.7"}, "198.51.100.9")
	f("10.0.0.1", []string{"1.2.3.4", "198.51.100.9"}, "198.51.100.9") // several headers: the last is nearest
	f("10.0.0.1", []string{"garbage, 10.0.0.3"}, "10.0.0.3")           // stop at garbage
	f("10.0.0.1", []string{"nonsense"}, "10.0.0.1")
	f("10.0.0.1", nil, "10.0.0.1")
	f("10.0.0.1", []string{"10.0.0.2"}, "10.0.0.2") // all trusted: leftmost
	f("fd00::1", []string{"2001:db8::5"}, "2001:db8::5")
	f("::ffff:10.0.0.1", []string{"::ffff:198.51.100.1"}, "198.51.100.1") // IPv4-mapped
}

func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.1", "1.2.3.4, 10.0.0.2", "")
	f.Add("203.0.113.5", "x", "y")
	f.Add("10.1.1.1", ",,,", "::1")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	f.Fuzz(func(t *testing.T, peer, xff1, xff2 string) {
		p, err := netip.ParseAddr(peer)
		if err != nil {
			return
		}
		hdrs := [][]byte{[]byte(xff1), []byte(xff2)}
		got := clientAddr(p, hdrs, trusted)
		if again := clientAddr(p, hdrs, trusted); again != got {
			t.Fatal("not deterministic")
		}
		if got == p.Unmap() {
			return
		}
		// Anything else must be a hop written in the headers, and untrusted
		// unless every hop right of a garbage one was trusted. Hops are
		// compared as addresses: "::01" is the hop ::1.
		for _, hop := range strings.Split(xff1+","+xff2, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && a.Unmap() == got {
				return
			}
		}
		t.Fatalf("result %s is neither the peer nor a hop of %q %q", got, xff1, xff2)
	})
}

func FuzzRedirectLocation(f *testing.F) {
	for _, s := range []string{"https://shop.example/a?b=c", "//evil", "https:evil", "/\\evil", "https://a@b", "javascript:x", "https://x/%0d%0a", "HTTPS://SHOP.EXAMPLE/"} {
		f.Add(s)
	}
	allow := map[string][]string{"*": {"shop.example"}}
	f.Fuzz(func(t *testing.T, dest string) {
		loc, host, err := redirectLocation([]byte(dest))
		if err != nil {
			return
		}
		if strings.ContainsAny(loc, "\r\n\\ \x00") {
			t.Fatalf("Location %q from %q", loc, dest)
		}
		u, err := url.Parse(loc)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || strings.ToLower(u.Hostname()) != host {
			t.Fatalf("Location %q (host %q) from %q does not parse back to the same http(s) host", loc, host, dest)
		}
		if hostAllowed(allow, nil, host) && host != "shop.example" {
			t.Fatalf("host %q passed an allow-list of shop.example", host)
		}
	})
}

func FuzzVerifyClick(f *testing.F) {
	f.Add("ad-1", "https://a.example/", int64(0), uint(3))
	f.Add("x", "https://b.example/?q=1", int64(1893456000), uint(0))
	keys := map[string][]byte{"k1": clickKey}
	f.Fuzz(func(t *testing.T, cid, dest string, exp int64, flip uint) {
		if exp < 0 {
			exp = -exp
		}
		e := ""
		if exp != 0 {
			e = strconv.FormatInt(exp, 10)
		}
		sig := SignClick(clickKey, cid, dest, exp)
		now := testNow
		ok := verifyClick(keys, []byte("k1"), []byte(cid), []byte(dest), []byte(e), []byte(sig), now)
		if want := exp == 0 || exp >= now.Unix(); ok != want {
			t.Fatalf("valid signature verified = %v, want %v", ok, want)
		}
		// Any single-byte change of the signed material fails.
		material := []byte(cid + "\x00" + dest + "\x00" + sig)
		i := int(flip % uint(len(material)))
		material[i] ^= 0x01
		parts := strings.SplitN(string(material), "\x00", 3)
		if len(parts) != 3 {
			return // the flip created or removed a separator
		}
		if verifyClick(keys, []byte("k1"), []byte(parts[0]), []byte(parts[1]), []byte(e), []byte(parts[2]), now) &&
			(parts[0] != cid || parts[1] != dest) {
			t.Fatalf("a tampered click verified: %q", material)
		}
	})
}

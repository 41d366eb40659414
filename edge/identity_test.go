package edge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/schemas"
)

func TestSignedPixel(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *Config) { c.ClickKeys = map[string][]byte{"k1": clickKey} })
	sign := func(q string, key []byte) string { return q + "&sig=" + SignPixel(key, q) }
	future, past := strconv.FormatInt(testNow.Unix()+60, 10), strconv.FormatInt(testNow.Unix()-1, 10)
	base := "cid=ad-1&k=impression&cmp=spring&kid=k1"
	for _, tc := range []struct {
		name, query string
		sigErr      schemas.SignatureError // "" and signed: verified
	}{
		{"signed", sign(base, clickKey), ""},
		{"signed with expiry", sign(base+"&exp="+future, clickKey), ""},
		{"signed, cache-buster after", sign(base, clickKey) + "&cb=98765", ""},
		{"expired", sign(base+"&exp="+past, clickKey), schemas.SignatureExpired},
		{"wrong key", sign(base, []byte("another-key-of-32-bytes-00000000")), schemas.SignatureBad},
		{"forged with a past expiry", sign(base+"&exp="+past, []byte("another-key-of-32-bytes-00000000")), schemas.SignatureBad},
		{"unknown key id", sign("cid=ad-1&kid=k2", clickKey), schemas.SignatureUnknownKey},
		{"tampered campaign", strings.Replace(sign(base, clickKey), "spring", "summer", 1), schemas.SignatureBad},
		{"expiry extended", strings.Replace(sign(base+"&exp="+past, clickKey), "&exp="+past, "&exp="+future, 1), schemas.SignatureBad},
		{"parameter appended after sig", sign(base, clickKey) + "&uid=forged", schemas.SignatureUnsignedTail},
		{"two parameters after sig", sign(base, clickKey) + "&cb=1&cb=2", schemas.SignatureUnsignedTail},
		{"unsigned", base, ""},
		{"garbage sig", base + "&sig=%%%", schemas.SignatureBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, hit, _ := do(t, s, "GET", "/p.gif?"+tc.query, nil, "198.51.100.7:1")
			assertGIF(t, resp)
			verified := tc.sigErr == "" && strings.Contains(tc.query, "&sig=")
			if hit.GetVerified() != verified || schemas.SignatureError(hit.GetSignatureError()) != tc.sigErr || hit.GetContentId() != "ad-1" {
				t.Fatalf("verified %v, signature error %q; want %v, %q: %v", hit.GetVerified(), hit.GetSignatureError(), verified, tc.sigErr, hit)
			}
		})
	}
}

// TestSignedPixelVector: the signature of the documented test vector,
// computed here from the documented algorithm alone (HMAC-SHA256 of
// "pixelpipe-pixel-v1\n" and the query string before "&sig=", unpadded
// base64url), is the documented value, and the edge verifies it.
func TestSignedPixelVector(t *testing.T) {
	t.Parallel()
	const (
		key   = "pixelpipe-test-vector-key-000001"
		query = "cid=acme%3Aad-7&k=conversion&cmp=spring&uid=r-42&oid=o-1001&val=49.90&cur=EUR&kid=k1&exp=1830297600"
		want  = "VY8G6qYf1Rd-XUfvJt8hFVZdW8iZL8TGCs4spPGZIKA"
	)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("pixelpipe-pixel-v1\n" + query))
	if got := base64.RawURLEncoding.EncodeToString(m.Sum(nil)); got != want {
		t.Fatalf("hand-computed signature %s, documented %s", got, want)
	}
	if got := SignPixel([]byte(key), query); got != want {
		t.Fatalf("SignPixel = %s, want %s", got, want)
	}
	s := newTestServer(t, func(c *Config) { c.ClickKeys = map[string][]byte{"k1": []byte(key)} })
	_, hit, _ := do(t, s, "GET", "/p.gif?"+query+"&sig="+want+"&cb=1", nil, "198.51.100.7:1")
	if !hit.GetVerified() || hit.GetOrderId() != "o-1001" || hit.GetValueMicros() != 49_900_000 {
		t.Fatalf("the test vector did not verify: %v", hit)
	}
}

func TestProps(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	long := strings.Repeat("v", maxPropValue+10)
	many := ""
	for i := range maxProps + 1 {
		many += "&p.k" + strconv.Itoa(i) + "=v"
	}
	for _, tc := range []struct {
		name, query string
		want        []string // key=value, in order
		invalid     schemas.InvalidReason
	}{
		{"none", "cid=a", nil, ""},
		{"in order", "p.color=red&cid=a&p.size=XL%20%E2%9C%93&p.empty=", []string{"color=red", "size=XL ✓", "empty="}, ""},
		{"value cut", "cid=a&p.long=" + long, []string{"long=" + long[:maxPropValue]}, ""},
		{"invalid UTF-8 value", "cid=a&p.x=%ff", []string{"x=\uFFFD"}, ""},
		{"bad key", "cid=a&p.b%20d=1", nil, schemas.InvalidBadProps},
		{"empty key", "cid=a&p.=1", nil, schemas.InvalidBadProps},
		{"too many", "cid=a" + many, nil, schemas.InvalidBadProps},
		{"not a prop", "cid=a&px=1&cmp.x=2", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, hit, _ := do(t, s, "GET", "/p.gif?"+tc.query, nil, "198.51.100.7:1")
			var got []string
			for _, p := range hit.GetProps() {
				got = append(got, p.GetKey()+"="+p.GetValue())
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || schemas.InvalidReason(hit.GetInvalidReason()) != tc.invalid {
				t.Fatalf("props %q invalid %q, want %q %q", got, hit.GetInvalidReason(), tc.want, tc.invalid)
			}
		})
	}
	_, ans, hits := postBatch(t, s, `[{"cid":"a","props":{"b":"2","a":"1"}},{"cid":"b","props":{"bad key":"x"}},{"cid":"c","props":{"a":1}}]`, nil)
	if ans.Accepted != 1 || len(ans.Invalid) != 1 || ans.Invalid[0].Reason != schemas.InvalidBadProps || len(ans.Rejected) != 1 || len(hits) != 2 {
		t.Fatalf("batch props: %+v", ans)
	}
	if p := hits[0].GetProps(); len(p) != 2 || p[0].GetKey() != "a" || p[1].GetValue() != "2" {
		t.Fatalf("batch props %v", p)
	}
}

func TestRequestHeaders(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	_, hit, _ := do(t, s, "GET", "/p.gif?cid=a", map[string]string{
		"Sec-Purpose": "prefetch;prerender", "Accept-Language": "de-CH,de;q=0.9", "Accept": "image/*",
		"Sec-Fetch-Site": "cross-site", "Sec-Ch-Ua": `"Chromium";v="120"`,
	}, "198.51.100.7:1")
	want := schemas.HeaderAccept | schemas.HeaderAcceptLanguage | schemas.HeaderSecFetchSite | schemas.HeaderSecChUA
	if hit.GetPurpose() != "prefetch;prerender" || hit.GetAcceptLanguage() != "de-CH,de;q=0.9" || hit.GetPresentHeaders() != want {
		t.Fatalf("got purpose %q lang %q headers %b, want headers %b", hit.GetPurpose(), hit.GetAcceptLanguage(), hit.GetPresentHeaders(), want)
	}
	_, hit, _ = do(t, s, "GET", "/p.gif?cid=a", map[string]string{"Purpose": "prefetch", "Accept-Language": strings.Repeat("x", 1000) + "\xff"}, "198.51.100.7:1")
	if hit.GetPurpose() != "prefetch" || len(hit.GetAcceptLanguage()) != maxLanguageLen || hit.GetPresentHeaders() != schemas.HeaderAcceptLanguage {
		t.Fatalf("got %v", hit)
	}
}

var visitorIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestVisitorCookie is T-S11 for cookie issuance: set only when consent
// allows and the browser has none; Secure, HttpOnly, SameSite=None; the
// hit is recorded under the new id.
func TestVisitorCookie(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *Config) {
		c.IssueVisitorCookie = true
		c.HonourDNT = true
		c.VisitorCookie = "vid"
		c.VisitorCookieTTL = 30 * 24 * time.Hour
		c.CookieDomain = "px.example"
	})
	seen := map[string]bool{}
	for _, tc := range []struct {
		name, uri string
		headers   map[string]string
		issue     bool
	}{
		{"first visit", "/p.gif?cid=a", nil, true},
		{"beacon", "/b?cid=a", nil, true},
		{"gdpr=0", "/p.gif?cid=a&gdpr=0", nil, true},
		{"gdpr=1 with consent", "/p.gif?cid=a&gdpr=1&gdpr_consent=" + consentGiven, nil, true},
		{"gdpr=1 with an invalid consent string", "/p.gif?cid=a&gdpr=1&gdpr_consent=CP", nil, false},
		{"gdpr=1 without consent to purpose 1", "/p.gif?cid=a&gdpr=1&gdpr_consent=" + consentNoStorage, nil, false},
		{"gdpr=1 without consent", "/p.gif?cid=a&gdpr=1", nil, false},
		{"gdpr=1 with empty consent", "/p.gif?cid=a&gdpr=1&gdpr_consent=", nil, false},
		{"GPC", "/p.gif?cid=a", map[string]string{"Sec-GPC": "1"}, false},
		{"DNT honoured", "/p.gif?cid=a", map[string]string{"DNT": "1"}, false},
		{"opted out", "/p.gif?cid=a", map[string]string{"Cookie": "ppoptout=1"}, false},
		{"has one", "/p.gif?cid=a", map[string]string{"Cookie": "vid=0123456789abcdef0123456789abcdef"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, hit, _ := do(t, s, "GET", tc.uri, tc.headers, "198.51.100.7:1")
			sc := string(resp.Header.Peek("Set-Cookie"))
			if !tc.issue {
				if sc != "" {
					t.Fatalf("Set-Cookie %q", sc)
				}
				if tc.name == "has one" && hit.GetCookieId() != "0123456789abcdef0123456789abcdef" {
					t.Fatalf("existing cookie not recorded: %v", hit)
				}
				return
			}
			first, _, _ := strings.Cut(sc, ";")
			name, value, _ := strings.Cut(first, "=")
			for _, want := range []string{"secure", "httponly", "samesite=none", "max-age=2592000", "domain=px.example", "path=/"} {
				if !strings.Contains(strings.ToLower(sc), want) {
					t.Fatalf("Set-Cookie %q lacks %q", sc, want)
				}
			}
			if name != "vid" || !visitorIDPattern.MatchString(value) || seen[value] || hit.GetCookieId() != value {
				t.Fatalf("cookie %s=%s, recorded %q", name, value, hit.GetCookieId())
			}
			seen[value] = true
		})
	}
	// A batch gets one cookie for all its events.
	_, ans, hits := postBatch(t, s, `[{"cid":"a"},{"cid":"b"}]`, nil)
	if ans.Accepted != 2 || hits[0].GetCookieId() == "" || hits[0].GetCookieId() != hits[1].GetCookieId() {
		t.Fatalf("batch: %+v %v", ans, hits)
	}
	// Without issuance configured nothing is ever set.
	plain := newTestServer(t, nil)
	if resp, _, _ := do(t, plain, "GET", "/p.gif?cid=a", nil, "198.51.100.7:1"); len(resp.Header.Peek("Set-Cookie")) != 0 {
		t.Fatal("cookie set without edge.issueVisitorCookie")
	}
}

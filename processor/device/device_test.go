package device

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Real user agents of the major families.
var (
	uaChromeWin  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaIPhone     = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	uaIPad       = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
	uaAndroid    = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.102 Mobile Safari/537.36"
	uaFirefoxMac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0"
	uaGooglebot  = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	uaTizenTV    = "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ua string
		want     Device
	}{
		{"chrome windows", uaChromeWin, Device{Type: Desktop, OS: "Windows", OSVersion: "10.0", Browser: "Chrome", BrowserVersion: "131.0.0.0"}},
		{"iphone", uaIPhone, Device{Type: Mobile, OS: "iOS", OSVersion: "17.5", Browser: "Safari", BrowserVersion: "17.5"}},
		{"ipad", uaIPad, Device{Type: Tablet, OS: "iOS", OSVersion: "16.6", Browser: "Safari", BrowserVersion: "16.6"}},
		{"android", uaAndroid, Device{Type: Mobile, OS: "Android", OSVersion: "14", Browser: "Chrome", BrowserVersion: "130.0.6723.102"}},
		{"firefox mac", uaFirefoxMac, Device{Type: Desktop, OS: "macOS", OSVersion: "14.5", Browser: "Firefox", BrowserVersion: "132.0"}},
		{"googlebot", uaGooglebot, Device{Type: Bot, Browser: "Googlebot", BrowserVersion: "2.1", Crawler: true}},
		{"smart tv", uaTizenTV, Device{Type: TV, OS: "Tizen", Browser: "TV Safari", BrowserVersion: "537.36"}},
		{"empty", "", Device{Type: Other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Parse(tt.ua)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("Parse(%q) (-want +got):\n%s", tt.ua, diff)
			}
		})
	}
}

func TestParserCache(t *testing.T) {
	t.Parallel()
	p := NewParser(2, prometheus.NewRegistry())
	for _, ua := range []string{uaIPhone, uaIPhone, uaAndroid, uaChromeWin, uaIPhone} {
		if got, want := p.Parse(ua), Parse(ua); got != want {
			t.Fatalf("cached %v, uncached %v", got, want)
		}
	}
	// iPhone, Android, Chrome miss; iPhone hits once, then misses after
	// being evicted by the two others (size 2).
	if h, m := testutil.ToFloat64(p.hits), testutil.ToFloat64(p.misses); h != 1 || m != 4 {
		t.Fatalf("hits %v misses %v, want 1 and 4", h, m)
	}
}

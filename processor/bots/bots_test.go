package bots

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pixelpipe/pixelpipe/processor/device"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

const (
	chrome   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"
	gmail    = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
	allHdrs  = schemas.HeaderAccept | schemas.HeaderAcceptLanguage | schemas.HeaderAcceptEncoding | schemas.HeaderSecFetchMode | schemas.HeaderSecFetchSite
)

func TestLabel(t *testing.T) {
	t.Parallel()
	dc, err := LoadCIDRs(strings.NewReader("# cloud\n198.51.100.0/24\n2001:db8::/32\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := New(Config{Datacenter: dc, MaxPerMinute: 60})
	home := netip.MustParseAddr("203.0.113.9")
	tests := []struct {
		name        string
		in          Input
		want        []schemas.Label
		machineOpen bool
	}{
		{"human chrome", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, PresentHeaders: allHdrs, IP: home}, nil, false},
		{"headers unknown are not judged", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, IP: home}, nil, false},
		{"googlebot", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", IP: home}, []schemas.Label{KnownCrawler}, false},
		{"curl", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: "curl/8.5.0", PresentHeaders: schemas.HeaderAccept, IP: home}, []schemas.Label{KnownCrawler, MissingHeaders}, false},
		{"empty ua", Input{Kind: pixelpb.Kind_KIND_VIEW, IP: home}, []schemas.Label{EmptyUA}, false},
		{"headless", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: headless, PresentHeaders: allHdrs, IP: home}, []schemas.Label{Headless}, false},
		{"prerender", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, PresentHeaders: allHdrs, Purpose: "prefetch;prerender", IP: home}, []schemas.Label{Prefetch}, false},
		{"chrome without sec-fetch", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, PresentHeaders: schemas.HeaderAccept | schemas.HeaderAcceptLanguage | schemas.HeaderAcceptEncoding, IP: home}, []schemas.Label{MissingHeaders}, false},
		{"datacenter v4", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, PresentHeaders: allHdrs, IP: netip.MustParseAddr("198.51.100.7")}, []schemas.Label{Datacenter}, false},
		{"datacenter v6", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, PresentHeaders: allHdrs, IP: netip.MustParseAddr("2001:db8::1")}, []schemas.Label{Datacenter}, false},
		{"rate", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, PresentHeaders: allHdrs, IP: home, RatePerMinute: 61}, []schemas.Label{Rate}, false},
		{"edge rate flag", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, PresentHeaders: allHdrs | schemas.EdgeFlagRate, IP: home}, []schemas.Label{Rate}, false},
		{"edge rate flag and visitor rate: one reason", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, PresentHeaders: allHdrs | schemas.EdgeFlagRate, IP: home, RatePerMinute: 61}, []schemas.Label{Rate}, false},
		{"edge flag alone is not a header", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: chrome, PresentHeaders: schemas.EdgeFlagRate, IP: home}, []schemas.Label{Rate}, false},
		{"apple mpp", Input{Kind: pixelpb.Kind_KIND_OPEN, UserAgent: "Mozilla/5.0", IP: netip.MustParseAddr("17.58.1.2")}, []schemas.Label{AppleMPP}, true},
		{"gmail proxy", Input{Kind: pixelpb.Kind_KIND_OPEN, UserAgent: gmail, IP: home}, []schemas.Label{GmailProxy}, true},
		{"scanner", Input{Kind: pixelpb.Kind_KIND_OPEN, UserAgent: "Mozilla/5.0 Barracuda Sentinel", IP: home}, []schemas.Label{LinkScanner}, true},
		{"human open", Input{Kind: pixelpb.Kind_KIND_OPEN, UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)", IP: home}, nil, false},
		{"bare UA on a page view is not MPP", Input{Kind: pixelpb.Kind_KIND_VIEW, UserAgent: "Mozilla/5.0", IP: home}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := tt.in
			in.Device = device.Parse(in.UserAgent)
			reasons, mo := l.Label(&in, nil)
			var got []schemas.Label
			for _, r := range reasons {
				got = append(got, schemas.Label(r))
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" || mo != tt.machineOpen {
				t.Fatalf("Label(%+v) machineOpen=%v want %v; reasons (-want +got):\n%s", tt.in, mo, tt.machineOpen, diff)
			}
		})
	}
}

func TestLoadCIDRsRejectsGarbage(t *testing.T) {
	t.Parallel()
	if _, err := LoadCIDRs(strings.NewReader("10.0.0.0/8\nnot-a-network\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want a line-2 error", err)
	}
}

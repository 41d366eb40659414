// Package bots labels invalid traffic with reason codes and separates
// machine e-mail opens from human ones. It labels; it never drops: what to do
// with a labelled event is the consumer's choice. A Labeler is safe for
// concurrent use.
package bots

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"go4.org/netipx"

	"github.com/pixelpipe/pixelpipe/processor/device"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Reason codes of invalid traffic (the contract is in schemas).
const (
	KnownCrawler   = schemas.BotKnownCrawler
	EmptyUA        = schemas.BotEmptyUA
	Headless       = schemas.BotHeadless
	Prefetch       = schemas.BotPrefetch
	MissingHeaders = schemas.BotMissingHeaders
	Datacenter     = schemas.BotDatacenter
	// Rate: over the processor's per-visitor rate (MaxPerMinute), or over
	// the edge's per-client-IP rate (schemas.EdgeFlagRate).
	Rate = schemas.BotRate
)

// Reason codes of machine opens (kind open only).
const (
	AppleMPP    = schemas.MachineAppleMPP
	GmailProxy  = schemas.MachineGmailProxy
	YahooProxy  = schemas.MachineYahooProxy
	LinkScanner = schemas.MachineLinkScanner
)

// Config configures a Labeler.
type Config struct {
	// Datacenter networks; hits from them get "datacenter". Default none.
	Datacenter *netipx.IPSet
	// MaxPerMinute is the most hits a visitor plausibly makes in one minute
	// of event time; past it hits get "rate". Default 120.
	MaxPerMinute uint32
	// UACache bounds the user agents whose verdicts are cached. Default 10000.
	UACache int
}

// Labeler labels hits.
type Labeler struct {
	cfg   Config
	cache *lru.Cache[string, uaFlags]
}

// New returns a labeler.
func New(cfg Config) *Labeler {
	if cfg.MaxPerMinute == 0 {
		cfg.MaxPerMinute = 120
	}
	if cfg.UACache <= 0 {
		cfg.UACache = 10_000
	}
	c, err := lru.New[string, uaFlags](cfg.UACache)
	if err != nil {
		panic("BUG: lru.New: " + err.Error())
	}
	return &Labeler{cfg: cfg, cache: c}
}

// LoadCIDRs reads one CIDR or address per line ('#' comments allowed).
func LoadCIDRs(r io.Reader) (*netipx.IPSet, error) {
	var b netipx.IPSetBuilder
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if p, err := netip.ParsePrefix(line); err == nil {
			b.AddPrefix(p.Masked())
			continue
		}
		a, err := netip.ParseAddr(line)
		if err != nil {
			return nil, fmt.Errorf("network list line %d: %q is neither a CIDR nor an address", n, line)
		}
		b.Add(a)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return b.IPSet()
}

// Input is what labelling looks at.
type Input struct {
	Kind           pixelpb.Kind
	UserAgent      string
	Device         device.Device
	Purpose        string
	PresentHeaders uint32
	IP             netip.Addr
	RatePerMinute  uint32
}

// uaFlags is what the user agent alone says; computed once per agent.
type uaFlags uint8

const (
	fCrawler uaFlags = 1 << iota
	fHeadless
	fScanner
	fGmail
	fYahoo
	fBare
)

func classifyUA(ua string) uaFlags {
	lower := strings.ToLower(ua)
	var f uaFlags
	if containsAny(lower, crawlerMarkers) {
		f |= fCrawler
	}
	if containsAny(lower, headlessMarkers) {
		f |= fHeadless
	}
	if containsAny(lower, scannerMarkers) {
		f |= fScanner
	}
	if strings.Contains(ua, "GoogleImageProxy") {
		f |= fGmail
	}
	if strings.Contains(ua, "YahooMailProxy") {
		f |= fYahoo
	}
	if ua == "Mozilla/5.0" {
		f |= fBare
	}
	return f
}

func (l *Labeler) flags(ua string) uaFlags {
	if len(ua) > 512 {
		return classifyUA(ua)
	}
	if f, ok := l.cache.Get(ua); ok {
		return f
	}
	f := classifyUA(ua)
	l.cache.Add(strings.Clone(ua), f)
	return f
}

// Label appends the reasons that apply to dst (as Event.bot_reasons holds
// them: strings of schemas.Label) and reports whether the hit is a machine
// open. Machine-open reasons are reasons too: such an open is
// not a person's.
func (l *Labeler) Label(in *Input, dst []string) (reasons []string, machineOpen bool) {
	ua := in.UserAgent
	f := l.flags(ua)
	headless := f&fHeadless != 0
	switch {
	case ua == "":
		dst = append(dst, string(EmptyUA))
	case in.Device.Crawler && !headless || f&fCrawler != 0:
		// The parser calls headless browsers bots; "headless" says more.
		dst = append(dst, string(KnownCrawler))
	}
	if headless {
		dst = append(dst, string(Headless))
	}
	if p := in.Purpose; p != "" && (containsFold(p, "prefetch") || containsFold(p, "prerender")) {
		dst = append(dst, string(Prefetch))
	}
	if missingHeaders(in) {
		dst = append(dst, string(MissingHeaders))
	}
	if l.cfg.Datacenter != nil && in.IP.IsValid() && l.cfg.Datacenter.Contains(in.IP.Unmap()) {
		dst = append(dst, string(Datacenter))
	}
	if in.RatePerMinute > l.cfg.MaxPerMinute || in.PresentHeaders&schemas.EdgeFlagRate != 0 {
		dst = append(dst, string(Rate))
	}
	if in.Kind == pixelpb.Kind_KIND_OPEN {
		if r := machineOpenReason(f, in.IP); r != "" {
			dst = append(dst, string(r))
			machineOpen = true
		}
	}
	return dst, machineOpen
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// missingHeaders: a browser always sends Accept, Accept-Language and
// Accept-Encoding with an image request, and Chromium since version 80 also
// Sec-Fetch-Mode. A present_headers of 0 means the edge did not record
// headers (older edges); it is not judged.
func missingHeaders(in *Input) bool {
	h := in.PresentHeaders &^ schemas.EdgeFlags
	if h == 0 || in.Device.Crawler || in.Kind == pixelpb.Kind_KIND_OPEN {
		// Mail clients and their proxies send few headers; crawlers are
		// labelled already.
		return false
	}
	const always = schemas.HeaderAccept | schemas.HeaderAcceptLanguage | schemas.HeaderAcceptEncoding
	if h&always != always {
		return true
	}
	if in.Device.Browser == "Chrome" && h&schemas.HeaderSecFetchMode == 0 && major(in.Device.BrowserVersion) >= 80 {
		return true
	}
	return false
}

func machineOpenReason(f uaFlags, ip netip.Addr) schemas.Label {
	switch {
	case f&fGmail != 0:
		return GmailProxy
	case f&fYahoo != 0:
		return YahooProxy
	case f&fScanner != 0:
		return LinkScanner
	// Apple Mail Privacy Protection fetches through Apple's relays with a bare
	// "Mozilla/5.0" user agent, from Apple's 17.0.0.0/8 among others.
	case f&fBare != 0 || ip.IsValid() && appleNet.Contains(ip.Unmap()):
		return AppleMPP
	}
	return ""
}

var appleNet = netip.MustParsePrefix("17.0.0.0/8")

var (
	crawlerMarkers = []string{
		"bot/", "bot;", "bot)", "bot ", "-bot", "_bot", "robot", "crawl", "spider", "slurp", "curl/", "wget/",
		"python-requests", "python-urllib", "aiohttp", "go-http-client", "java/", "okhttp", "libwww", "httpclient",
		"scrapy", "facebookexternalhit", "bingpreview", "feedfetcher", "ahrefs", "semrush", "mj12", "petalbot",
		"uptimerobot", "pingdom", "statuscake", "headlesschrome-bot",
	}
	headlessMarkers = []string{"headlesschrome", "phantomjs", "puppeteer", "playwright", "selenium", "webdriver", "lighthouse", "slimerjs", "jsdom"}
	scannerMarkers  = []string{"barracuda", "mimecast", "proofpoint", "symantec", "forcepoint", "trendmicro", "trend micro", "sophos", "fortiguard", "safelinks", "cisco ironport", "zscaler"}
)

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func major(v string) int {
	n := 0
	for i := 0; i < len(v) && v[i] >= '0' && v[i] <= '9' && n < 1e6; i++ {
		n = n*10 + int(v[i]-'0')
	}
	return n
}

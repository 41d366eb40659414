// Package device derives device type, OS and browser with versions from a
// user agent, with github.com/mileusna/useragent behind a bounded LRU cache
// (user agents repeat heavily). A Parser is safe for concurrent use.
package device

import (
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/mileusna/useragent"
	"github.com/prometheus/client_golang/prometheus"
)

// Device types.
const (
	Desktop = "desktop"
	Mobile  = "mobile"
	Tablet  = "tablet"
	TV      = "tv"
	Bot     = "bot"
	Other   = "other"
)

// Device is what a user agent says.
type Device struct {
	Type, OS, OSVersion, Browser, BrowserVersion string
	// Crawler: the parser knows the agent as a bot.
	Crawler bool
}

// Parser parses user agents through a cache.
type Parser struct {
	cache        *lru.Cache[string, Device]
	hits, misses prometheus.Counter
}

// maxUALen bounds the user agent parsed and cached; longer ones are cut.
const maxUALen = 512

// NewParser returns a parser caching up to size user agents, with its hit
// and miss counters registered on reg (nil: none).
func NewParser(size int, reg prometheus.Registerer) *Parser {
	c, err := lru.New[string, Device](max(size, 1))
	if err != nil {
		panic("BUG: lru.New: " + err.Error())
	}
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pixel_processor_ua_cache_total",
		Help: "User agent parser cache lookups by result: hit or miss (a miss runs the parser). Size: -processor.uaCacheSize.",
	}, []string{"result"})
	if reg != nil {
		reg.MustRegister(v)
	}
	return &Parser{cache: c, hits: v.WithLabelValues("hit"), misses: v.WithLabelValues("miss")}
}

// Parse returns the device of ua.
func (p *Parser) Parse(ua string) Device {
	if len(ua) > maxUALen {
		ua = ua[:maxUALen]
	}
	if d, ok := p.cache.Get(ua); ok {
		p.hits.Inc()
		return d
	}
	p.misses.Inc()
	d := Parse(ua)
	// The key must not pin the caller's larger buffer.
	p.cache.Add(strings.Clone(ua), d)
	return d
}

// Parse parses ua without a cache.
func Parse(ua string) Device {
	if ua == "" {
		return Device{Type: Other}
	}
	u := useragent.Parse(ua)
	d := Device{OS: u.OS, OSVersion: u.OSVersion, Browser: u.Name, BrowserVersion: u.Version, Crawler: u.Bot}
	if d.OS == "" && strings.Contains(ua, "Tizen") {
		d.OS = "Tizen"
	}
	switch {
	case u.Bot:
		d.Type = Bot
	case isTV(ua):
		d.Type = TV
	case u.Tablet:
		d.Type = Tablet
	case u.Mobile:
		d.Type = Mobile
	case u.Desktop:
		d.Type = Desktop
	default:
		d.Type = Other
	}
	return d
}

var tvMarkers = []string{"SmartTV", "SMART-TV", "Smart-TV", "HbbTV", "AppleTV", "Apple TV", "GoogleTV", "CrKey", "Roku", "AFTB", "AFTS", "AFTM", "BRAVIA", "Web0S", "WebOS TV", "Tizen TV", "PlayStation", "Xbox"}

func isTV(ua string) bool {
	for _, m := range tvMarkers {
		if strings.Contains(ua, m) {
			return true
		}
	}
	return false
}

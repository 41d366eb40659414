// Package source classifies where a hit's visitor came from: the referrer's
// registrable domain and its medium, the UTM parameters of the page URL, and
// a click id with its ad network. It keeps no state besides its List and is
// safe for concurrent use once built.
package source

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Media of a visit.
const (
	Search   = "search"
	Social   = "social"
	Email    = "email"
	Paid     = "paid"
	Internal = "internal"
	Direct   = "direct"
	Other    = "other"
)

// List maps referrer domains to media. A key is a host ("mail.google.com"),
// a registrable domain ("t.co"), or a registrable domain's name without its
// public suffix ("google" matches google.com, google.co.uk, ...); the most
// specific match wins.
type List struct{ m map[string]string }

// DefaultList returns the built-in list.
func DefaultList() *List {
	l := &List{m: map[string]string{}}
	for medium, domains := range map[string][]string{
		Search: {"google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "startpage", "qwant",
			"naver", "seznam", "search.brave.com", "kagi", "ask", "aol"},
		Social: {"facebook", "fb.me", "instagram", "t.co", "twitter", "x.com", "linkedin", "lnkd.in", "reddit",
			"pinterest", "youtube", "tiktok", "snapchat", "threads.net", "mastodon.social", "bsky.app",
			"news.ycombinator.com", "vk.com", "weibo", "tumblr", "whatsapp", "telegram.org", "t.me", "discord"},
		Email: {"mail.google.com", "outlook.live.com", "outlook.office.com", "outlook.office365.com", "mail.yahoo.com",
			"mail.aol.com", "mail.proton.me", "mail.yandex.ru", "webmail", "mail.ru", "gmx", "web.de", "fastmail"},
		Paid: {"googleadservices.com", "doubleclick.net", "googlesyndication.com", "adnxs.com", "criteo.com",
			"taboola.com", "outbrain.com"},
	} {
		for _, d := range domains {
			l.m[d] = medium
		}
	}
	return l
}

// Add maps domain to medium, replacing a built-in entry.
func (l *List) Add(domain, medium string) error {
	switch medium {
	case Search, Social, Email, Paid, Internal, Direct, Other:
	default:
		return fmt.Errorf("referrer list: unknown medium %q for %q", medium, domain)
	}
	l.m[strings.ToLower(strings.TrimSpace(domain))] = medium
	return nil
}

// Load adds "domain medium" lines from r; blank lines and lines starting
// with # are skipped.
func (l *List) Load(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return fmt.Errorf("referrer list line %d: want \"domain medium\", got %q", n, line)
		}
		if err := l.Add(f[0], f[1]); err != nil {
			return fmt.Errorf("referrer list line %d: %w", n, err)
		}
	}
	return sc.Err()
}

// Source is what Classify found.
type Source struct {
	ReferrerDomain, Medium                                 string
	UTMSource, UTMMedium, UTMCampaign, UTMTerm, UTMContent string
	ClickID, ClickNetwork                                  string
}

// clickIDs are the click-id parameters and their networks, in order of
// precedence.
var clickIDs = [...]struct{ param, network string }{
	{"gclid", "google"}, {"gbraid", "google"}, {"wbraid", "google"}, {"dclid", "doubleclick"},
	{"msclkid", "microsoft"}, {"fbclid", "meta"}, {"ttclid", "tiktok"}, {"li_fat_id", "linkedin"},
}

// Classify derives the source of a hit on pageURL reached from referrer.
// It reads only the host and the query, without url.Parse: it runs for
// every hit.
func (l *List) Classify(pageURL, referrer string) Source {
	var s Source
	pageHost := hostOf(pageURL)
	if q := queryOf(pageURL); q != "" {
		clickRank := len(clickIDs)
		for q != "" {
			var kv string
			kv, q, _ = strings.Cut(q, "&")
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "utm_source":
				s.UTMSource = first(s.UTMSource, v)
			case "utm_medium":
				s.UTMMedium = first(s.UTMMedium, v)
			case "utm_campaign":
				s.UTMCampaign = first(s.UTMCampaign, v)
			case "utm_term":
				s.UTMTerm = first(s.UTMTerm, v)
			case "utm_content":
				s.UTMContent = first(s.UTMContent, v)
			default:
				for i := range clickRank {
					if k == clickIDs[i].param && v != "" {
						s.ClickID, s.ClickNetwork, clickRank = unescape(v), clickIDs[i].network, i
						break
					}
				}
			}
		}
	}
	refHost := strings.TrimSuffix(hostOf(referrer), ".")
	if refHost != "" {
		s.ReferrerDomain = registrable(refHost)
	}
	switch {
	case s.ClickID != "" || isPaidMedium(s.UTMMedium):
		s.Medium = Paid
	case strings.EqualFold(s.UTMMedium, "email") || strings.EqualFold(s.UTMMedium, "newsletter"):
		s.Medium = Email
	case refHost == "":
		s.Medium = Direct
		if s.UTMMedium != "" || s.UTMSource != "" {
			s.Medium = Other
		}
	case pageHost != "" && registrable(pageHost) == s.ReferrerDomain:
		s.Medium = Internal
	default:
		s.Medium = l.lookup(refHost, s.ReferrerDomain)
	}
	return s
}

// hostOf returns the lower-case host of an absolute http(s) URL without
// port or user info, or "".
func hostOf(u string) string {
	i := strings.Index(u, "://")
	if i <= 0 {
		return ""
	}
	rest := u[i+3:]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		rest = rest[:j]
	}
	if j := strings.LastIndexByte(rest, '@'); j >= 0 {
		rest = rest[j+1:]
	}
	if strings.HasPrefix(rest, "[") {
		if j := strings.IndexByte(rest, ']'); j >= 0 {
			return strings.ToLower(rest[1:j])
		}
		return ""
	}
	if j := strings.LastIndexByte(rest, ':'); j >= 0 {
		rest = rest[:j]
	}
	for k := 0; k < len(rest); k++ {
		if c := rest[k]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(rest)
		}
	}
	return rest
}

// queryOf returns the query of u, without the fragment.
func queryOf(u string) string {
	i := strings.IndexByte(u, '?')
	if i < 0 {
		return ""
	}
	q := u[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	return q
}

// first keeps the first value of a repeated parameter.
func first(cur, v string) string {
	if cur != "" {
		return cur
	}
	return unescape(v)
}

func unescape(v string) string {
	if strings.IndexByte(v, '%') < 0 && strings.IndexByte(v, '+') < 0 {
		return v
	}
	if d, err := url.QueryUnescape(v); err == nil {
		return d
	}
	return v
}

func (l *List) lookup(host, reg string) string {
	for h := host; h != ""; {
		if m, ok := l.m[h]; ok {
			return m
		}
		if h == reg {
			break
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			break
		}
		h = h[i+1:]
	}
	if suffix, _ := publicsuffix.PublicSuffix(reg); len(reg) > len(suffix)+1 {
		if m, ok := l.m[reg[:len(reg)-len(suffix)-1]]; ok {
			return m
		}
	}
	for _, label := range strings.Split(host, ".") {
		if label == "webmail" || label == "mail" && l.m["webmail"] == Email {
			return Email
		}
	}
	return Other
}

func isPaidMedium(m string) bool {
	switch strings.ToLower(m) {
	case "cpc", "ppc", "paid", "paidsearch", "paid_search", "paid-social", "paid_social", "display", "cpm", "cpv", "banner", "retargeting":
		return true
	}
	return false
}

// registrable returns the eTLD+1 of host, or host when it has none (an IP
// address, localhost).
func registrable(host string) string {
	if d, err := publicsuffix.EffectiveTLDPlusOne(host); err == nil {
		return d
	}
	return host
}

//go:build devmode

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/internal/loadgen"
)

// Content ids of the demo traffic.
const (
	demoAd         = "ad-1"         // an ad: signed impressions, some unsigned, and signed clicks
	demoShop       = "shop"         // a thank-you page: conversions with order ids and values
	demoNewsletter = "newsletter-1" // an e-mail: opens by recipients and by mail proxies, clicks on its links
)

// User agents the demo plays besides a desktop Chrome.
const (
	uaGmailProxy = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
	uaAppleMail  = "Mozilla/5.0" // Apple Mail Privacy Protection fetches with a bare agent
	uaGooglebot  = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)

// demoTraffic sends what a small site, an ad and a newsletter would get, so
// that every panel and report of `pixelpipe dev` has data: page views with
// their referrers and UTM tags over Zipf-popular articles, custom events
// (shares, subscriptions) with properties on them, signed ad
// impressions (a few unsigned, counted apart under the dev signing policy)
// and signed clicks, conversions with order ids (now and then the same
// order again, counted once), newsletter opens by recipients and by mail
// proxies, and a crawler.
type demoTraffic struct {
	edgeURL  string
	rate     float64
	contents int
	visitors int
	clickKey []byte // the dev-only key, under key id "dev"
	logger   *slog.Logger
}

// demoReferrers are where page views come from; "" is a typed address.
var demoReferrers = []struct{ query, ref string }{
	{"", ""},
	{"", "https://www.google.com/"},
	{"", "https://t.co/demo"},
	{"?utm_source=newsletter&utm_medium=email&utm_campaign=december", ""},
	{"?gclid=demo-click", "https://www.google.com/"},
	{"", "https://news.example.org/links"},
}

// demoActions are the custom events of the demo's articles, as properties.
// demoNewsletterLinks are the links of the demo's newsletter.
var demoNewsletterLinks = []string{"https://shop.example.com/december", "https://blog.example.com/article-1", "https://shop.example.com/gift-cards"}

var demoActions = []string{
	"p.action=share&p.network=mastodon",
	"p.action=share&p.network=email",
	"p.action=subscribe&p.plan=free",
	"p.action=subscribe&p.plan=pro",
	"p.action=comment",
}

func (d demoTraffic) Run(ctx context.Context) error {
	// Give the consumer groups a moment to form before the first hits.
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(time.Second):
	}
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(rng.Uint64(), 8)), 1.1, 1, uint64(max(d.contents, 1)-1))
	tick := time.NewTicker(time.Duration(float64(time.Second) / d.rate))
	defer tick.Stop()
	var orders []string
	failures := 0
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		path, ua := d.next(rng, zipf, &orders, n)
		if err := d.send(ctx, client, path, ua); err != nil && ctx.Err() == nil {
			if failures++; failures == 1 || failures%100 == 0 {
				d.logger.Warn("demo traffic: a request failed", "failures", failures, "err", err)
			}
		}
	}
}

// next returns the path and user agent of the demo's n-th request.
func (d demoTraffic) next(rng *rand.Rand, zipf *rand.Zipf, orders *[]string, n int) (string, string) {
	// Visitors come and go: a sixth of them is on the site at a time, the
	// window moving on by one visitor each second, so each visit lasts
	// about a minute and visitors come back later; visits end when their
	// visitor has left for the session timeout.
	visitors := max(d.visitors, 1)
	active := max(visitors/6, 1)
	uid := "visitor-" + strconv.Itoa((n/max(int(d.rate), 1)+rng.IntN(active))%visitors)
	browser := loadgen.BrowserHeaders["User-Agent"]
	switch r := rng.IntN(100); {
	case r < 51: // a page view, as the page snippet sends it
		page := fmt.Sprintf("https://blog.example.com/article-%d", zipf.Uint64())
		from := demoReferrers[rng.IntN(len(demoReferrers))]
		return "/p.gif?cid=content-" + strconv.FormatUint(zipf.Uint64(), 10) + "&uid=" + uid +
			"&url=" + url.QueryEscape(page+from.query) + "&ref=" + url.QueryEscape(from.ref), browser
	case r < 55: // a custom event on an article, with its properties
		action := demoActions[rng.IntN(len(demoActions))]
		return "/p.gif?cid=content-" + strconv.FormatUint(zipf.Uint64(), 10) + "&k=custom&uid=" + uid + "&" + action, browser
	case r < 67: // a signed ad impression
		q := "cid=" + demoAd + "&k=impression&cmp=winter&uid=" + uid + "&kid=dev"
		return "/p.gif?" + q + "&sig=" + edge.SignPixel(d.clickKey, q), browser
	case r < 70: // an unsigned one: counted, but apart from the signed ones
		return "/p.gif?cid=" + demoAd + "&k=impression&cmp=winter&uid=" + uid, browser
	case r < 75: // a signed click on the ad
		dest := "https://shop.example.com/sale"
		return "/c?" + url.Values{"cid": {demoAd}, "u": {dest}, "kid": {"dev"}, "cmp": {"winter"}, "uid": {uid}, "sig": {edge.SignClick(d.clickKey, demoAd, dest, 0)}}.Encode(), browser
	case r < 78: // a conversion; now and then the thank-you page is reloaded
		order := "order-" + strconv.Itoa(n)
		if len(*orders) > 0 && rng.IntN(10) == 0 {
			order = (*orders)[rng.IntN(len(*orders))]
		} else {
			*orders = append((*orders)[max(len(*orders)-50, 0):], order)
		}
		return fmt.Sprintf("/p.gif?cid=%s&k=conversion&cmp=winter&uid=%s&oid=%s&val=%d.%02d&cur=EUR", demoShop, uid, order, 10+rng.IntN(190), rng.IntN(100)), browser
	case r < 92: // a newsletter open: a recipient, or a mail proxy fetching for one
		ua := browser
		switch rng.IntN(10) {
		case 0, 1:
			ua = uaGmailProxy
		case 2:
			ua = uaAppleMail
		}
		return "/p.gif?cid=" + demoNewsletter + "&k=open&cmp=december&uid=recipient-" + strconv.Itoa(rng.IntN(max(d.visitors, 1))), ua
	case r < 95: // a recipient clicks one of the newsletter's signed links
		dest := demoNewsletterLinks[rng.IntN(len(demoNewsletterLinks))]
		rcpt := "recipient-" + strconv.Itoa(rng.IntN(max(d.visitors, 1)))
		return "/c?" + url.Values{"cid": {demoNewsletter}, "u": {dest}, "kid": {"dev"}, "cmp": {"december"}, "uid": {rcpt}, "sig": {edge.SignClick(d.clickKey, demoNewsletter, dest, 0)}}.Encode(), browser
	default: // a crawler
		return "/p.gif?cid=content-" + strconv.FormatUint(zipf.Uint64(), 10), uaGooglebot
	}
}

func (d demoTraffic) send(ctx context.Context, client *http.Client, path, ua string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.edgeURL+path, nil)
	if err != nil {
		return err
	}
	for k, v := range loadgen.BrowserHeaders {
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", ua)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusFound {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

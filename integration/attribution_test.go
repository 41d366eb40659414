//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pixelpipe/pixelpipe/edge"
	"github.com/pixelpipe/pixelpipe/internal/loadgen"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/processor"
	"github.com/pixelpipe/pixelpipe/query"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// source is what attribution derives from one hit, and for a click the
// destination it redirected to.
type source struct {
	page, ref, medium, refDomain, utmSource, utmCampaign, clickID, dest string
}

func sourceOf(ev *pixelpb.Event) source {
	return source{page: ev.GetPageUrl(), ref: ev.GetReferrer(), medium: ev.GetReferrerMedium(), refDomain: ev.GetReferrerDomain(),
		utmSource: ev.GetUtmSource(), utmCampaign: ev.GetUtmCampaign(), clickID: ev.GetClickId(), dest: ev.GetClickDestination()}
}

// eventsByContent waits until the collected events cover n content ids and
// returns each content id's events.
func eventsByContent(t *testing.T, got *outputs, prefix string, n int) map[string][]*pixelpb.Event {
	t.Helper()
	var out map[string][]*pixelpb.Event
	pipetest.Eventually(t, time.Minute, func() string {
		got.mu.Lock()
		defer got.mu.Unlock()
		out = map[string][]*pixelpb.Event{}
		for _, evs := range got.events {
			if cid := evs[0].GetContentId(); strings.HasPrefix(cid, prefix) {
				out[cid] = append(out[cid], evs[0])
			}
		}
		if len(out) < n {
			return fmt.Sprintf("events of %d content ids, want %d", len(out), n)
		}
		return ""
	})
	return out
}

// TestAttributionPairs sends real page/referrer pairs, as the page snippet,
// a plain <img>, an e-mail client and a click link send them, through a
// real edge and processor, and checks the page, the referrer and the source
// each event gets: UTM parameters and click ids come from the page, the
// referrer is judged against the page's own host, and the Referer header
// of an image is its page, never its referrer. A click's event carries its
// destination, redacted (never its UTM tags as the source); no other
// event carries one.
func TestAttributionPairs(t *testing.T) {
	s := newStack(t)
	s.startEdgeWith(func(c *edge.Config) { c.ClickAllowHosts = map[string][]string{"*": {"shop.example"}} })
	got := collect(t, s.kc, s.topics.Events, s.topics.Sessions)
	s.startProcessor("attr-proc")

	const post = "https://shop.example/post"
	wants := map[string]struct {
		name string
		want source
	}{}
	for i, tc := range []struct {
		name    string
		path    string // after the edge's URL; {cid} is replaced
		referer string // the request's Referer header
		want    source
	}{
		{"page snippet, from a search engine", "/p.gif?cid={cid}&url=" + url.QueryEscape(post) + "&ref=" + url.QueryEscape("https://www.google.com/"), post,
			source{page: post, ref: "https://www.google.com/", medium: "search", refDomain: "google.com"}},
		{"page snippet, newsletter UTM tags, no referrer", "/p.gif?cid={cid}&url=" + url.QueryEscape(post+"?utm_source=newsletter&utm_medium=email&utm_campaign=dec") + "&ref=", post + "?utm_source=newsletter&utm_medium=email&utm_campaign=dec",
			source{page: post + "?utm_source=newsletter&utm_medium=email&utm_campaign=dec", medium: "email", utmSource: "newsletter", utmCampaign: "dec"}},
		{"page snippet, ad click id", "/p.gif?cid={cid}&url=" + url.QueryEscape(post+"?gclid=G1") + "&ref=" + url.QueryEscape("https://www.google.com/"), post + "?gclid=G1",
			source{page: post + "?gclid=G1", ref: "https://www.google.com/", medium: "paid", refDomain: "google.com", clickID: "G1"}},
		{"page snippet, typed in (direct)", "/p.gif?cid={cid}&url=" + url.QueryEscape(post) + "&ref=", post,
			source{page: post, medium: "direct"}},
		{"page snippet, internal link", "/p.gif?cid={cid}&url=" + url.QueryEscape(post) + "&ref=" + url.QueryEscape("https://shop.example/"), post,
			source{page: post, ref: "https://shop.example/", medium: "internal", refDomain: "shop.example"}},
		{"page snippet, from another subdomain of the site", "/p.gif?cid={cid}&url=" + url.QueryEscape("https://www.shop.example/a") + "&ref=" + url.QueryEscape("https://blog.shop.example/b"), "https://www.shop.example/a",
			source{page: "https://www.shop.example/a", ref: "https://blog.shop.example/b", medium: "internal", refDomain: "shop.example"}},
		{"page snippet, social", "/p.gif?cid={cid}&url=" + url.QueryEscape(post) + "&ref=" + url.QueryEscape("https://t.co/xyz"), post,
			source{page: post, ref: "https://t.co/xyz", medium: "social", refDomain: "t.co"}},
		{"page snippet, webmail", "/p.gif?cid={cid}&url=" + url.QueryEscape(post) + "&ref=" + url.QueryEscape("https://mail.google.com/mail/u/0/"), post,
			source{page: post, ref: "https://mail.google.com/mail/u/0/", medium: "email", refDomain: "google.com"}},
		{"page snippet, unknown external site", "/p.gif?cid={cid}&url=" + url.QueryEscape(post) + "&ref=" + url.QueryEscape("https://someblog.example.org/x"), post,
			source{page: post, ref: "https://someblog.example.org/x", medium: "other", refDomain: "example.org"}},
		{"plain <img>: the Referer header is the page", "/p.gif?cid={cid}", post + "?utm_source=partner&utm_campaign=bf",
			source{page: post + "?utm_source=partner&utm_campaign=bf", medium: "other", utmSource: "partner", utmCampaign: "bf"}},
		{"plain <img> on a page reached from a search engine: unknown, so direct", "/p.gif?cid={cid}", post,
			source{page: post, medium: "direct"}},
		{"e-mail image: no page, no referrer", "/p.gif?cid={cid}&k=open", "",
			source{medium: "direct"}},
		{"click from a webmail: its Referer is the referrer", "/c?cid={cid}&u=" + url.QueryEscape("https://shop.example/sale?email=a@b.example&utm_source=news"), "https://mail.yahoo.com/d/folders/1",
			source{ref: "https://mail.yahoo.com/d/folders/1", medium: "email", refDomain: "yahoo.com", dest: "https://shop.example/sale?email=[redacted-email]&utm_source=news"}},
	} {
		cid := fmt.Sprintf("attr-%02d", i)
		req, err := http.NewRequest("GET", s.edgeURL+strings.ReplaceAll(tc.path, "{cid}", cid), nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range loadgen.BrowserHeaders {
			req.Header.Set(k, v)
		}
		if tc.referer != "" {
			req.Header.Set("Referer", tc.referer)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 302 {
			t.Fatalf("%s: status %d", tc.name, resp.StatusCode)
		}
		wants[cid] = struct {
			name string
			want source
		}{tc.name, tc.want}
	}
	evs := eventsByContent(t, got, "attr-", len(wants))
	for cid, w := range wants {
		if len(evs[cid]) != 1 {
			t.Errorf("%s: %d events", w.name, len(evs[cid]))
			continue
		}
		if g := sourceOf(evs[cid][0]); g != w.want {
			t.Errorf("%s:\n got %+v\nwant %+v", w.name, g, w.want)
		}
	}
}

// TestAttributionInBrowser loads pages that carry the snippets `pixelpipe
// snippet` prints into headless Chromium, reached the ways visitors reach
// them (tagged newsletter links, an ad click id, a link on another site, a
// typed address, an internal link, single-page-app navigation), and checks
// each view's source in the events and the source breakdown the query API
// answers.
func TestAttributionInBrowser(t *testing.T) {
	exe := chromium(t)
	bin := buildBinary(t)
	s := newStack(t)
	s.startEdge()
	got := collect(t, s.kc, s.topics.Events, s.topics.Sessions)
	s.startProcessor("attr-browser-proc")
	s.startAggregator("attr-browser-agg")
	s.startQuery()
	cid := "attr:browser-" + strconv.FormatInt(time.Now().UnixNano(), 36)

	scripts := regexp.MustCompile(`(?s)<script>.*?</script>`).FindAllString(mustBin(t, bin, "snippet", "-base="+s.edgeURL, cid), -1)
	if len(scripts) != 2 {
		t.Fatalf("snippet printed %d scripts, want the page's and the single-page app's", len(scripts))
	}
	pageScript, appScript := scripts[0], scripts[1]

	// The sites: shop.example (the pages with the pixel) and
	// news.partner.example (links to it), both served here; Chromium
	// resolves *.example to 127.0.0.1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	shop := "http://shop.example:" + port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		host, _, _ := net.SplitHostPort(r.Host)
		var body string
		switch {
		case host == "news.partner.example":
			body = `<a id="go" href="` + shop + `/post.html">a post</a>`
		case r.URL.Path == "/post.html":
			body = `<h1 id="post">A post</h1>` + pageScript
		case r.URL.Path == "/index.html":
			body = `<a id="go" href="/post.html">a post</a>`
		case strings.HasPrefix(r.URL.Path, "/app"):
			body = `<h1 id="app">An app</h1>` + appScript
		default:
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "<!doctype html><html><head><title>t</title></head><body>"+body+"</body></html>")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("host-resolver-rules", "MAP *.example 127.0.0.1"),
		chromedp.Flag("lang", "en-US"),
		// A desktop Chrome's user agent: a headless one is labelled bot,
		// and the breakdown counts people only.
		chromedp.UserAgent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// Each view's image load delays the page's load event, which Navigate
	// waits for.
	run("newsletter link", chromedp.Navigate(shop+"/post.html?utm_source=newsletter&utm_medium=email&utm_campaign=dec"))
	run("ad click", chromedp.Navigate(shop+"/post.html?gclid=G1"))
	run("link on another site", chromedp.Navigate("http://news.partner.example:"+port+"/links.html"), chromedp.Click("#go"), chromedp.WaitVisible("#post"))
	run("typed in", chromedp.Navigate(shop+"/post.html"))
	run("internal link", chromedp.Navigate(shop+"/index.html"), chromedp.Click("#go"), chromedp.WaitVisible("#post"))
	run("single-page app", chromedp.Navigate(shop+"/app"), chromedp.Evaluate[chromedp.Void](`history.pushState({}, "", "/app/step-2#top")`))

	want := map[string]source{
		shop + "/post.html?utm_source=newsletter&utm_medium=email&utm_campaign=dec": {medium: "email", utmSource: "newsletter", utmCampaign: "dec"},
		shop + "/post.html?gclid=G1": {medium: "paid", clickID: "G1"},
		// The default referrer policy sends another site's origin only.
		"ref:http://news.partner.example:" + port + "/": {medium: "other", refDomain: "partner.example"},
		shop + "/post.html":                             {medium: "direct"},
		"ref:" + shop + "/index.html":                   {medium: "internal", refDomain: "shop.example"},
		shop + "/app":                                   {medium: "direct"},
		shop + "/app/step-2":                            {medium: "internal", refDomain: "shop.example"},
	}
	var evs []*pixelpb.Event
	pipetest.Eventually(t, time.Minute, func() string {
		evs = eventsByContent(t, got, cid, 1)[cid]
		if len(evs) != len(want) {
			return fmt.Sprintf("%d views, want %d", len(evs), len(want))
		}
		return ""
	})
	media := map[string]uint64{}
	for _, ev := range evs {
		g := sourceOf(ev)
		key := g.page
		if g.ref != "" && g.ref != g.page && !strings.HasPrefix(g.page, shop+"/app") {
			key = "ref:" + g.ref
		}
		w, ok := want[key]
		if !ok {
			t.Errorf("unexpected view: %+v", g)
			continue
		}
		delete(want, key)
		g.page, g.ref = "", ""
		if g != w {
			t.Errorf("view %s: got %+v, want %+v", key, g, w)
		}
		if ev.GetBot() {
			t.Errorf("view %s labelled bot: %v", key, ev.GetBotReasons())
		}
		media[ev.GetReferrerMedium()]++
	}
	if t.Failed() {
		t.FailNow()
	}

	if media["email"] != 1 || media["paid"] != 1 || media["other"] != 1 || media["direct"] != 2 || media["internal"] != 2 {
		t.Fatalf("sources of the views %v, want email 1, paid 1, other 1, direct 2, internal 2", media)
	}

	// Every report of the content id as the API answers it, each as the
	// events say: the source (the referrer's class), the page's path, the
	// landing page of each session (its first event, a view), the
	// referrer's domain and the UTM parameters, counted only where the
	// event has the value.
	reports := map[string]map[string]uint64{"source": media}
	add := func(dim, value string) {
		if value == "" {
			return
		}
		if reports[dim] == nil {
			reports[dim] = map[string]uint64{}
		}
		reports[dim][value]++
	}
	for _, ev := range evs {
		u, err := url.Parse(ev.GetPageUrl())
		if err != nil {
			t.Fatal(err)
		}
		add("page", u.Path)
		if ev.GetSessionSeq() == 1 {
			add("landing", u.Path)
		}
		add("referrer", ev.GetReferrerDomain())
		add("utm_source", ev.GetUtmSource())
		add("utm_medium", ev.GetUtmMedium())
		add("utm_campaign", ev.GetUtmCampaign())
	}
	if reports["page"]["/post.html"] != 5 || reports["page"]["/app/step-2"] != 1 || reports["utm_campaign"]["dec"] != 1 ||
		reports["referrer"]["shop.example"] != 2 || len(reports["landing"]) == 0 {
		t.Fatalf("the events' reports %v: want 5 views of /post.html, 1 of /app/step-2, campaign dec, 2 internal referrers, a landing page", reports)
	}
	for dim, want := range reports {
		pipetest.Eventually(t, time.Minute, func() string {
			req, _ := http.NewRequest("GET", s.queryURL+"/v1/breakdowns/"+url.PathEscape(cid)+"?dimension="+dim, nil)
			req.Header.Set("Authorization", "Bearer it-token")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			var bd query.BreakdownResponse
			if err := json.NewDecoder(resp.Body).Decode(&bd); err != nil {
				return err.Error()
			}
			got := map[string]uint64{}
			for _, it := range bd.Items {
				got[it.Key] = it.Total
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Sprintf("%s breakdown %v, want %v", dim, got, want)
			}
			return ""
		})
	}
	// The same through the command line, as CSV.
	out := mustBin(t, bin, "export", "-url="+s.queryURL, "-token=it-token", "-dimension=page", "breakdown", cid)
	if !strings.Contains(out, "page,total,uniques,uniques_bound\n") || !strings.Contains(out, "\n/post.html,5,1,0\n") {
		t.Errorf("export -dimension=page breakdown:\n%s\nwant /post.html with 5 views by 1 visitor", out)
	}
}

// TestSignedPixelPolicy: through a real edge, processor, aggregator and
// query API, a content id under require counts only verified signed pixels
// as human and the rest (unsigned, forged, altered, expired) as unverified
// with their reasons; under prefer all count as human with the same
// reasons tallied; with no policy signatures change nothing.
func TestSignedPixelPolicy(t *testing.T) {
	s := newStack(t)
	key := []byte("policy-test-key-0123456789abcdef")
	s.startEdgeWith(func(c *edge.Config) { c.ClickKeys = map[string][]byte{"k1": key} })
	p, _ := s.newProcessor("sig-proc", func(c *processor.Config) { c.SignedPixels = "sigreq=require,sigpref:ad=prefer" })
	s.run("processor", p)
	s.startAggregator("sig-agg")
	s.startQuery()

	sign := func(q string, k []byte) string { return q + "&sig=" + edge.SignPixel(k, q) }
	past := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
	for _, cid := range []string{"sigreq:ad", "sigpref:ad", "sigoff:ad"} {
		base := "cid=" + url.QueryEscape(cid) + "&k=impression"
		for _, q := range []string{
			sign(base+"&uid=v1&kid=k1", key), sign(base+"&uid=v2&kid=k1", key) + "&cb=7", sign(base+"&uid=v3&kid=k1", key), // verified
			base + "&uid=v4", // unsigned
			sign(base+"&uid=v5&kid=k1", []byte("forged-key-0123456789abcdef01234")),  // bad_signature
			strings.Replace(sign(base+"&uid=v6&kid=k1", key), "uid=v6", "uid=v9", 1), // altered: bad_signature
			sign(base+"&uid=v7&kid=k1&exp="+past, key),                               // expired
		} {
			if r := browserGet(t, s.edgeURL+"/p.gif?"+q); r.StatusCode != 200 {
				t.Fatalf("%s: %d", q, r.StatusCode)
			}
		}
	}
	reasons := map[string]uint64{"unsigned": 1, "bad_signature": 2, "expired": 1}
	for cid, want := range map[string]struct {
		human, unverified        uint64
		humanReasons, unvReasons map[string]uint64
	}{
		"sigreq:ad":  {3, 4, nil, reasons},
		"sigpref:ad": {7, 0, reasons, nil},
		"sigoff:ad":  {7, 0, nil, nil},
	} {
		pipetest.Eventually(t, time.Minute, func() string {
			st, err := s.stats(cid)
			if err != nil {
				return err.Error()
			}
			h, u := st.Human.Impressions.Total, st.Unverified.Impressions.Total
			if h != want.human || u != want.unverified || fmt.Sprint(st.Human.Reasons) != fmt.Sprint(want.humanReasons) ||
				fmt.Sprint(st.Unverified.Reasons) != fmt.Sprint(want.unvReasons) {
				return fmt.Sprintf("%s: human %d (reasons %v), unverified %d (reasons %v); want %d (%v), %d (%v)",
					cid, h, st.Human.Reasons, u, st.Unverified.Reasons, want.human, want.humanReasons, want.unverified, want.unvReasons)
			}
			return ""
		})
	}
	// What the README shows.
	out := mustBin(t, buildBinary(t), "stats", "-url="+s.queryURL, "-token=it-token", "sigreq:ad")
	for _, want := range []string{
		"         kind  human  uniques  ±bound  bot  machine  unverified\n",
		"  impressions      3        3       0    0        0           4\n",
		"unverified reasons:  bad_signature 2  expired 1  unsigned 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("pixelpipe stats lacks %q:\n%s", want, out)
		}
	}
}

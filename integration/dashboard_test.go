//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/hllstore/hllstoretest"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/query"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// startTenantQuery runs a query server whose tokens are scoped to tenants.
func (s *stack) startTenantQuery(tokens map[string]string) {
	cfg := query.DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Tokens = tokens
	if s.procGroup != "" {
		cfg.AuditGroup = s.procGroup
	}
	q, err := query.New(cfg, s.logger, nil, counts.NewReader(hllstore.New(s.rdb, hllstore.Config{Prefix: s.prefix})), audit.NewReader(s.rdb, s.prefix))
	if err != nil {
		s.t.Fatal(err)
	}
	s.queryURL = "http://" + s.serve("query", q)
}

// hit sends one view of cid by visitor uid to the edge.
func (s *stack) hit(cid, uid string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.edgeURL+"/p.gif?cid="+cid+"&uid="+uid, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	// A browser's headers: without them the processor labels the hit a bot.
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	req.Header.Set("Accept", "image/avif,image/webp,*/*;q=0.8")
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", "no-cors")
	req.Header.Set("Sec-Ch-Ua", `"Chromium";v="131"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("pixel: status %d", resp.StatusCode)
	}
}

// visitsEmpty is the visits panel's text for a content id without visits.
func visitsEmpty(cid string) string {
	return "No visits of " + cid + " in this range yet. Visits appear when a visit ends: after 30 minutes without a hit, by default."
}

// visitTexts are the texts of the visits panel's figures for v, written as
// the dashboard writes them.
func visitTexts(v query.VisitStats) map[string]string {
	visitors := commas(v.Visitors)
	if v.VisitorsBound > 0 {
		visitors += " ±" + commas(v.VisitorsBound)
	}
	return map[string]string{
		"#visits-total":    commas(v.Visits),
		"#visits-visitors": visitors,
		"#visits-bounce":   percent(v.BounceRate),
		"#visits-duration": visitDuration(v.MeanDurationS),
		"#visits-pages":    strconv.FormatFloat(v.PagesPerVisit, 'f', 2, 64),
	}
}

// visitDuration writes a mean visit duration as the dashboard does: 4.2 s,
// 45 s, 3 min 05 s, 1 h 02 min.
func visitDuration(s float64) string {
	if s < 10 {
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	}
	t := int(math.Round(s))
	switch {
	case t < 60:
		return strconv.Itoa(t) + " s"
	case t < 3600:
		return fmt.Sprintf("%d min %02d s", t/60, t%60)
	}
	return fmt.Sprintf("%d h %02d min", t/3600, t/60%60)
}

// chromium finds Debian's chromium; the dashboard test fails without it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run deploy/local/browser.sh (apt-get install -y chromium)")
	return ""
}

// browser starts headless chromium with a window of w×h pixels; the
// context ends it at the end of the test (3 minutes at most).
func browser(t *testing.T, exe string, w, h int) context.Context {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("hide-scrollbars", true), chromedp.WindowSize(w, h))
	bctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(func() {
		cancel()
		cancelBrowser()
		cancelAlloc()
	})
	return ctx
}

// screenshot keeps a full-page PNG of the page in build/name.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "build")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestDashboardInBrowser loads the dashboard in headless chromium against a
// running pipeline, enters a tenant token, sends hits to the edge and waits
// for the live counters on the page to show them. Its processor closes
// visits within seconds (shortVisits): the visits panel shows that there
// are none yet, then the visits the API counts, at 1440 px and at phone
// width (390 px, nothing overflowing). Screenshots: build/dashboard-live.png
// and build/dashboard-live-phone.png. TestDashboardPanels checks every
// panel on seeded counts, at desktop and phone widths.
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	s := newStack(t)
	s.startEdge()
	s.startProcessorWith("it-dash-proc", shortVisits)
	s.startAggregator("it-dash-agg")
	s.startTenantQuery(map[string]string{"acme-dash-token": "acme", "ops-dash-token": "*"})
	cid := fmt.Sprintf("acme:dash-%d", time.Now().UnixNano())
	other := "acme:other-" + strconv.FormatInt(time.Now().UnixNano(), 36)

	ctx := browser(t, exe, 1440, 1000)

	text := func(id string) string {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById(`+strconv.Quote(id)+`)||{}).textContent||""`))
		if err != nil {
			t.Fatalf("read #%s: %v", id, err)
		}
		return strings.TrimSpace(v)
	}
	waitText := func(id, want string) {
		t.Helper()
		pipetest.Eventually(t, 90*time.Second, func() string {
			if got := text(id); got != want {
				return fmt.Sprintf("#%s shows %q, want %q (status: %q)", id, got, want, text("status"))
			}
			return ""
		})
	}

	// The page asks for a token: the API answers 401 without one.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.queryURL+"/?cid="+cid+","+other+"&range=24h"),
		chromedp.WaitVisible("#token-input"),
		chromedp.SendKeys("#token-input", "acme-dash-token"),
		chromedp.Click("#token-save"),
	); err != nil {
		t.Fatal(err)
	}
	waitText("live-views", "0")
	waitText("live-uniques", "0")
	// No visit has ended: the visits panel says when they appear.
	waitText("visits-empty", visitsEmpty(cid))

	// 5 views by 3 visitors; then 4 more, one of them by a new visitor.
	for _, uid := range []string{"v1", "v2", "v3", "v1", "v2"} {
		s.hit(cid, uid)
	}
	s.hit(other, "v9")
	waitText("live-views", "5")
	waitText("live-uniques", "3")
	for _, uid := range []string{"v3", "v4", "v4", "v1"} {
		s.hit(cid, uid)
	}
	waitText("live-views", "9")
	waitText("live-uniques", "4")

	// The table lists both content ids; the chart and funnel show the range.
	pipetest.Eventually(t, 60*time.Second, func() string {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.reload(), true`)); err != nil {
			return err.Error()
		}
		return ""
	})
	waitText("live-views", "9")
	pipetest.Eventually(t, 30*time.Second, func() string {
		table := text("live-table")
		bars, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#chart svg[data-kind="views"] rect.bar').length`))
		funnel := text("funnel")
		if !strings.Contains(table, other) || bars != 24 || !strings.Contains(funnel, "Views9") {
			return fmt.Sprintf("table %q, %d chart bars (want 24 hours), funnel %q", table, bars, funnel)
		}
		return ""
	})
	// The top list and the breakdown are written every detail interval and
	// drawn at the next refresh.
	pipetest.Eventually(t, 60*time.Second, func() string {
		top, bd := text("top"), text("breakdowns")
		if !strings.Contains(top, cid) || !strings.Contains(bd, "unknown") {
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`refresh(), true`)); err != nil {
				return err.Error()
			}
			return fmt.Sprintf("top panel %q, breakdown panel %q: want %s in the top list and the country breakdown", top, bd, cid)
		}
		return ""
	})
	if f := text("freshness"); !strings.HasPrefix(f, "freshness:") && !strings.HasPrefix(f, "complete to") {
		t.Errorf("freshness badge shows %q", f)
	}

	// Visits end 2 s after a visitor's last hit: v1 to v4 made at least
	// one each (more when the pipeline took over 2 s between the two
	// rounds of hits); the panel shows the API's figures.
	hourTo := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	last24 := "from=" + hourTo.Add(-24*time.Hour).Format(time.RFC3339) + "&to=" + hourTo.Format(time.RFC3339)
	var visits query.VisitStats
	pipetest.Eventually(t, 90*time.Second, func() string {
		st, err := tokenStats(s.queryURL, "acme-dash-token", cid, last24)
		if err != nil {
			return err.Error()
		}
		visits = st.Human.Visits
		if visits.Visitors != 4 || visits.Visits < 4 || visits.PagesPerVisit == 0 {
			return fmt.Sprintf("API: human visits %+v, want 4 visitors, at least 4 visits", visits)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`refresh(), true`)); err != nil {
			return err.Error()
		}
		for id, want := range visitTexts(visits) {
			if got := text(id[1:]); got != want {
				return fmt.Sprintf("visits panel %s shows %q, want %q (API %+v; empty state %q)", id, got, want, visits, text("visits-empty"))
			}
		}
		return ""
	})

	// The audit panel: a tenant's token may not read it; an operator's
	// sees the edge with every hit accounted for.
	if a := text("audit"); !strings.Contains(a, "operator token") {
		t.Errorf("audit panel with a tenant token shows %q", a)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`state.token = "ops-dash-token", true`)); err != nil {
		t.Fatal(err)
	}
	pipetest.Eventually(t, 60*time.Second, func() string {
		sum, table := text("audit-summary"), text("audit")
		if sum != "all 10 accepted hits accounted for" || !strings.Contains(table, "it-edge10100000") {
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`refreshAudit(), true`)); err != nil {
				return err.Error()
			}
			return fmt.Sprintf("audit panel %q / %q", sum, table)
		}
		return ""
	})

	screenshot(t, ctx, "dashboard-live.png")

	// Phone width: the page reloaded at 390 px shows the same visits, and
	// nothing reaches past the window's right edge.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)), chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	pipetest.Eventually(t, 30*time.Second, func() string {
		for id, want := range visitTexts(visits) {
			if got := text(id[1:]); got != want {
				return fmt.Sprintf("at phone width the visits panel %s shows %q, want %q", id, got, want)
			}
		}
		return ""
	})
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[string](phoneOverflow))
	if err != nil || overflow != "" {
		t.Errorf("at phone width these reach past the right edge: %s (%v)", overflow, err)
	}
	screenshot(t, ctx, "dashboard-live-phone.png")
}

// phoneOverflow lists (up to 5) elements that reach past the window's right
// edge, inner scrolling tables excepted: their rows scroll inside the card.
const phoneOverflow = `[...document.querySelectorAll("body *")].filter(e => !e.closest(".scroll") && e.getBoundingClientRect().right > window.innerWidth + 0.5).map(e => e.tagName + "#" + e.id + "." + e.className).slice(0, 5).join(", ")`

// tokenStats asks the query API at base for the stats of cid over rng
// (from=...&to=...) with token.
func tokenStats(base, token, cid, rng string) (query.StatsResponse, error) {
	var st query.StatsResponse
	req, err := http.NewRequest(http.MethodGet, base+"/v1/stats/"+cid+"?"+rng, nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/stats/%s: status %d", cid, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// dashSeed writes counts the way the aggregator does (hour and day
// records, breakdowns, the top-N index, watermarks) for the dashboard test.
type dashSeed struct {
	recs    map[hllstore.Key]*hllstore.Record
	keys    []hllstore.Key
	visitor uint64
	// campaign, when set, is the campaign of the events added: they count
	// under the content id and under the campaign on it, as the aggregator
	// counts the hits of a campaign.
	campaign string
}

// scopes are the campaigns a record is added under: none (the content
// id's own record) and d.campaign when set.
func (d *dashSeed) scopes() []string {
	if d.campaign == "" {
		return []string{""}
	}
	return []string{"", d.campaign}
}

// add counts n events of kind and class on cid in the hour starting at
// hour (Unix ms), by visitors distinct new visitors, each event with reason
// when given, in the hour's record and its day's (and d.campaign's).
func (d *dashSeed) add(cid string, kind pixelpb.Kind, class hllstore.Class, hour int64, n, visitors int, reason string) {
	base := d.visitor
	d.visitor += uint64(visitors)
	for _, g := range []hllstore.Granularity{hllstore.GranularityHour, hllstore.GranularityDay} {
		for _, cmp := range d.scopes() {
			d.addRecord(hllstore.Key{ContentID: cid, Campaign: cmp, Kind: kind, Class: class, Gran: g, Start: hllstore.BucketStart(g, hour)}, base, n, visitors, reason)
		}
	}
}

// addRecord adds n events by the visitors base+1 to base+visitors to the
// record of k, each with reason when given.
func (d *dashSeed) addRecord(k hllstore.Key, base uint64, n, visitors int, reason string) {
	r := d.recs[k]
	if r == nil {
		nr := hllstore.NewRecord()
		r = &nr
		d.recs[k] = r
		d.keys = append(d.keys, k)
	}
	for i := range n {
		r.Add((base + uint64(i%visitors) + 1) * 0x9e3779b97f4a7c15)
		if reason != "" {
			r.AddReason(reason)
		}
	}
}

// addVisits counts n human visits by visitors distinct new visitors that
// landed on cid in the hour starting at hour, with their bounces, summed
// duration and pages, in the hour's record and its day's, as the
// aggregator counts visits (kind KIND_SESSION).
func (d *dashSeed) addVisits(cid string, hour int64, n, visitors int, bounces, durationMs, pages uint64) {
	d.add(cid, pixelpb.Kind_KIND_SESSION, hllstore.Human, hour, n, visitors, "")
	for _, g := range []hllstore.Granularity{hllstore.GranularityHour, hllstore.GranularityDay} {
		for _, cmp := range d.scopes() {
			r := d.recs[hllstore.Key{ContentID: cid, Campaign: cmp, Kind: pixelpb.Kind_KIND_SESSION, Class: hllstore.Human, Gran: g, Start: hllstore.BucketStart(g, hour)}]
			r.AddSum(hllstore.SumBounces, bounces)
			r.AddSum(hllstore.SumDurationMs, durationMs)
			r.AddSum(hllstore.SumPages, pages)
		}
	}
}

// Content ids of TestDashboardPanels.
const (
	dashAd         = "acme:ad-1"
	dashNewsletter = "acme:newsletter-1"
	dashArticle    = "acme:article-7"
)

// A long page path: the breakdown table must wrap it, not overflow.
const dashLongPath = "/blog/2026/11/how-we-count-unique-visitors-with-hyperloglog-and-why-the-bound-matters"

// seedDashboard writes, over the last four hours (the current one
// included), an ad (impressions, clicks, conversions, a few unsigned and
// bot impressions), a newsletter (opens by people and by mail proxies and
// link scanners, clicks) and an article (views, visits, crawler views,
// breakdowns with a long page path, values past the bound under "other",
// unknown countries), other content ids for the top list, and a watermark.
func seedDashboard(t *testing.T, store *hllstore.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	cur := now.Truncate(time.Hour).UnixMilli()
	d := &dashSeed{recs: map[hllstore.Key]*hllstore.Record{}}
	human, bot, machine, unverified := hllstore.Human, hllstore.Bot, hllstore.Machine, hllstore.Unverified
	const (
		imp, view, click, conv, open = pixelpb.Kind_KIND_IMPRESSION, pixelpb.Kind_KIND_VIEW, pixelpb.Kind_KIND_CLICK, pixelpb.Kind_KIND_CONVERSION, pixelpb.Kind_KIND_OPEN
	)
	for i, h := range []int64{cur - 3*hllstore.HourMs, cur - 2*hllstore.HourMs, cur - hllstore.HourMs, cur} {
		d.add(dashAd, imp, human, h, []int{180, 320, 260, 240}[i], []int{150, 260, 210, 200}[i], "")
		d.add(dashAd, click, human, h, []int{5, 14, 11, 10}[i], []int{5, 13, 11, 9}[i], "")
		d.add(dashAd, imp, unverified, h, 3, 3, "unsigned")
		d.add(dashAd, imp, bot, h, 5, 2, "datacenter")
		d.add(dashNewsletter, open, human, h, []int{4, 10, 18, 8}[i], []int{4, 8, 14, 6}[i], "")
		d.add(dashNewsletter, click, human, h, []int{1, 3, 4, 2}[i], []int{1, 3, 3, 2}[i], "")
		for j, reason := range []string{"apple_mpp", "gmail_proxy", "yahoo_proxy", "link_scanner"} {
			d.add(dashNewsletter, open, machine, h, []int{6, 3, 1, 1}[j]+i, []int{6, 3, 1, 1}[j]+i, reason)
		}
		d.add(dashNewsletter, click, machine, h, 1, 1, "link_scanner")
		d.add(dashArticle, view, human, h, []int{30, 40, 48, 30}[i], []int{22, 31, 35, 24}[i], "")
		d.add(dashArticle, view, bot, h, 6, 2, "known_crawler")
		visits := []int{12, 16, 20, 10}[i]
		d.addVisits(dashArticle, h, visits, []int{10, 14, 17, 9}[i], []uint64{5, 6, 8, 4}[i], uint64(visits)*uint64(80_000+15_000*i), []uint64{30, 40, 48, 30}[i])
		d.add("acme:home", view, human, h, 120, 90, "")
		d.add("acme:pricing", view, human, h, 12, 10, "")
		d.add("globex:landing", view, human, h, 70, 60, "")
	}
	// Conversions with their orders, in the last hour.
	for _, g := range []hllstore.Granularity{hllstore.GranularityHour, hllstore.GranularityDay} {
		nr := hllstore.NewRecord()
		for i, o := range []string{"o-1", "o-2", "o-3"} {
			nr.Add(uint64(900+i) * 0x9e3779b97f4a7c15)
			nr.AddOrder(o, "EUR", int64(20+10*i)*1_000_000)
		}
		k := hllstore.Key{ContentID: dashAd, Kind: conv, Class: human, Gran: g, Start: hllstore.BucketStart(g, cur)}
		d.recs[k] = &nr
		d.keys = append(d.keys, k)
	}
	var writes []hllstoretest.Write
	var top []hllstore.TopUpdate
	for _, k := range d.keys {
		writes = append(writes, hllstoretest.Write{Key: k, Record: d.recs[k]})
		if k.Gran == hllstore.GranularityDay && k.Class == human && k.Kind != pixelpb.Kind_KIND_SESSION { // as the aggregator: every kind of event

			top = append(top, hllstore.TopUpdate{Key: k, Total: d.recs[k].Total, Uniques: d.recs[k].Sketch.Estimate()})
		}
	}
	if err := hllstoretest.Put(ctx, store, writes); err != nil {
		t.Fatal(err)
	}
	if err := store.RaiseTop(ctx, top); err != nil {
		t.Fatal(err)
	}

	// The article's breakdowns of today: pages by weight, the last three
	// seen past the bound of 8 values (so under "other"); a country for
	// three views in four; referrers and UTM tags on some.
	dk := hllstore.DayKey{ContentID: dashArticle, DayStart: hllstore.DayStart(cur)}
	days, err := store.LoadDays(ctx, []hllstore.DayKey{dk})
	if err != nil {
		t.Fatal(err)
	}
	pages := []string{"/", "/pricing", dashLongPath, "/docs/getting-started", "/docs/api/v1/stats", "/blog/tracking-pixels",
		"/careers/senior-backend-engineer-distributed-systems-berlin-or-remote", "/about", "/contact", "/legal/privacy", "/changelog"}
	weights := []int{40, 25, 20, 15, 12, 10, 8, 6, 5, 4, 3}
	i := 0
	for p, w := range weights {
		for range w {
			v := hllstore.Values{
				[]string{"DE", "US", "FR", ""}[i%4], []string{"desktop", "mobile", "tablet"}[i%3], []string{"Chrome", "Firefox", "Safari"}[i%3],
				[]string{"Linux", "Windows", "macOS", "iOS"}[i%4], []string{"search", "social", "direct"}[i%3],
			}
			if i%3 == 0 {
				v[5] = []string{"google.com", "news.ycombinator.com", "t.co"}[i%9/3]
			}
			if i%4 == 0 {
				v[6], v[7], v[8] = "newsletter", "email", "november-launch-2026"
			}
			v[9] = pages[p]
			if i%5 == 0 {
				v[10] = pages[p]
			}
			days[0].Breakdown(view).AddValues(&v, uint64(i%110+1)*0x9e3779b97f4a7c15, 8)
			i++
		}
	}
	// Custom events of the article (shares and subscriptions) with their
	// properties, each counted under each of its properties.
	for i := range 30 {
		b := days[0].Breakdown(pixelpb.Kind_KIND_CUSTOM)
		vk := uint64(i%20+1) * 0x9e3779b97f4a7c15
		b.Add(hllstore.DimProp, []string{"action=share", "action=share", "action=subscribe"}[i%3], vk, 50)
		if i%3 != 2 {
			b.Add(hllstore.DimProp, []string{"network=mastodon", "network=email"}[i%2], vk, 50)
		}
	}
	if written, err := store.SaveDays(ctx, []hllstore.DayWrite{{Key: dk, Day: days[0], Details: true}}); err != nil || !written[0] {
		t.Fatalf("seed breakdowns: %v %v", written, err)
	}
	wms := map[int32]hllstore.Watermark{}
	for p := range int32(6) {
		wms[p] = hllstore.Watermark{CompleteUntilMs: now.Add(-2 * time.Second).UnixMilli(), WrittenAtMs: now.UnixMilli()}
	}
	if err := store.WriteWatermarks(ctx, wms); err != nil {
		t.Fatal(err)
	}
}

// commas writes n as the dashboard does (en-US grouping).
func commas(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// percent writes a rate as the dashboard does: one decimal, two below 10%.
func percent(x float64) string {
	if x > 0 && x < 0.1 {
		return strconv.FormatFloat(x*100, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(x*100, 'f', 1, 64) + "%"
}

// serveOpenQuery serves the counts of store through an open query API (no
// tokens) until the end of the test and returns its base URL.
func serveOpenQuery(t *testing.T, store *hllstore.Store, aud *audit.Reader) string {
	t.Helper()
	q, err := query.New(func() query.Config { c := query.DefaultConfig(); c.ListenAddr = "127.0.0.1:0"; return c }(), nil, nil, counts.NewReader(store), aud)
	if err != nil {
		t.Fatal(err)
	}
	ln := pipetest.Listen(t)
	sctx, stopQuery := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- q.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stopQuery()
		if err := <-served; err != nil {
			t.Errorf("query: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// TestDashboardPanels serves seeded counts through an open query API (no
// tokens) and checks, in headless chromium, that every panel shows the
// API's numbers for the selected content id: the cards, one chart strip per
// kind with events (an ad's impressions and clicks, a newsletter's opens,
// an article's views and visits), the visits panel (the article's visits,
// visitors, bounce rate, mean duration and pages per visit; the ad has
// none yet), the funnel, the email panel (human and machine opens by
// reason, clicks, click-through rate), the breakdown by page, and the top
// list with the chosen ids marked; that the tabs switch all of them and the URL keeps the
// choice; and that at phone width (390 px) nothing overflows sideways.
// Screenshots: build/dashboard.png (the ad), dashboard-newsletter.png,
// dashboard-article.png (1280 px wide) and dashboard-phone.png (390 px).
func TestDashboardPanels(t *testing.T) {
	exe := chromium(t)
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	seedDashboard(t, store)
	base := serveOpenQuery(t, store, audit.NewReader(rdb, prefix))

	// The API's answers the page must show.
	now := time.Now().UTC()
	hourTo := now.Truncate(time.Hour).Add(time.Hour)
	last24 := "from=" + hourTo.Add(-24*time.Hour).Format(time.RFC3339) + "&to=" + hourTo.Format(time.RFC3339)
	today := "from=" + now.Format("2006-01-02") + "&to=" + now.Add(24*time.Hour).Format("2006-01-02")
	getJSON := func(path string, out any) {
		t.Helper()
		getOpenJSON(t, base+path, out)
	}
	stats := func(cid, rng string) query.StatsResponse {
		var st query.StatsResponse
		getJSON("/v1/stats/"+cid+"?"+rng, &st)
		return st
	}

	ctx := browser(t, exe, 1280, 900)
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	text := func(sel string) string {
		return strings.TrimSpace(eval(`(document.querySelector(` + strconv.Quote(sel) + `)||{}).textContent||""`))
	}
	// waitTexts waits until each selector's text is the one wanted.
	waitTexts := func(want map[string]string) {
		t.Helper()
		pipetest.Eventually(t, 30*time.Second, func() string {
			for sel, w := range want {
				if got := text(sel); got != w {
					return fmt.Sprintf("%s shows %q, want %q (status %q)", sel, got, w, text("#status"))
				}
			}
			return ""
		})
	}
	// bars returns the values of the chart strip of kind, "" when the
	// chart has no strip for it.
	bars := func(kind string) []uint64 {
		var out []uint64
		for _, v := range strings.Fields(eval(`[...document.querySelectorAll('#chart svg[data-kind="` + kind + `"] rect.bar')].map(r => r.dataset.v).join(" ")`)) {
			n, _ := strconv.ParseUint(v, 10, 64)
			out = append(out, n)
		}
		return out
	}
	checkStrip := func(kind string, want uint64) {
		t.Helper()
		vs := bars(kind)
		var sum uint64
		nonzero := 0
		for _, v := range vs {
			sum += v
			if v > 0 {
				nonzero++
			}
		}
		if len(vs) != 24 || sum != want || nonzero == 0 {
			t.Errorf("chart strip %s: %d bars (want 24 hours) summing to %d, want %d", kind, len(vs), sum, want)
		}
	}
	strips := func() string {
		return eval(`[...document.querySelectorAll("#chart .strip")].map(s => s.dataset.kind).join(",")`)
	}

	// The ad, selected in the URL: no token prompt (the API is open), a
	// tab per chosen id, the cards, chart, funnel and top list.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/?cid="+dashAd+","+dashNewsletter+","+dashArticle+"&sel="+dashAd+"&range=24h")); err != nil {
		t.Fatal(err)
	}
	adToday, ad24 := stats(dashAd, today), stats(dashAd, last24)
	waitTexts(map[string]string{
		"#cards-title .sel-id": dashAd,
		"#live-impressions":    commas(adToday.Human.Impressions.Total),
		"#live-clicks":         commas(adToday.Human.Clicks.Total),
		"#live-views":          "0",
		"#ctr":                 percent(ad24.Human.CTR),
		"#orders":              "3",
	})
	waitTexts(map[string]string{"#email-empty": "No email opens of " + dashAd + " in this range.", "#visits-empty": visitsEmpty(dashAd)})
	if hidden := eval(`String(document.getElementById("visits-body").hidden)`); hidden != "true" {
		t.Errorf("visits figures shown for the ad, which has no visits")
	}
	if open := eval(`String(document.getElementById("token-dialog").open)`); open != "false" {
		t.Errorf("token prompt open on an open API")
	}
	if hidden := eval(`String(document.getElementById("mail").hidden)`); hidden != "true" {
		t.Errorf("links and recipients panels shown without a campaign")
	}
	if tabs := eval(`[...document.querySelectorAll("#picker [role=tab]")].map(b => b.textContent + (b.getAttribute("aria-selected") === "true" ? "*" : "")).join(",")`); tabs != dashAd+"*,"+dashNewsletter+","+dashArticle {
		t.Errorf("tabs %q, want the three ids with the ad selected", tabs)
	}
	if got := strips(); got != "impressions,clicks,conversions" {
		t.Errorf("chart strips for the ad: %q, want impressions,clicks,conversions", got)
	}
	checkStrip("impressions", ad24.Human.Impressions.Total)
	checkStrip("clicks", ad24.Human.Clicks.Total)
	if f := text("#funnel"); !strings.Contains(f, "Impressions"+commas(ad24.Human.Impressions.Total)) || !strings.Contains(f, "Clicks"+commas(ad24.Human.Clicks.Total)) {
		t.Errorf("funnel %q, want the ad's impressions and clicks", f)
	}
	if q := text("#reasons"); !strings.Contains(q, commas(ad24.Unverified.Reasons["unsigned"])+" unsigned pixel") || !strings.Contains(q, "data-center address (bot)") {
		t.Errorf("traffic quality %q, want the unsigned and data-center impressions", q)
	}
	// Every chosen id's counts of today in the table below.
	pipetest.Eventually(t, 30*time.Second, func() string {
		var want []string
		for _, cid := range []string{dashAd, dashNewsletter, dashArticle} {
			h := stats(cid, today).Human
			want = append(want, strings.Join([]string{cid, commas(h.Views.Uniques), commas(h.Views.Total), commas(h.Impressions.Total), commas(h.Clicks.Total), commas(h.Opens.Total)}, "|"))
		}
		rows := eval(`[...document.querySelectorAll("#live-table tr")].map(r => [...r.cells].map(c => c.textContent).join("|")).join("\n")`)
		if rows != strings.Join(want, "\n") {
			return fmt.Sprintf("today's table\n%s\nwant\n%s", rows, strings.Join(want, "\n"))
		}
		return ""
	})
	// The top list: the article ranked and marked; the ad and the
	// newsletter (no views) after it, marked, with their numbers.
	var topList query.TopResponse
	getJSON("/v1/top?"+last24+"&by=uniques&limit=10", &topList)
	pipetest.Eventually(t, 30*time.Second, func() string {
		rows := eval(`[...document.querySelectorAll("#top tbody tr")].map(r => r.className + "|" + r.textContent).join("\n")`)
		want := []string{}
		for i, it := range topList.Items {
			mark := ""
			if it.Key == dashArticle {
				mark = "chosen|" + strconv.Itoa(i+1) + it.Key + "chosen"
			} else {
				mark = "|" + strconv.Itoa(i+1) + it.Key
			}
			want = append(want, mark+commas(it.Uniques)+commas(it.Total))
		}
		want = append(want, "gap|chosen, outside the top 10", "chosen selected|–"+dashAd+"shown00", "chosen|–"+dashNewsletter+"chosen00")
		if rows != strings.Join(want, "\n") {
			return fmt.Sprintf("top rows\n%s\nwant\n%s", rows, strings.Join(want, "\n"))
		}
		return ""
	})
	screenshot(t, ctx, "dashboard.png")

	// Top content of another kind: by clicks, the ad (shown) and the
	// newsletter ranked, the article (no clicks) after them.
	if err := chromedp.Do(ctx, chromedp.SetValue("#top-kind", "click"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("top-kind").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	var clickTop query.TopResponse
	getJSON("/v1/top?"+last24+"&kind=click&by=uniques&limit=10", &clickTop)
	pipetest.Eventually(t, 30*time.Second, func() string {
		rows := eval(`[...document.querySelectorAll("#top tbody tr")].map(r => r.className + "|" + r.textContent).join("\n")`)
		want := []string{}
		for i, it := range clickTop.Items {
			switch it.Key {
			case dashAd:
				want = append(want, "chosen selected|"+strconv.Itoa(i+1)+it.Key+"shown"+commas(it.Uniques)+commas(it.Total))
			case dashNewsletter:
				want = append(want, "chosen|"+strconv.Itoa(i+1)+it.Key+"chosen"+commas(it.Uniques)+commas(it.Total))
			default:
				want = append(want, "|"+strconv.Itoa(i+1)+it.Key+commas(it.Uniques)+commas(it.Total))
			}
		}
		want = append(want, "gap|chosen, outside the top 10", "chosen|–"+dashArticle+"chosen00")
		if len(clickTop.Items) != 2 || rows != strings.Join(want, "\n") {
			return fmt.Sprintf("top rows by clicks\n%s\nwant\n%s", rows, strings.Join(want, "\n"))
		}
		if h := text("#top thead"); !strings.Contains(h, "clicks") || !strings.Contains(eval(`location.search`), "top=click") {
			return "top by clicks: heading " + h + ", URL " + eval(`location.search`)
		}
		return ""
	})
	if err := chromedp.Do(ctx, chromedp.SetValue("#top-kind", "view"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("top-kind").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}

	// The newsletter tab: the cards, chart and email panel switch to it,
	// the URL keeps it.
	if err := chromedp.Do(ctx, chromedp.Click(`#picker [data-cid="`+dashNewsletter+`"]`)); err != nil {
		t.Fatal(err)
	}
	nlToday, nl24 := stats(dashNewsletter, today), stats(dashNewsletter, last24)
	waitTexts(map[string]string{
		"#cards-title .sel-id": dashNewsletter,
		"#live-opens":          commas(nlToday.Human.Opens.Total),
		"#live-impressions":    "0",
		"#live-clicks":         commas(nlToday.Human.Clicks.Total),
		"#email-human":         commas(nl24.Human.Opens.Total),
		"#email-machine":       commas(nl24.Machine.Opens.Total),
		"#email-clicks":        commas(nl24.Human.Clicks.Total),
		"#email-ctr":           percent(float64(nl24.Human.Clicks.Total) / float64(nl24.Human.Opens.Total)),
	})
	if u := eval(`location.search`); !strings.Contains(u, "sel="+dashNewsletter) || !strings.Contains(u, "cid="+dashAd+","+dashNewsletter+","+dashArticle) || !strings.Contains(u, "range=24h") {
		t.Errorf("URL %q does not keep the choice", u)
	}
	// The machine opens by source (the reasons of kind open, class
	// machine): they add up to the machine opens; the scanners' clicks
	// are apart.
	machineOpens := stats(dashNewsletter, last24+"&kind=open&class=machine")
	reasons := text("#email-reasons")
	var sum uint64
	for r, name := range map[string]string{"apple_mpp": "Apple Mail Privacy Protection", "gmail_proxy": "Gmail image proxy", "yahoo_proxy": "Yahoo Mail proxy", "link_scanner": "link scanner"} {
		n := machineOpens.Reasons[r]
		sum += n
		if n == 0 || !strings.Contains(reasons, commas(n)+" "+name) {
			t.Errorf("email panel reasons %q, want %d %s", reasons, n, name)
		}
	}
	if sum != nl24.Machine.Opens.Total || !strings.Contains(reasons, commas(nl24.Machine.Clicks.Total)+" machine clicks") {
		t.Errorf("email panel reasons %q: want machine opens by source adding up to %d, and %d machine clicks", reasons, nl24.Machine.Opens.Total, nl24.Machine.Clicks.Total)
	}
	if got := strips(); got != "clicks,opens" {
		t.Errorf("chart strips for the newsletter: %q, want clicks,opens", got)
	}
	checkStrip("opens", nl24.Human.Opens.Total)
	screenshot(t, ctx, "dashboard-newsletter.png")

	// The article: views and the breakdown by page, long paths wrapped,
	// "other" and "unknown" explained.
	if err := chromedp.Do(ctx, chromedp.Click(`#picker [data-cid="`+dashArticle+`"]`), chromedp.SetValue("#dimension", "page"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("dimension").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	art24 := stats(dashArticle, last24)
	var pagesBD query.BreakdownResponse
	getJSON("/v1/breakdowns/"+dashArticle+"?"+last24+"&dimension=page&limit=15", &pagesBD)
	waitTexts(map[string]string{"#cards-title .sel-id": dashArticle, "#live-opens": "0"})
	checkStrip("views", art24.Human.Views.Total)
	// The article's visits: the panel shows the API's figures, the chart a
	// visits strip.
	if v := art24.Human.Visits; v.Visits != 58 || v.Bounces != 23 || v.PagesPerVisit == 0 || v.MeanDurationS == 0 {
		t.Errorf("API: the article's visits %+v, want the seeded 58 visits, 23 bounces, pages and durations", v)
	}
	waitTexts(visitTexts(art24.Human.Visits))
	if hidden := eval(`String(document.getElementById("visits-empty").hidden)`); hidden != "true" {
		t.Errorf("visits empty state shown for the article, which has visits")
	}
	if got := strips(); got != "views,visits" {
		t.Errorf("chart strips for the article: %q, want views,visits", got)
	}
	checkStrip("visits", art24.Human.Visits.Visits)
	pipetest.Eventually(t, 30*time.Second, func() string {
		rows := eval(`[...document.querySelectorAll("#breakdowns tbody tr")].map(r => [...r.cells].map(c => c.textContent).join("|")).join("\n")`)
		var want []string
		for _, it := range pagesBD.Items {
			key := it.Key
			if key == "other" {
				key = "otherevery value past the first 50 of a day, together"
			}
			want = append(want, key+"||"+commas(it.Uniques)+"|"+commas(it.Total))
		}
		if len(pagesBD.Items) < 5 || rows != strings.Join(want, "\n") {
			return fmt.Sprintf("breakdown rows\n%s\nwant\n%s", rows, strings.Join(want, "\n"))
		}
		return ""
	})
	if !strings.Contains(text("#breakdowns"), dashLongPath) || !strings.Contains(eval(`location.search`), "dim=page") {
		t.Errorf("breakdown by page %q (URL %q)", text("#breakdowns"), eval(`location.search`))
	}
	screenshot(t, ctx, "dashboard-article.png")

	// The article's custom events by property: the rows of the API's
	// breakdown of kind custom.
	if err := chromedp.Do(ctx, chromedp.SetValue("#dimension", "prop"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("dimension").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	var propsBD query.BreakdownResponse
	getJSON("/v1/breakdowns/"+dashArticle+"?"+last24+"&dimension=prop&kind=custom&limit=15", &propsBD)
	pipetest.Eventually(t, 30*time.Second, func() string {
		rows := eval(`[...document.querySelectorAll("#breakdowns tbody tr")].map(r => [...r.cells].map(c => c.textContent).join("|")).join("\n")`)
		var want []string
		for _, it := range propsBD.Items {
			want = append(want, it.Key+"||"+commas(it.Uniques)+"|"+commas(it.Total))
		}
		if len(propsBD.Items) != 4 || rows != strings.Join(want, "\n") {
			return fmt.Sprintf("custom property rows\n%s\nwant\n%s", rows, strings.Join(want, "\n"))
		}
		return ""
	})
	if h := text("#breakdowns thead"); !strings.Contains(h, "events") {
		t.Errorf("custom property breakdown header %q: want an events column", h)
	}
	screenshot(t, ctx, "dashboard-article-props.png")
	// Back to pages for the phone-width view below.
	if err := chromedp.Do(ctx, chromedp.SetValue("#dimension", "page"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("dimension").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}

	// Phone width: the same page reloaded (the URL keeps the article and
	// the page breakdown) at 390 px.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)), chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitTexts(map[string]string{"#cards-title .sel-id": dashArticle, "#live-views": commas(stats(dashArticle, today).Human.Views.Total)})
	waitTexts(visitTexts(art24.Human.Visits))
	pipetest.Eventually(t, 30*time.Second, func() string {
		if n := eval(`String(document.querySelectorAll("#breakdowns tbody tr").length)`); n != strconv.Itoa(len(pagesBD.Items)) {
			return "breakdown rows at phone width: " + n
		}
		return ""
	})
	if w := eval(`window.innerWidth + " " + document.documentElement.scrollWidth + " " + document.documentElement.clientWidth`); w != "390 390 390" {
		t.Errorf("at phone width, window / scroll / client width: %s, want 390 390 390 (nothing overflows sideways)", w)
	}
	// No element reaches past the window's right edge (inner scrolling
	// tables excepted: their rows scroll inside the card).
	if wide := eval(phoneOverflow); wide != "" {
		t.Errorf("at phone width these reach past the right edge: %s", wide)
	}
	for _, sel := range []string{".cards", ".visit-rates"} {
		if cols := eval(`getComputedStyle(document.querySelector("` + sel + `")).gridTemplateColumns.split(" ").length + ""`); cols != "2" {
			t.Errorf("%s at phone width in %s columns, want 2", sel, cols)
		}
	}
	screenshot(t, ctx, "dashboard-phone.png")
}

// The campaign of TestDashboardCampaign and its two content ids.
const (
	dashCampaign    = "winter"
	dashPromo       = "acme:promo-winter"
	dashCampArticle = "acme:article-8"
)

// campaignWant holds the campaign's seeded human counts, the sums over its
// content ids: over the last four hours (all in the last 24), and of today
// (UTC) for the cards.
type campaignWant struct {
	impressions, views, clicks, visits, bounces              uint64
	todayImpressions, todayViews, todayClicks, todayNonHuman uint64
}

// seedCampaign writes, over the last four hours (the current one
// included), the hits of campaign dashCampaign on two content ids: a
// promotion page with a banner (impressions, clicks, views, visits, a few
// unsigned impressions and crawler views) and an article (views, visits,
// crawler views); and hits of the same content ids outside the campaign and
// in another campaign, which the campaign's counts must leave out. It
// returns the campaign's sums.
func seedCampaign(t *testing.T, store *hllstore.Store) campaignWant {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	cur := now.Truncate(time.Hour).UnixMilli()
	d := &dashSeed{recs: map[hllstore.Key]*hllstore.Record{}}
	human, bot, unverified := hllstore.Human, hllstore.Bot, hllstore.Unverified
	const imp, view, click = pixelpb.Kind_KIND_IMPRESSION, pixelpb.Kind_KIND_VIEW, pixelpb.Kind_KIND_CLICK
	var w campaignWant
	for i, h := range []int64{cur - 3*hllstore.HourMs, cur - 2*hllstore.HourMs, cur - hllstore.HourMs, cur} {
		d.campaign = dashCampaign
		imps, clicks, promoViews, artViews := []int{180, 240, 220, 260}[i], []int{6, 11, 9, 12}[i], []int{20, 28, 34, 25}[i], []int{35, 50, 58, 30}[i]
		d.add(dashPromo, imp, human, h, imps, []int{150, 200, 190, 210}[i], "")
		d.add(dashPromo, click, human, h, clicks, clicks, "")
		d.add(dashPromo, view, human, h, promoViews, []int{16, 22, 27, 20}[i], "")
		d.add(dashPromo, imp, unverified, h, 2, 2, "unsigned")
		d.add(dashPromo, view, bot, h, 3, 1, "known_crawler")
		promoVisits, promoBounces := []int{8, 11, 13, 10}[i], []uint64{3, 4, 6, 4}[i]
		d.addVisits(dashPromo, h, promoVisits, []int{7, 10, 12, 9}[i], promoBounces, uint64(promoVisits)*uint64(60_000+10_000*i), uint64(promoViews))
		d.add(dashCampArticle, view, human, h, artViews, []int{28, 40, 44, 24}[i], "")
		d.add(dashCampArticle, view, bot, h, 5, 2, "known_crawler")
		artVisits, artBounces := []int{12, 17, 21, 11}[i], []uint64{5, 6, 9, 4}[i]
		d.addVisits(dashCampArticle, h, artVisits, []int{10, 15, 18, 10}[i], artBounces, uint64(artVisits)*uint64(90_000+20_000*i), uint64(artViews))
		// Not the campaign's: hits without one, and of another campaign.
		d.campaign = ""
		d.add(dashPromo, imp, human, h, 50, 45, "")
		d.add(dashPromo, view, human, h, 15, 12, "")
		d.add(dashCampArticle, view, human, h, 15, 12, "")
		d.campaign = "autumn"
		d.add(dashCampArticle, view, human, h, 9, 9, "")
		d.addVisits(dashCampArticle, h, 4, 4, 2, 4*70_000, 9)
		d.campaign = ""

		w.impressions += uint64(imps)
		w.views += uint64(promoViews + artViews)
		w.clicks += uint64(clicks)
		w.visits += uint64(promoVisits + artVisits)
		w.bounces += promoBounces + artBounces
		if hllstore.DayStart(h) == hllstore.DayStart(cur) {
			w.todayImpressions += uint64(imps)
			w.todayViews += uint64(promoViews + artViews)
			w.todayClicks += uint64(clicks)
			w.todayNonHuman += 2 + 3 + 5
		}
	}
	var writes []hllstoretest.Write
	var top []hllstore.TopUpdate
	for _, k := range d.keys {
		writes = append(writes, hllstoretest.Write{Key: k, Record: d.recs[k]})
		if k.Gran == hllstore.GranularityDay && k.Class == human && k.Campaign == "" && k.Kind != pixelpb.Kind_KIND_SESSION {
			top = append(top, hllstore.TopUpdate{Key: k, Total: d.recs[k].Total, Uniques: d.recs[k].Sketch.Estimate()})
		}
	}
	if err := hllstoretest.Put(ctx, store, writes); err != nil {
		t.Fatal(err)
	}
	if err := store.RaiseTop(ctx, top); err != nil {
		t.Fatal(err)
	}
	wms := map[int32]hllstore.Watermark{}
	for p := range int32(6) {
		wms[p] = hllstore.Watermark{CompleteUntilMs: now.Add(-2 * time.Second).UnixMilli(), WrittenAtMs: now.UnixMilli()}
	}
	if err := store.WriteWatermarks(ctx, wms); err != nil {
		t.Fatal(err)
	}
	return w
}

// dashPage reads the dashboard open in a browser tab.
type dashPage struct {
	t   *testing.T
	ctx context.Context
}

// eval runs js in the page and returns its string value.
func (p dashPage) eval(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// text is the trimmed text of the first element matching sel ("" when none).
func (p dashPage) text(sel string) string {
	p.t.Helper()
	return strings.TrimSpace(p.eval(`(document.querySelector(` + strconv.Quote(sel) + `)||{}).textContent||""`))
}

// waitTexts waits until each selector's text is the one wanted.
func (p dashPage) waitTexts(want map[string]string) {
	p.t.Helper()
	pipetest.Eventually(p.t, 30*time.Second, func() string {
		for sel, w := range want {
			if got := p.text(sel); got != w {
				return fmt.Sprintf("%s shows %q, want %q (status %q)", sel, got, w, p.text("#status"))
			}
		}
		return ""
	})
}

// strip returns the number of bars of the chart strip of kind and their sum.
func (p dashPage) strip(kind string) (bars int, sum uint64) {
	p.t.Helper()
	for _, v := range strings.Fields(p.eval(`[...document.querySelectorAll('#chart svg[data-kind="` + kind + `"] rect.bar')].map(r => r.dataset.v).join(" ")`)) {
		n, _ := strconv.ParseUint(v, 10, 64)
		bars++
		sum += n
	}
	return bars, sum
}

// eventTotal is a class's events of every kind, as the dashboard adds them.
func eventTotal(c query.ClassStats) uint64 {
	return c.Impressions.Total + c.Views.Total + c.Clicks.Total + c.Conversions.Total + c.Opens.Total + c.Custom.Total
}

// TestDashboardCampaign serves seeded counts of a campaign on two content
// ids (with hits of the same ids outside it) through an open query API and
// checks, in headless chromium, that /?campaign=winter&range=24h shows the
// campaign's figures, the sums over its content ids as the campaign routes
// answer them: the cards (today), the chart's strips (visits included), the
// visits panel, the funnel, the email and traffic quality panels, each
// titled "campaign winter"; that the links and recipients panels say it has
// no recipient activity; that the breakdown and today's table say in one
// line that they are per content id, and stay on the content ids chosen
// next to the campaign (the cards still the campaign's); that a bad campaign
// id is refused with a message; and that at phone width (390 px) the same
// figures show, nothing overflowing. Screenshots:
// build/dashboard-campaign.png (1280 px), dashboard-campaign-cids.png (with
// its content ids chosen too) and dashboard-campaign-phone.png (390 px).
func TestDashboardCampaign(t *testing.T) {
	exe := chromium(t)
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	want := seedCampaign(t, store)
	base := serveOpenQuery(t, store, audit.NewReader(rdb, prefix))

	now := time.Now().UTC()
	hourTo := now.Truncate(time.Hour).Add(time.Hour)
	last24 := "from=" + hourTo.Add(-24*time.Hour).Format(time.RFC3339) + "&to=" + hourTo.Format(time.RFC3339)
	today := "from=" + now.Format("2006-01-02") + "&to=" + now.Add(24*time.Hour).Format("2006-01-02")
	stats := func(path string) query.StatsResponse {
		t.Helper()
		var st query.StatsResponse
		getOpenJSON(t, base+path, &st)
		return st
	}

	// The campaign routes answer the seeded sums over both content ids,
	// none of the hits outside the campaign: the figures the page must show.
	camp24, campToday := stats("/v1/campaigns/"+dashCampaign+"/stats?"+last24), stats("/v1/campaigns/"+dashCampaign+"/stats?"+today)
	h, v := camp24.Human, camp24.Human.Visits
	if h.Impressions.Total != want.impressions || h.Views.Total != want.views || h.Clicks.Total != want.clicks || v.Visits != want.visits || v.Bounces != want.bounces {
		t.Fatalf("API: campaign %s over 24 h: %d impressions, %d views, %d clicks, %d visits, %d bounces; want the sums over its content ids %+v",
			dashCampaign, h.Impressions.Total, h.Views.Total, h.Clicks.Total, v.Visits, v.Bounces, want)
	}
	th := campToday.Human
	nonHuman := eventTotal(campToday.Bot) + eventTotal(campToday.Machine) + eventTotal(campToday.Unverified)
	if th.Impressions.Total != want.todayImpressions || th.Views.Total != want.todayViews || th.Clicks.Total != want.todayClicks || nonHuman != want.todayNonHuman || th.Views.Uniques == 0 {
		t.Fatalf("API: campaign %s today: %d impressions, %d views (%d uniques), %d clicks, %d non-human; want %+v",
			dashCampaign, th.Impressions.Total, th.Views.Total, th.Views.Uniques, th.Clicks.Total, nonHuman, want)
	}
	// The cards: today's campaign counts; the visits panel: the range's.
	cards := map[string]string{
		"#cards-title .sel-id": "campaign " + dashCampaign,
		"#live-uniques":        commas(th.Views.Uniques),
		"#live-views":          commas(th.Views.Total),
		"#live-impressions":    commas(th.Impressions.Total),
		"#live-clicks":         commas(th.Clicks.Total),
		"#live-ctr":            percent(th.CTR),
		"#live-opens":          "0",
		"#live-nonhuman":       commas(nonHuman),
	}
	visits := visitTexts(v)

	ctx := browser(t, exe, 1280, 900)
	p := dashPage{t, ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/?campaign="+dashCampaign+"&range=24h")); err != nil {
		t.Fatal(err)
	}
	p.waitTexts(cards)
	p.waitTexts(visits)
	if s := p.text("#live-age"); !strings.HasPrefix(s, "today so far · updated") {
		t.Errorf("views card says %q, want today so far", s)
	}
	if s := p.text("#cards-title"); s != "Today (UTC) · campaign "+dashCampaign {
		t.Errorf("cards title %q: want no \"live\" for a campaign", s)
	}
	for _, id := range []string{"chart-title", "visits-title", "funnel-title", "email-title", "quality-title"} {
		if s := p.text("#" + id + " .sel-id"); s != "campaign "+dashCampaign {
			t.Errorf("#%s names %q, want campaign %s", id, s, dashCampaign)
		}
	}
	if s := p.text("#picker"); s != "campaign "+dashCampaign {
		t.Errorf("picker shows %q, want the campaign", s)
	}
	// The chart: a strip per kind with events, visits included, each
	// adding up to the campaign's count.
	if s := p.eval(`[...document.querySelectorAll("#chart .strip")].map(s => s.dataset.kind).join(",")`); s != "impressions,views,clicks,visits" {
		t.Errorf("chart strips for the campaign: %q, want impressions,views,clicks,visits", s)
	}
	for kind, n := range map[string]uint64{"impressions": h.Impressions.Total, "views": h.Views.Total, "clicks": h.Clicks.Total, "visits": v.Visits} {
		if bars, sum := p.strip(kind); bars != 24 || sum != n {
			t.Errorf("chart strip %s: %d bars (want 24 hours) summing to %d, want %d", kind, bars, sum, n)
		}
	}
	if f := p.text("#funnel"); !strings.Contains(f, "Impressions"+commas(h.Impressions.Total)) || !strings.Contains(f, "Views"+commas(h.Views.Total)) || !strings.Contains(f, "Clicks"+commas(h.Clicks.Total)) {
		t.Errorf("funnel %q, want the campaign's impressions, views and clicks", f)
	}
	if s := p.text("#ctr"); s != percent(h.CTR) {
		t.Errorf("funnel CTR %q, want %q", s, percent(h.CTR))
	}
	if s := p.text("#email-empty"); s != "No email opens of campaign "+dashCampaign+" in this range." {
		t.Errorf("email panel says %q", s)
	}
	if q := p.text("#reasons"); !strings.Contains(q, commas(camp24.Bot.Reasons["known_crawler"])+" known crawler (bot)") ||
		!strings.Contains(q, commas(camp24.Unverified.Reasons["unsigned"])+" unsigned pixel (unverified)") || camp24.Bot.Reasons["known_crawler"] == 0 {
		t.Errorf("traffic quality %q, want the campaign's %d crawler views and %d unsigned impressions", q, camp24.Bot.Reasons["known_crawler"], camp24.Unverified.Reasons["unsigned"])
	}
	// Per content id only: one line each.
	p.waitTexts(map[string]string{
		"#bd-title .sel-id": "per content id",
		"#breakdowns":       "Breakdowns are kept per content id, not per campaign: enter content ids next to the campaign above to see theirs.",
		"#live-table-note":  "Live counts are kept per content id: enter content ids next to the campaign above to follow them here.",
	})
	if s := p.eval(`String(document.getElementById("bd-head").hidden) + String(document.getElementById("live-table-box").hidden)`); s != "truetrue" {
		t.Errorf("breakdown choices and today's table shown for a campaign alone (hidden: %s)", s)
	}
	// The top list stays the tenant's ranking.
	pipetest.Eventually(t, 30*time.Second, func() string {
		if top := p.text("#top"); !strings.Contains(top, dashCampArticle) || !strings.Contains(top, dashPromo) {
			return "top list " + top
		}
		return ""
	})
	if u := p.eval(`location.search`); u != "?campaign="+dashCampaign+"&range=24h" {
		t.Errorf("URL %q, want ?campaign=%s&range=24h", u, dashCampaign)
	}
	// No recipient activity seeded: the links and recipients panels say so,
	// over the UTC days the last 24 hours touch (today alone in its last hour).
	days24 := "yesterday and today (UTC)"
	if hourTo.Hour() == 0 {
		days24 = "today (UTC)"
	}
	p.waitTexts(map[string]string{
		"#recipients-empty":             "No recipient activity of campaign " + dashCampaign + " in this range: recipients appear when the pixels and links of its mails carry a uid.",
		"#links-empty":                  "No clicks on links of campaign " + dashCampaign + " in this range.",
		"#recipients-title .mail-range": days24,
	})
	if s := p.eval(`["mail", "recipients-box", "links-box", "recipients-next"].map(id => document.getElementById(id).hidden).join(" ")`); s != "false true true true" {
		t.Errorf("campaign without recipients: hidden (panels, recipients table, links table, Next): %s", s)
	}
	if s := p.text("#status"); s != "" {
		t.Errorf("status %q", s)
	}
	screenshot(t, ctx, "dashboard-campaign.png")

	// The campaign with its content ids: the cards and panels stay the
	// campaign's; the breakdown and today's table follow the content ids.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/?campaign="+dashCampaign+"&cid="+dashPromo+","+dashCampArticle+"&range=24h")); err != nil {
		t.Fatal(err)
	}
	p.waitTexts(cards)
	p.waitTexts(visits)
	p.waitTexts(map[string]string{"#bd-title .sel-id": dashPromo, "#visits-title .sel-id": "campaign " + dashCampaign})
	if s := p.eval(`[...document.querySelectorAll("#bd-cid option")].map(o => o.value).join(",")`); s != dashPromo+","+dashCampArticle {
		t.Errorf("breakdown content ids %q", s)
	}
	pipetest.Eventually(t, 30*time.Second, func() string {
		var rows []string
		for _, cid := range []string{dashPromo, dashCampArticle} {
			h := stats("/v1/stats/" + cid + "?" + today).Human
			rows = append(rows, strings.Join([]string{cid, commas(h.Views.Uniques), commas(h.Views.Total), commas(h.Impressions.Total), commas(h.Clicks.Total), commas(h.Opens.Total)}, "|"))
		}
		got := p.eval(`[...document.querySelectorAll("#live-table tr")].map(r => [...r.cells].map(c => c.textContent).join("|")).join("\n")`)
		if got != strings.Join(rows, "\n") || !strings.Contains(p.text("#breakdowns"), dashPromo) {
			return fmt.Sprintf("today's table\n%s\nwant\n%s\nbreakdown %q", got, strings.Join(rows, "\n"), p.text("#breakdowns"))
		}
		return ""
	})
	if err := chromedp.Do(ctx, chromedp.SetValue("#bd-cid", dashCampArticle),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("bd-cid").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	p.waitTexts(map[string]string{"#bd-title .sel-id": dashCampArticle, "#live-table tr.selected td": dashCampArticle})
	p.waitTexts(cards)
	if u := p.eval(`location.search`); u != "?campaign="+dashCampaign+"&cid="+dashPromo+","+dashCampArticle+"&sel="+dashCampArticle+"&range=24h&dim=country" {
		t.Errorf("URL %q does not keep the campaign and the content ids", u)
	}
	screenshot(t, ctx, "dashboard-campaign-cids.png")

	// A bad campaign id: refused with a message, nothing else changes.
	if err := chromedp.Do(ctx, chromedp.SetValue("#campaign", "winter sale"), chromedp.Click(`#scope button[type="submit"]`)); err != nil {
		t.Fatal(err)
	}
	p.waitTexts(map[string]string{"#campaign-error": "Not a campaign id: use A-Z a-z 0-9 . _ : - only (this one has a space)."})
	if s := p.eval(`document.getElementById("campaign").getAttribute("aria-invalid") + " " + location.search.includes("campaign=` + dashCampaign + `&")`); s != "true true" {
		t.Errorf("after a bad campaign id: aria-invalid and URL kept: %s", s)
	}
	p.waitTexts(cards)

	// Phone width: the campaign alone at 390 px.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(base+"/?campaign="+dashCampaign+"&range=24h")); err != nil {
		t.Fatal(err)
	}
	p.waitTexts(cards)
	p.waitTexts(visits)
	if w := p.eval(`window.innerWidth + " " + document.documentElement.scrollWidth`); w != "390 390" {
		t.Errorf("at phone width, window / scroll width: %s, want 390 390 (nothing overflows sideways)", w)
	}
	if wide := p.eval(phoneOverflow); wide != "" {
		t.Errorf("at phone width these reach past the right edge: %s", wide)
	}
	for _, sel := range []string{".cards", ".visit-rates"} {
		if cols := p.eval(`getComputedStyle(document.querySelector("` + sel + `")).gridTemplateColumns.split(" ").length + ""`); cols != "2" {
			t.Errorf("%s at phone width in %s columns, want 2", sel, cols)
		}
	}
	screenshot(t, ctx, "dashboard-campaign-phone.png")
}

// getOpenJSON GETs url from an open query API (no token) and decodes its 200
// answer into out.
func getOpenJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// The mail of campaign dashCampaign in TestDashboardRecipients, and the
// links in it: a person clicks the first two, only a link scanner the third.
const (
	dashMail  = "acme:mail-winter"
	dashShop  = "https://shop.example/x"
	dashBlog  = "https://blog.example/2026/winter-sale-what-is-new-and-why-it-matters"
	dashTerms = "https://shop.example/terms"
)

// dashRecipients is the number of recipients seedRecipients writes: more
// than a page of the dashboard (50).
const dashRecipients = 62

// seededRecipient is what one recipient of the mail did: a person's opens
// and machine opens (Unix ms), a person's clicks and a scanner's (by
// destination), orders, and page views.
type seededRecipient struct {
	key                 hllstore.RecipientKey
	uid                 string
	opens, machineOpens []int64
	clicks, scans       []string
	orders              []hllstore.Order
	views               uint64
}

// clicked reports whether a person clicked a link.
func (r seededRecipient) clicked() bool { return len(r.clicks) > 0 }

// seedRecipients writes the recipients of campaign dashCampaign on its mail
// dashMail, today and yesterday (UTC), as the aggregator writes them: each
// with a different key bucket, two in three with their uid kept, a person's
// opens (some the day before), machine opens, clicks on two links, a link
// scanner's clicks, orders in euros and dollars; a few only viewed pages.
// The days' records count the same events, under the mail and under the
// campaign (which indexes the mail's days under the campaign). It returns
// the recipients in key order.
func seedRecipients(t *testing.T, store *hllstore.Store) []seededRecipient {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	today := hllstore.DayStart(now.UnixMilli())
	yesterday := today - 24*hllstore.HourMs
	var rs []seededRecipient
	for i := range dashRecipients {
		r := seededRecipient{}
		r.key[0] = byte(4*i + 1)
		for j := 1; j < len(r.key); j++ {
			r.key[j] = byte(i*31 + j*17)
		}
		if i%3 != 2 {
			r.uid = fmt.Sprintf("reader-%02d@example.com", i)
		}
		at := today + int64(i)*60_000
		for j := range i % 4 {
			r.opens = append(r.opens, at+int64(j)*600_000+5_000)
		}
		if i%8 == 2 {
			r.opens[0] = yesterday + int64(i)*60_000 // the mail opened the day before
		}
		if i%5 == 0 {
			r.machineOpens = append(r.machineOpens, at+1_000)
		}
		if i%6 == 1 {
			r.clicks = append(r.clicks, dashShop)
		}
		if i%12 == 1 {
			r.clicks = append(r.clicks, dashBlog)
		}
		if i%7 == 3 {
			r.clicks = append(r.clicks, dashShop, dashShop)
		}
		if i%10 == 9 {
			r.scans = append(r.scans, dashTerms)
		}
		if i%9 == 1 {
			r.orders = append(r.orders, hllstore.Order{ID: fmt.Sprintf("ord-%d", i), ValueMicros: 12_500_000, Currency: "EUR"})
		}
		if i == 19 {
			r.orders = append(r.orders, hllstore.Order{ID: "ord-19-us", ValueMicros: 5_000_000, Currency: "USD"})
		}
		if len(r.opens)+len(r.machineOpens)+len(r.clicks)+len(r.scans)+len(r.orders) == 0 {
			r.views = 2
		}
		rs = append(rs, r)
	}

	days := map[int64]*hllstore.Day{}
	day := func(ms int64) *hllstore.Day {
		ds := hllstore.DayStart(ms)
		if days[ds] == nil {
			days[ds] = hllstore.NewDay()
		}
		return days[ds]
	}
	// count adds an event to the day's records of the mail and of the campaign.
	count := func(d *hllstore.Day, kind pixelpb.Kind, class hllstore.Class, visitor uint64, reason string, order *hllstore.Order) {
		for _, c := range []string{"", dashCampaign} {
			rec := d.Record(hllstore.RecordID{Campaign: c, Kind: kind, Class: class, Hour: hllstore.DayRecord})
			rec.Add(visitor)
			if reason != "" {
				rec.AddReason(reason)
			}
			if order != nil {
				rec.AddOrder(order.ID, order.Currency, order.ValueMicros)
			}
		}
	}
	for i, r := range rs {
		visitor := uint64(i+1) * 0x9e3779b97f4a7c15
		at := today + int64(i)*60_000
		act := func(ms int64) *hllstore.Activity { return day(ms).Recipient(dashCampaign, r.key) }
		act(at).UID = r.uid
		for _, ms := range r.opens {
			act(ms).AddOpen(ms, false)
			count(day(ms), pixelpb.Kind_KIND_OPEN, hllstore.Human, visitor, "", nil)
		}
		for _, ms := range r.machineOpens {
			act(ms).AddOpen(ms, true)
			count(day(ms), pixelpb.Kind_KIND_OPEN, hllstore.Machine, visitor, "apple_mpp", nil)
		}
		for _, dest := range r.clicks {
			act(at).AddClick(dest, false)
			count(day(at), pixelpb.Kind_KIND_CLICK, hllstore.Human, visitor, "", nil)
		}
		for _, dest := range r.scans {
			act(at).AddClick(dest, true)
			count(day(at), pixelpb.Kind_KIND_CLICK, hllstore.Machine, visitor, "link_scanner", nil)
		}
		for _, o := range r.orders {
			act(at).AddConversion(o.ID, o.ValueMicros, o.Currency)
			count(day(at), pixelpb.Kind_KIND_CONVERSION, hllstore.Human, visitor, "", &o)
		}
		for range r.views {
			act(at).Views++
			count(day(at), pixelpb.Kind_KIND_VIEW, hllstore.Human, visitor, "", nil)
		}
	}
	var writes []hllstore.DayWrite
	for ds, d := range days {
		writes = append(writes, hllstore.DayWrite{Key: hllstore.DayKey{ContentID: dashMail, DayStart: ds}, Day: d})
	}
	if written, err := store.SaveDays(ctx, writes); err != nil || len(written) != len(writes) || slices.Contains(written, false) {
		t.Fatalf("seed recipients: written %v, %v", written, err)
	}
	wms := map[int32]hllstore.Watermark{}
	for p := range int32(6) {
		wms[p] = hllstore.Watermark{CompleteUntilMs: now.Add(-2 * time.Second).UnixMilli(), WrittenAtMs: now.UnixMilli()}
	}
	if err := store.WriteWatermarks(ctx, wms); err != nil {
		t.Fatal(err)
	}
	return rs
}

// rfc3339ms writes a time in Unix ms as the API does ("–" for none, as the
// dashboard shows it).
func rfc3339ms(ms int64) string {
	if ms == 0 {
		return "–"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// recipientCells is r's row in the dashboard's recipients table, as
// recipientRowsJS reads it: who (the uid, else the key shortened) | opens |
// machine opens | first open | last open (their datetime) | clicks | links
// clicked ("destination clicks", then "link scanners n") | conversions |
// revenue.
func recipientCells(r seededRecipient) string {
	who := r.uid
	if who == "" {
		k := r.key.String()
		who = k[:8] + "…" + k[len(k)-4:]
	}
	var first, last int64
	for _, ms := range r.opens {
		if first == 0 || ms < first {
			first = ms
		}
		last = max(last, ms)
	}
	perLink := map[string]uint64{}
	for _, d := range r.clicks {
		perLink[d]++
	}
	var links []string
	for _, d := range slices.Sorted(maps.Keys(perLink)) {
		links = append(links, strings.TrimPrefix(d, "https://")+" "+commas(perLink[d]))
	}
	if len(r.scans) > 0 {
		links = append(links, "link scanners "+strconv.Itoa(len(r.scans)))
	}
	linkText := strings.Join(links, "; ")
	if linkText == "" {
		linkText = "–"
	}
	revenue := map[string]int64{}
	for _, o := range r.orders {
		revenue[o.Currency] += o.ValueMicros
	}
	var rev []string
	for _, c := range slices.Sorted(maps.Keys(revenue)) {
		rev = append(rev, map[string]string{"EUR": "€", "USD": "$"}[c]+strconv.FormatFloat(float64(revenue[c])/1e6, 'f', 2, 64))
	}
	revText := strings.Join(rev, " · ")
	if revText == "" {
		revText = "–"
	}
	return strings.Join([]string{who, strconv.Itoa(len(r.opens)), strconv.Itoa(len(r.machineOpens)), rfc3339ms(first), rfc3339ms(last),
		strconv.Itoa(len(r.clicks)), linkText, strconv.Itoa(len(r.orders)), revText}, "|")
}

// recipientRowsJS reads the rows of the recipients table: each cell's text,
// a time's datetime, a list's items joined by "; ".
const recipientRowsJS = `[...document.querySelectorAll("#recipients-rows tr")].map(r => [...r.cells].map(c => {
	const t = c.querySelector("time");
	if (t) return t.getAttribute("datetime");
	const li = c.querySelectorAll("li");
	if (li.length) return [...li].map(l => l.textContent).join("; ");
	return c.textContent;
}).join("|")).join("\n")`

// TestDashboardRecipients serves seeded recipient activity of a campaign
// (62 recipients of its mail over two UTC days) through an open query API
// and checks, in headless chromium at /?campaign=winter&range=7d, that the
// recipients panel shows exactly the seeded recipients, 50 a page in key
// order, each with its uid (or key), opens, machine opens, first and last
// open, clicks per link, conversions and revenue; that Next (pressed with
// the keyboard) shows the last 12 and First page the first 50 again; that
// the filter "clicked" shows exactly the clickers and the URL keeps it; that
// the links panel shows the links route's answer; that the CSV link asks
// the same route for format=csv with the filter and the range in whole
// days, and the download reads every page of it; that the range of the last
// 24 hours asks for the days it touches; and that at 390 px the panels
// scroll inside their cards, nothing overflowing, the recipient column
// staying in view. Screenshots:
// build/dashboard-recipients.png (1280 px) and
// dashboard-recipients-390.png.
func TestDashboardRecipients(t *testing.T) {
	exe := chromium(t)
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	seeded := seedRecipients(t, store)
	base := serveOpenQuery(t, store, audit.NewReader(rdb, prefix))

	// The range of 7 days in whole UTC days, as the page asks for it.
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	days := "from=" + today.Add(-6*24*time.Hour).Format("2006-01-02") + "&to=" + today.Add(24*time.Hour).Format("2006-01-02")
	campPath := "/v1/campaigns/" + dashCampaign

	var all, clickers []string
	var clickerRecipients []seededRecipient
	for _, r := range seeded {
		all = append(all, recipientCells(r))
		if r.clicked() {
			clickers = append(clickers, recipientCells(r))
			clickerRecipients = append(clickerRecipients, r)
		}
	}
	// The API answers the seeded recipients, in key order.
	var api query.RecipientsResponse
	getOpenJSON(t, base+campPath+"/recipients?"+days+"&limit=100", &api)
	if len(api.Recipients) != dashRecipients || api.NextCursor != "" {
		t.Fatalf("API: %d recipients (next cursor %q), want the %d seeded", len(api.Recipients), api.NextCursor, dashRecipients)
	}
	for i, r := range api.Recipients {
		if r.Key != seeded[i].key.String() || r.UID != seeded[i].uid || r.Opens != uint64(len(seeded[i].opens)) || r.Clicks != uint64(len(seeded[i].clicks)) {
			t.Fatalf("API: recipient %d is %+v, want %+v", i, r, seeded[i])
		}
	}
	if len(clickers) < 10 || len(clickers) >= 50 {
		t.Fatalf("%d clickers seeded: want a page's worth", len(clickers))
	}
	var links query.LinksResponse
	getOpenJSON(t, base+campPath+"/links?"+days, &links)
	var wantLinks []string
	for _, l := range links.Links {
		wantLinks = append(wantLinks, strings.Join([]string{l.Destination, commas(l.Clicks), commas(l.UniqueClickers), commas(l.MachineClicks)}, "|"))
	}
	if len(links.Links) != 3 {
		t.Fatalf("API: links %+v, want the mail's 3", links.Links)
	}

	ctx := browser(t, exe, 1280, 900)
	p := dashPage{t, ctx}
	waitRows := func(what string, want []string) {
		t.Helper()
		pipetest.Eventually(t, 30*time.Second, func() string {
			if got := p.eval(recipientRowsJS); got != strings.Join(want, "\n") {
				return fmt.Sprintf("%s: recipient rows\n%s\nwant\n%s\n(empty state %q, status %q)", what, got, strings.Join(want, "\n"), p.text("#recipients-empty"), p.text("#status"))
			}
			return ""
		})
	}
	// buttons reads whether First page and Next are shown and enabled.
	buttons := func() string {
		return p.eval(`["recipients-first", "recipients-next"].map(id => { const b = document.getElementById(id); return id.slice(11) + (b.hidden ? " hidden" : b.disabled ? " disabled" : " enabled"); }).join(", ")`)
	}
	linkRows := func() string {
		return p.eval(`[...document.querySelectorAll("#links-rows tr")].map(r => [...r.cells].map(c => c.textContent).join("|")).join("\n")`)
	}
	csvHref := func() string { return p.eval(`document.getElementById("recipients-csv").getAttribute("href")`) }
	setFilter := func(f string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.SetValue("#recipients-filter", f),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("recipients-filter").dispatchEvent(new Event("change"))`)); err != nil {
			t.Fatal(err)
		}
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/?campaign="+dashCampaign+"&range=7d")); err != nil {
		t.Fatal(err)
	}
	// The first page: the first 50 recipients in key order.
	waitRows("first page", all[:50])
	p.waitTexts(map[string]string{
		"#recipients-page":              "page 1 · recipients 1–50",
		"#recipients-title .sel-id":     "campaign " + dashCampaign,
		"#recipients-title .mail-range": "last 7 days",
		"#links-title .sel-id":          "campaign " + dashCampaign,
	})
	if s := p.eval(`["recipients-box", "links-box"].map(id => document.getElementById(id).offsetHeight > 0).join(" ")`); s != "true true" {
		t.Errorf("recipients and links tables shown: %s, want both", s)
	}
	if b := buttons(); b != "first disabled, next enabled" {
		t.Errorf("on the first page: %s", b)
	}
	if h, want := csvHref(), campPath+"/recipients?"+days+"&filter=all&format=csv&limit=10000"; h != want {
		t.Errorf("CSV link %q, want %q", h, want)
	}
	// The links panel: the links route's answer, in its order.
	pipetest.Eventually(t, 30*time.Second, func() string {
		if got := linkRows(); got != strings.Join(wantLinks, "\n") {
			return fmt.Sprintf("links rows\n%s\nwant\n%s", got, strings.Join(wantLinks, "\n"))
		}
		return ""
	})
	// The download reads every page of the CSV (here 20 recipients a page).
	csv, err := chromedp.Run(ctx, chromedp.Evaluate[string](`recipientsCSV(document.getElementById("recipients-csv").getAttribute("href").replace("limit=10000", "limit=20")).then(c => c.name + "\n" + c.text)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("CSV download: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(csv, "\n"), "\n")
	if len(lines) != 2+dashRecipients || !strings.HasPrefix(lines[0], "recipients-"+dashCampaign+"-") || !strings.HasPrefix(lines[1], "key,uid,opens,") {
		t.Errorf("CSV download: %d lines, want a name, a header and %d recipients:\n%s", len(lines), dashRecipients, csv)
	} else {
		for i, r := range seeded {
			if !strings.HasPrefix(lines[2+i], r.key.String()+",") {
				t.Errorf("CSV line %d %q: want recipient %s", i, lines[2+i], r.key)
			}
		}
	}

	// Next, with the keyboard: the last 12; the focus moves on to First
	// page as Next is disabled.
	if err := chromedp.Do(ctx, chromedp.Focus("#recipients-next"), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitRows("second page", all[50:])
	p.waitTexts(map[string]string{"#recipients-page": "page 2 · recipients 51–" + strconv.Itoa(dashRecipients)})
	if b, f := buttons(), p.eval(`document.activeElement.id`); b != "first enabled, next disabled" || f != "recipients-first" {
		t.Errorf("on the last page: %s; focus on #%s, want #recipients-first", b, f)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitRows("first page again", all[:50])
	p.waitTexts(map[string]string{"#recipients-page": "page 1 · recipients 1–50"})

	// The clickers: one page, the URL and the CSV link keep the filter.
	setFilter("clicked")
	waitRows("filter clicked", clickers)
	p.waitTexts(map[string]string{"#recipients-page": strconv.Itoa(len(clickers)) + " recipients"})
	if b := buttons(); b != "first hidden, next hidden" {
		t.Errorf("one page of clickers: %s", b)
	}
	if h := csvHref(); h != campPath+"/recipients?"+days+"&filter=clicked&format=csv&limit=10000" {
		t.Errorf("CSV link %q for the clickers", h)
	}
	if u := p.eval(`location.search`); u != "?campaign="+dashCampaign+"&range=7d&recipients=clicked" {
		t.Errorf("URL %q, want the filter kept", u)
	}
	for _, r := range clickerRecipients {
		if r.uid != "" && !strings.Contains(p.text("#recipients-rows"), r.uid) {
			t.Errorf("clicker %s missing", r.uid)
		}
	}
	if s := p.text("#status"); s != "" {
		t.Errorf("status %q", s)
	}
	screenshot(t, ctx, "dashboard-recipients.png")

	// The recipients who converted, with their orders' revenue.
	setFilter("converted")
	var converted []string
	for _, r := range seeded {
		if len(r.orders) > 0 {
			converted = append(converted, recipientCells(r))
		}
	}
	waitRows("filter converted", converted)

	// Phone width: the clickers (from the URL) at 390 px; the tables
	// scroll inside their cards.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(base+"/?campaign="+dashCampaign+"&range=7d&recipients=clicked")); err != nil {
		t.Fatal(err)
	}
	waitRows("filter clicked at 390 px", clickers)
	pipetest.Eventually(t, 30*time.Second, func() string {
		if got := linkRows(); got != strings.Join(wantLinks, "\n") {
			return fmt.Sprintf("links rows at 390 px\n%s", got)
		}
		return ""
	})
	if v := p.eval(`document.getElementById("recipients-filter").value`); v != "clicked" {
		t.Errorf("filter %q after loading ?recipients=clicked", v)
	}
	if w := p.eval(`window.innerWidth + " " + document.documentElement.scrollWidth`); w != "390 390" {
		t.Errorf("at phone width, window / scroll width: %s, want 390 390 (nothing overflows sideways)", w)
	}
	if wide := p.eval(phoneOverflow); wide != "" {
		t.Errorf("at phone width these reach past the right edge: %s", wide)
	}
	if s := p.eval(`(b => b.scrollWidth > b.clientWidth && b.getBoundingClientRect().right <= window.innerWidth ? "scrolls" : b.scrollWidth + "/" + b.clientWidth)(document.getElementById("recipients-box"))`); s != "scrolls" {
		t.Errorf("recipients table at 390 px: %s, want it to scroll sideways inside its card", s)
	}
	// Scrolled sideways, the recipient column stays in view.
	if s := p.eval(`(b => { b.scrollLeft = b.scrollWidth; const left = b.querySelector("tbody th").getBoundingClientRect().left - b.getBoundingClientRect().left; b.scrollLeft = 0; return String(Math.round(left)); })(document.getElementById("recipients-box"))`); s != "0" {
		t.Errorf("recipients table scrolled sideways: the recipient column is %s px off its left edge, want 0 (it stays)", s)
	}
	screenshot(t, ctx, "dashboard-recipients-390.png")

	// The last 24 hours: the recipient routes take the UTC days they touch.
	hourTo := now.Truncate(time.Hour).Add(time.Hour)
	from24 := hourTo.Add(-24 * time.Hour).Truncate(24 * time.Hour)
	to24 := hourTo.Add(24*time.Hour - time.Nanosecond).Truncate(24 * time.Hour)
	if err := chromedp.Do(ctx, chromedp.SetValue("#range", "24h"), chromedp.Click(`#scope button[type="submit"]`)); err != nil {
		t.Fatal(err)
	}
	want24 := campPath + "/recipients?from=" + from24.Format("2006-01-02") + "&to=" + to24.Format("2006-01-02") + "&filter=clicked&format=csv&limit=10000"
	pipetest.Eventually(t, 30*time.Second, func() string {
		if h := csvHref(); h != want24 {
			return fmt.Sprintf("CSV link for the last 24 hours %q, want %q", h, want24)
		}
		return ""
	})
}

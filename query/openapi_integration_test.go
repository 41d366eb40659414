//go:build integration

package query

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/hllstore/hllstoretest"
	"github.com/pixelpipe/pixelpipe/internal/money"
	"github.com/pixelpipe/pixelpipe/internal/pipetest"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData(openapiYAML)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	// Examples in the file must validate against their schemas.
	if err := doc.Validate(ctx, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	return doc
}

// seed writes counts for content "acme:a" today: human impressions, views,
// clicks and conversions (with orders), bot views with a reason, human
// visits (seedVisits); recipients of campaign "spring" (seedRecipients); and
// a watermark on every partition. It returns the store too, to erase with.
func seed(t *testing.T) (*counts.Reader, *audit.Reader, *hllstore.Store, time.Time) {
	t.Helper()
	rdb, prefix := pipetest.Redis(t)
	store := hllstore.New(rdb, hllstore.Config{Prefix: prefix})
	ctx := context.Background()
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour).UnixMilli()
	var writes []hllstoretest.Write
	add := func(kind pixelpb.Kind, class hllstore.Class, n int) *hllstore.Record {
		var last *hllstore.Record
		for _, g := range []hllstore.Granularity{hllstore.GranularityHour, hllstore.GranularityDay} {
			r := hllstore.NewRecord()
			for i := range n {
				r.Add(uint64(i)*0x9e3779b97f4a7c15 + uint64(kind))
			}
			if class == hllstore.Bot {
				for range n {
					r.AddReason("ua_bot")
				}
			}
			if kind == pixelpb.Kind_KIND_CONVERSION {
				r.AddOrder("o1", "EUR", 12_500_000)
				r.AddOrder("o2", "EUR", 7_000_000)
			}
			writes = append(writes, hllstoretest.Write{Key: hllstore.Key{ContentID: "acme:a", Kind: kind, Class: class, Gran: g, Start: hllstore.BucketStart(g, hour)}, Record: &r})
			last = &r
		}
		return last
	}
	add(pixelpb.Kind_KIND_IMPRESSION, hllstore.Human, 200)
	add(pixelpb.Kind_KIND_VIEW, hllstore.Human, 50)
	add(pixelpb.Kind_KIND_CLICK, hllstore.Human, 10)
	add(pixelpb.Kind_KIND_CONVERSION, hllstore.Human, 2)
	add(pixelpb.Kind_KIND_VIEW, hllstore.Bot, 3)
	add(pixelpb.Kind_KIND_IMPRESSION, hllstore.Unverified, 4)
	for _, g := range []hllstore.Granularity{hllstore.GranularityHour, hllstore.GranularityDay} {
		writes = append(writes, hllstoretest.Write{Key: hllstore.Key{ContentID: "acme:a", Kind: pixelpb.Kind_KIND_SESSION, Class: hllstore.Human, Gran: g, Start: hllstore.BucketStart(g, hour)}, Record: seedVisits()})
	}
	if err := hllstoretest.Put(ctx, store, writes); err != nil {
		t.Fatal(err)
	}
	// Breakdowns of today's human views: 7 visitors, 4 on desktop, 3 on
	// mobile, one OS name a spreadsheet would run as a formula.
	dk := hllstore.DayKey{ContentID: "acme:a", DayStart: hllstore.DayStart(hour)}
	days, err := store.LoadDays(ctx, []hllstore.DayKey{dk})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		values := hllstore.Values{"DE", []string{"desktop", "mobile"}[i%2], "Firefox", []string{"Linux", "=HYPERLINK(1)"}[i%2], "search"}
		days[0].Breakdown(pixelpb.Kind_KIND_VIEW).AddValues(&values, uint64(i+1)*0x9e3779b97f4a7c15, 50)
	}
	if written, err := store.SaveDays(ctx, []hllstore.DayWrite{{Key: dk, Day: days[0], Details: true}}); err != nil || !written[0] {
		t.Fatalf("seed breakdowns: %v %v", written, err)
	}
	seedRecipients(t, store, hllstore.DayStart(hour), hour)
	for p := range int32(6) {
		if err := store.WriteWatermarks(ctx, map[int32]hllstore.Watermark{p: {CompleteUntilMs: now.Add(-time.Duration(p+2) * time.Second).UnixMilli(), WrittenAtMs: now.UnixMilli()}}); err != nil {
			t.Fatal(err)
		}
	}
	// The audit of one partition of the processors' group: edge-1 had 5
	// events and a dead letter two minutes ago, and numbers 3-4 of its
	// lane are missing (the layout package audit documents).
	tag := audit.Tag("pixelpipe-processor", "pixel.hits.v1", 0)
	minute := now.Add(-2*time.Minute).Unix() / 60
	if err := audit.Register(ctx, rdb, prefix, tag); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, audit.Key(prefix, tag, minute/(24*60)), "m|"+strconv.FormatInt(minute, 10)+"|edge-1", "5 1 0 0 "+strconv.FormatInt(minute*60_000+400, 10),
		"g|1764000000000|edge-1", "3-4@"+strconv.FormatInt(minute*60_000+500, 10))
	return counts.NewReader(store), audit.NewReader(rdb, prefix), store, now
}

// openAPISecret is the visitor secret of the recipients seedRecipients
// writes (their keys) and of the server that finds them by uid.
const openAPISecret = "openapi-visitor-secret"

// seedRecipients writes the day of dayStart of campaign "spring" on
// "acme:mail": ann opened (and a proxy before her), clicked the shop link
// and ordered; bob's opens and clicks are a machine's; cal opened and
// clicked the blog link. And on "globex:mail" globex's gus opened.
func seedRecipients(t *testing.T, store *hllstore.Store, dayStart, ms int64) {
	t.Helper()
	keyer := visitor.NewKeyer(openAPISecret)
	key := func(tenant, uid string) hllstore.RecipientKey {
		return hllstore.RecipientKey(keyer.RecipientKey(nil, tenant, uid))
	}
	const shop, blog = "https://shop.example/sale", "https://blog.example/post"
	spring := hllstoretest.Campaign{Name: "spring"}
	ann := spring.Recipient("acme:mail", dayStart, key("acme", "ann"))
	ann.UID = "ann"
	ann.AddOpen(ms+1000, true)
	ann.AddOpen(ms+2000, false)
	ann.AddClick(shop, false)
	ann.AddConversion("o-1", 25_000_000, "EUR")
	ann.Views++
	bob := spring.Recipient("acme:mail", dayStart, key("acme", "bob"))
	bob.AddOpen(ms+500, true)
	bob.AddClick(shop, true)
	cal := spring.Recipient("acme:mail", dayStart, key("acme", "cal"))
	cal.AddOpen(ms+3000, false)
	cal.AddClick(blog, false)
	spring.Recipient("globex:mail", dayStart, key("globex", "gus")).AddOpen(ms, false)
	if err := spring.Put(context.Background(), store); err != nil {
		t.Fatalf("seed recipients: %v", err)
	}
}

// seedVisits is a record of 8 visits by 6 visitors, as the aggregator
// writes it: 3 bounces, 6 minutes in all, 20 pages (wantVisits).
func seedVisits() *hllstore.Record {
	r := hllstore.NewRecord()
	for i := range 8 {
		r.Add(uint64(i%6+1) * 0x9e3779b97f4a7c15)
	}
	r.AddSum(hllstore.SumBounces, 3)
	r.AddSum(hllstore.SumDurationMs, 360_000)
	r.AddSum(hllstore.SumPages, 20)
	return &r
}

// wantVisits are the visits of seedVisits as the API answers them.
var wantVisits = VisitStats{Visits: 8, Visitors: 6, Bounces: 3, BounceRate: 0.375, MeanDurationS: 45, PagesPerVisit: 2.5}

// Every documented path and method is served, every served route is
// documented, and real answers (from counts in a real Redis) validate against
// the schemas, errors included.
func TestOpenAPIMatchesHandlers(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	reader, auditReader, store, now := seed(t)
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Tokens = map[string]string{"acme-tok": "acme", "op-tok": "*"}
	cfg.VisitorSecret, cfg.ErasureGrace = openAPISecret, 10*time.Millisecond
	reg := prometheus.NewRegistry()
	s, err := New(cfg, nil, reg, reader, auditReader)
	if err != nil {
		t.Fatal(err)
	}
	s.SetEraser(store)
	// A server without the visitor secret and without an eraser: its
	// recipient routes answer 501 for what they cannot do.
	cfg.VisitorSecret = ""
	bare, err := New(cfg, nil, nil, reader, auditReader)
	if err != nil {
		t.Fatal(err)
	}
	// Every call below is counted per route and status.
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		for code, want := range map[string]float64{"200": 6, "403": 1, "400": 1} { // the table's calls and the ones checked in full below
			if n := testutil.ToFloat64(s.metrics.requests.WithLabelValues("GET /v1/stats/{cid}", code)); n != want {
				t.Errorf("pixel_query_requests_total{route=\"GET /v1/stats/{cid}\",code=%q} = %v, want %v", code, n, want)
			}
		}
		if n := testutil.CollectAndCount(reg, "pixel_query_request_duration_seconds"); n < 8 {
			t.Errorf("request durations of %d routes, want every route called", n)
		}
	})

	// NDJSON answers are validated as text, like CSV ones.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(body)
		return string(b), err
	})
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(documented)
	served := slices.Clone(s.routes)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("openapi.yaml documents\n  %v\nthe server serves\n  %v", documented, served)
	}

	day := now.Format(dayLayout)
	next := now.Add(24 * time.Hour).Format(dayLayout)
	// A target may start with its method; GET by default.
	calls := []struct {
		path, target string
		code         int
	}{
		{"/v1/stats/{cid}", "/v1/stats/acme:a?from=" + day + "&to=" + next, 200},
		{"/v1/stats/{cid}", "/v1/stats/acme:a?class=bot", 200},
		{"/v1/stats/{cid}", "/v1/stats/acme:a?kind=conversion", 200},
		{"/v1/stats/{cid}", "/v1/stats/acme:a?kind=session", 200},
		{"/v1/stats/{cid}", "/v1/stats/globex:a", 403},
		{"/v1/stats/{cid}", "/v1/stats/acme:a?from=x", 400},
		{"/v1/campaigns/{campaign}/stats", "/v1/campaigns/spring/stats", 200},
		{"/v1/series/{cid}", "/v1/series/acme:a?granularity=hour", 200},
		{"/v1/series/{cid}", "/v1/series/acme:a?granularity=day&from=" + now.Add(-90*24*time.Hour).Format(dayLayout) + "&to=" + next, 200},
		{"/v1/series/{cid}", "/v1/series/acme:a?granularity=week", 400},
		{"/v1/series/{cid}", "/v1/series/acme:a?granularity=day&kind=session", 200},
		{"/v1/campaigns/{campaign}/series", "/v1/campaigns/spring/series?granularity=day", 200},
		{"/v1/top", "/v1/top", 200},
		{"/v1/top", "/v1/top?by=x", 400},
		{"/v1/top", "/v1/top?kind=session", 400},
		{"/v1/breakdowns/{cid}", "/v1/breakdowns/acme:a?dimension=country", 200},
		{"/v1/breakdowns/{cid}", "/v1/breakdowns/acme:a?dimension=landing&kind=session", 400},
		{"/v1/series/{cid}", "/v1/series/acme:a?granularity=hour&format=csv", 200},
		{"/v1/campaigns/{campaign}/series", "/v1/campaigns/spring/series?granularity=day&format=ndjson", 200},
		{"/v1/series/{cid}", "/v1/series/acme:a?format=xml", 400},
		{"/v1/top", "/v1/top?format=csv", 200},
		{"/v1/breakdowns/{cid}", "/v1/breakdowns/acme:a?dimension=country&format=ndjson", 200},
		{"/v1/freshness", "/v1/freshness", 200},
		{"/v1/audit", "/v1/audit", 403}, // a tenant's token
		{"/v1/audit", "/v1/audit?from=" + day + "&to=" + next, 200},
		{"/v1/audit", "/v1/audit?from=" + next + "&to=" + day, 400},
		{"/v1/campaigns/{campaign}/recipients", "/v1/campaigns/spring/recipients", 200},
		{"/v1/campaigns/{campaign}/recipients", "/v1/campaigns/spring/recipients?filter=opened&limit=1&from=" + day, 200},
		{"/v1/campaigns/{campaign}/recipients", "/v1/campaigns/spring/recipients?format=csv&limit=2", 200},
		{"/v1/campaigns/{campaign}/recipients", "/v1/campaigns/spring/recipients?format=ndjson&cid=acme:mail", 200},
		{"/v1/campaigns/{campaign}/recipients", "/v1/campaigns/spring/recipients?filter=opend", 400},
		{"/v1/campaigns/{campaign}/recipients", "/v1/campaigns/spring/recipients?limit=10001", 400},
		{"/v1/campaigns/{campaign}/recipients", "/v1/campaigns/spring/recipients?cursor=x1", 400},
		{"/v1/campaigns/{campaign}/recipients", "/v1/campaigns/spring/recipients?cid=globex:mail", 403},
		{"/v1/campaigns/{campaign}/recipients/{uid}", "/v1/campaigns/spring/recipients/ann", 200},
		{"/v1/campaigns/{campaign}/recipients/{uid}", "/v1/campaigns/spring/recipients/nobody", 404},
		{"/v1/campaigns/{campaign}/recipients/{uid}", "/v1/campaigns/spring/recipients/ann?by=key", 400},
		{"/v1/campaigns/{campaign}/recipients/{uid}", "/v1/campaigns/spring/recipients/ann?tenant=globex", 403},
		{"/v1/campaigns/{campaign}/links", "/v1/campaigns/spring/links?from=" + day + "&to=" + next, 200},
		{"/v1/campaigns/{campaign}/links", "/v1/campaigns/spring/links?format=csv", 200},
		{"/v1/campaigns/{campaign}/links", "/v1/campaigns/spring/links?from=" + next + "&to=" + day, 400},
		{"/v1/recipients/{uid}", "DELETE /v1/recipients/bob", 200},
		{"/v1/recipients/{uid}", "DELETE /v1/recipients/bob?by=name", 400},
		{"/v1/recipients/{uid}", "DELETE /v1/recipients/bob?tenant=globex", 403},
	}
	// check calls srv with the method and target, wants code, and checks
	// the answer against the operation of path.
	check := func(srv *Server, method, path, target string, code int) {
		req := httptest.NewRequest(method, target, nil)
		req.Header.Set("Authorization", "Bearer acme-tok")
		if path == "/v1/audit" && code != 403 {
			req.Header.Set("Authorization", "Bearer op-tok")
		}
		rec := httptest.NewRecorder()
		srv.srv.Handler.ServeHTTP(rec, req)
		if rec.Code != code {
			t.Errorf("%s %s: %d %s, want %d", method, target, rec.Code, rec.Body, code)
			return
		}
		item := doc.Paths.Find(path)
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{
				Request: req, PathParams: pathParams(path, target),
				Route: &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: item.GetOperation(method)},
			},
			Status: rec.Code, Header: rec.Header(), Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
			Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("%s %s: answer does not match openapi.yaml: %v\n%s", method, target, err, rec.Body)
		}
		// The seeded recipients and links are in the answers checked.
		if code == 200 && method == "GET" && !strings.Contains(target, "format=") {
			var lists struct {
				Recipients, Links []json.RawMessage
				Recipient         *json.RawMessage
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &lists)
			switch {
			case strings.HasSuffix(path, "/recipients") && len(lists.Recipients) == 0,
				strings.HasSuffix(path, "/links") && len(lists.Links) == 0,
				strings.HasSuffix(path, "{uid}") && lists.Recipient == nil:
				t.Errorf("GET %s: nothing listed: %s", target, rec.Body)
			}
		}
	}
	for _, c := range calls {
		method, target, ok := strings.Cut(c.target, " ")
		if !ok {
			method, target = "GET", c.target
		}
		check(s, method, c.path, target, c.code)
	}
	check(bare, "GET", "/v1/campaigns/{campaign}/recipients/{uid}", "/v1/campaigns/spring/recipients/ann", 501)
	check(bare, "DELETE", "/v1/recipients/{uid}", "/v1/recipients/ann", 501)

	// Exports carry the same numbers as the JSON answer.
	get := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer acme-tok")
		s.srv.Handler.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
		}
		return rec
	}
	var series SeriesResponse
	if err := json.Unmarshal(get("/v1/series/acme:a?granularity=day").Body.Bytes(), &series); err != nil {
		t.Fatal(err)
	}
	rec := get("/v1/series/acme:a?granularity=day&format=csv")
	rows, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+len(series.Points) || strings.Join(rows[0], ",") != "start,impressions,views,clicks,conversions,opens,custom,uniques,uniques_bound,visits" {
		t.Fatalf("series CSV %q for %d points", rows, len(series.Points))
	}
	for i, p := range series.Points {
		want := []string{p.Start, fmt.Sprint(p.Impressions), fmt.Sprint(p.Views), fmt.Sprint(p.Clicks), fmt.Sprint(p.Conversions), fmt.Sprint(p.Opens), fmt.Sprint(p.Custom), fmt.Sprint(p.Uniques), fmt.Sprint(p.UniquesBound), fmt.Sprint(p.Visits)}
		if !slices.Equal(rows[1+i], want) {
			t.Errorf("CSV row %d %q, JSON point %q", i, rows[1+i], want)
		}
	}
	today := series.Points[len(series.Points)-1]
	if today.Views != 50 || today.Visits != wantVisits.Visits {
		t.Errorf("today's point %+v, want the seeded 50 views and %d visits", today, wantVisits.Visits)
	}
	// kind=session: each point's uniques are the visitors of its visits.
	var visitSeries SeriesResponse
	if err := json.Unmarshal(get("/v1/series/acme:a?granularity=day&kind=session").Body.Bytes(), &visitSeries); err != nil {
		t.Fatal(err)
	}
	if p := visitSeries.Points[len(visitSeries.Points)-1]; visitSeries.UniquesKind != "session" || p.Visits != wantVisits.Visits || p.Uniques != wantVisits.Visitors {
		t.Errorf("series of visits: %s, today %+v, want %d visits by %d visitors", visitSeries.UniquesKind, p, wantVisits.Visits, wantVisits.Visitors)
	}
	if cd := rec.Header().Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="series-acme_a-day-human-`) || !strings.HasSuffix(cd, `.csv"`) ||
		rec.Header().Get("X-Counts-Status") != "complete" || rec.Header().Get("X-Counts-Complete-Until") == "" {
		t.Errorf("export headers %v", rec.Header())
	}
	var bd BreakdownResponse
	if err := json.Unmarshal(get("/v1/breakdowns/acme:a?dimension=device").Body.Bytes(), &bd); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(get("/v1/breakdowns/acme:a?dimension=device&format=ndjson").Body.String(), "\n"), "\n")
	if len(lines) != len(bd.Items) || len(bd.Items) == 0 {
		t.Fatalf("breakdown NDJSON %q for items %+v", lines, bd.Items)
	}
	for i, line := range lines {
		var it ShareItem
		if err := json.Unmarshal([]byte(line), &it); err != nil || it != bd.Items[i] {
			t.Errorf("NDJSON line %d %q (%v), JSON item %+v", i, line, err, bd.Items[i])
		}
	}
	if bd.Items[0] != (ShareItem{Key: "desktop", Total: 4, Uniques: 4}) {
		t.Errorf("device breakdown %+v, want desktop 4 first", bd.Items)
	}
	rows, err = csv.NewReader(get("/v1/breakdowns/acme:a?dimension=os&format=csv").Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"os", "total", "uniques", "uniques_bound"}, {"Linux", "4", "4", "0"}, {"'=HYPERLINK(1)", "3", "3", "0"}}; !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("os breakdown CSV %q, want %q (a formula-like value quoted)", rows, want)
	}

	// The numbers are the seeded ones, not just well-formed.
	var st StatsResponse
	if err := json.Unmarshal(get("/v1/stats/acme:a").Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	h := st.Human
	if h.Impressions.Total != 200 || h.Views.Total != 50 || h.Views.Uniques != 50 || h.Clicks.Total != 10 || h.Conversions.Total != 2 ||
		h.CTR != 0.05 || h.ConversionRate != 0.2 || h.Orders != 2 || h.Revenue["EUR"] != money.Of(19_500_000) || st.Bot.Views.Total != 3 || st.Bot.Reasons["ua_bot"] != 3 ||
		st.Unverified.Impressions.Total != 4 || st.Unverified.Views.Total != 0 {
		t.Errorf("stats %+v", st)
	}
	if st.Human.Visits != wantVisits || st.Bot.Visits != (VisitStats{}) {
		t.Errorf("human visits %+v, want %+v; bot visits %+v, want none", st.Human.Visits, wantVisits, st.Bot.Visits)
	}
	// kind=session: the top-level count is the visits and their visitors;
	// the views' count and reasons are unchanged by them.
	var sess StatsResponse
	if err := json.Unmarshal(get("/v1/stats/acme:a?kind=session").Body.Bytes(), &sess); err != nil {
		t.Fatal(err)
	}
	if sess.Kind != "session" || sess.Total != 8 || sess.Uniques != 6 || sess.Human.Visits != wantVisits || sess.Human.Views != st.Human.Views || len(sess.Human.Reasons) != 0 {
		t.Errorf("kind=session: %+v", sess)
	}
	if st.Freshness.Status != "complete" || st.Freshness.LagSeconds == nil || *st.Freshness.LagSeconds < 7 || *st.Freshness.LagSeconds > 60 {
		t.Errorf("freshness %+v: want complete, lag about 7 s (the slowest of 6 partitions)", st.Freshness)
	}

	// The audit adds the seeded figures up: accepted = events + dead
	// letters + missing; the minute is below the watermark, so counted.
	var au AuditResponse
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v1/audit", nil)
	req.Header.Set("Authorization", "Bearer op-tok")
	s.srv.Handler.ServeHTTP(rec, req)
	if err := json.Unmarshal(rec.Body.Bytes(), &au); err != nil {
		t.Fatal(err)
	}
	if len(au.Nodes) != 1 || au.Accepted != 8 || au.Events != 5 || au.Counted != 5 || au.DeadLettered != 1 || au.Missing != 2 ||
		len(au.Nodes[0].Missing) != 1 || au.Nodes[0].Missing[0].FromSeq != 3 || au.Nodes[0].Missing[0].ToSeq != 4 || len(au.Nodes[0].Minutes) != 1 {
		t.Errorf("audit %s", rec.Body)
	}

	// /v1/live: each data line validates against LiveEvent.
	srv := httptest.NewServer(s.srv.Handler)
	defer srv.Close()
	lreq, _ := http.NewRequest("GET", srv.URL+"/v1/live?cid=acme:a", nil)
	lreq.Header.Set("Authorization", "Bearer acme-tok")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(lreq.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("live: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var times []time.Time
	for len(times) < 3 && sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatal(err)
		}
		if err := doc.Components.Schemas["LiveEvent"].Value.VisitJSON(v); err != nil {
			t.Fatalf("live event does not match LiveEvent: %v\n%s", err, line)
		}
		var ev LiveEvent
		_ = json.Unmarshal([]byte(line), &ev)
		if ev.Contents[0].Views != 50 || ev.Contents[0].Uniques != 50 || ev.Contents[0].NonHuman != 3+4 {
			t.Fatalf("live event %s", line)
		}
		times = append(times, time.Now())
	}
	if len(times) < 3 {
		t.Fatalf("got %d live events: %v", len(times), sc.Err())
	}
	if gap := times[2].Sub(times[1]); gap > 1500*time.Millisecond {
		t.Errorf("live events %s apart, want about 1 s", gap)
	}
}

// pathParams matches target's path against the route path's segments and
// returns the values of its {parameters}.
func pathParams(path, target string) map[string]string {
	got, _, _ := strings.Cut(target, "?")
	segs := strings.Split(got, "/")
	params := map[string]string{}
	for i, seg := range strings.Split(path, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok && i < len(segs) {
			params[strings.TrimSuffix(name, "}")] = segs[i]
		}
	}
	return params
}

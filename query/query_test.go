package query

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// TestTenantOf: a content id belongs to the tenant before its first
// separator, whatever follows.
func TestTenantOf(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Tokens = map[string]string{"acme-tok": "acme"}
	s, err := New(cfg, nil, nil, counts.NewReader(hllstore.New(nil, hllstore.Config{})), nil)
	if err != nil {
		t.Fatal(err)
	}
	for cid, want := range map[string]string{"acme:a": "acme", "acme:news:a-7": "acme", "acme:": "acme", "globex:acme:a": "globex", "acme": "", ":a": ""} {
		if got := s.tenantOf(cid); got != want {
			t.Errorf("tenantOf(%q) = %q, want %q", cid, got, want)
		}
	}
}

// These requests are all answered before Redis is consulted.
func TestBadRequestsAndAuth(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Token = "tok"
	cfg.Tokens = map[string]string{"acme-tok": "acme"}
	cfg.MaxRangeDays = 31
	s, err := New(cfg, nil, nil, counts.NewReader(hllstore.New(nil, hllstore.Config{})), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, auth string
		code             int
		msg              string
	}{
		{"no token", "/v1/stats/a", "", 401, "bearer token"},
		{"wrong token", "/v1/stats/a", "Bearer nope", 401, "bearer token"},
		{"bad kind", "/v1/stats/a?kind=x", "Bearer tok", 400, "custom, session (visits)"},
		{"bad from", "/v1/stats/a?from=yesterday", "Bearer tok", 400, "YYYY-MM-DD"},
		{"bad to", "/v1/stats/a?from=2026-11-01&to=2026-13-01", "Bearer tok", 400, "bad to"},
		{"bad class", "/v1/stats/a?class=robot", "Bearer tok", 400, "bad class"},
		{"bad campaign", "/v1/campaigns/a%20b/stats", "Bearer tok", 400, "bad id"},
		{"hour range empty", "/v1/stats/a?from=2026-11-01T10:00:00Z&to=2026-11-01T10:30:00Z", "Bearer tok", 400, "empty range"},
		{"empty range", "/v1/stats/a?from=2026-11-02&to=2026-11-01", "Bearer tok", 400, "to must be after from"},
		{"range too long", "/v1/stats/a?from=2026-01-01&to=2026-11-01", "Bearer tok", 400, "limit of 31"},
		{"bad id", "/v1/stats/a%3Cb%3E", "Bearer tok", 400, "bad id"},
		{"unknown path", "/v2/whatever", "Bearer tok", 404, "GET /v1/stats"},
		{"basic auth", "/v1/stats/a", "Basic dG9rOg==", 401, "bearer token"},
		{"token prefix", "/v1/stats/a", "Bearer to", 401, "bearer token"},
		{"other tenant", "/v1/stats/globex:a", "Bearer acme-tok", 403, "outside this token's tenant"},
		{"no tenant", "/v1/stats/a", "Bearer acme-tok", 403, "outside this token's tenant"},
		{"tenant as suffix", "/v1/stats/x-acme:a", "Bearer acme-tok", 403, "outside"},
		{"other tenant series", "/v1/series/globex:a", "Bearer acme-tok", 403, "outside"},
		{"other tenant live", "/v1/live?cid=acme:a&cid=globex:b", "Bearer acme-tok", 403, "outside"},
		{"other tenant breakdown", "/v1/breakdowns/globex:a?dimension=country", "Bearer acme-tok", 403, "outside"},
		{"series no token", "/v1/series/acme:a", "", 401, "bearer token"},
		{"live no token", "/v1/live?cid=acme:a", "", 401, "bearer token"},
		{"top no token", "/v1/top", "", 401, "bearer token"},
		{"bad granularity", "/v1/series/acme:a?granularity=week", "Bearer acme-tok", 400, "use hour or day"},
		{"series bad kind", "/v1/series/acme:a?kind=likes", "Bearer acme-tok", 400, "bad kind"},
		{"live no cid", "/v1/live", "Bearer acme-tok", 400, "content ids"},
		{"live bad cid", "/v1/live?cid=a%20b", "Bearer tok", 400, "bad id"},
		{"live too many", "/v1/live?cid=" + strings.Repeat("acme:x,", 21), "Bearer acme-tok", 400, "1 to 20"},
		{"top bad by", "/v1/top?by=likes", "Bearer acme-tok", 400, "uniques or views"},
		{"top bad limit", "/v1/top?limit=1000", "Bearer acme-tok", 400, "1 to 100"},
		{"top bad range", "/v1/top?from=2026-11-02&to=2026-11-01", "Bearer acme-tok", 400, "to must be after from"},
		{"breakdown no dimension", "/v1/breakdowns/acme:a", "Bearer acme-tok", 400, "use one of country, device, browser, os, source, referrer, utm_source"},
		{"breakdown bad limit", "/v1/breakdowns/acme:a?dimension=os&limit=x", "Bearer acme-tok", 400, "whole number"},
		{"top of visits", "/v1/top?kind=session", "Bearer acme-tok", 400, "kind session: the top list does not rank visits"},
		{"breakdown of visits", "/v1/breakdowns/acme:a?dimension=landing&kind=session", "Bearer acme-tok", 400, "kind session: visits have no breakdowns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			s.srv.Handler.ServeHTTP(rec, req)
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q is not JSON: %v", rec.Body.String(), err)
			}
			if rec.Code != tc.code || !strings.Contains(body.Error, tc.msg) {
				t.Fatalf("got %d %q, want %d containing %q", rec.Code, body.Error, tc.code, tc.msg)
			}
			if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

// The dashboard and the contract are public; the data is not.
func TestPublicFiles(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Token = "tok"
	s, err := New(cfg, nil, nil, counts.NewReader(hllstore.New(nil, hllstore.Config{})), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `id="live-uniques"`},
		{"/assets/app.js", "javascript", "/v1/live?"},
		{"/assets/style.css", "text/css", "--views"},
		{"/v1/openapi.yaml", "application/yaml", "openapi: 3"},
	} {
		rec := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), tc.ctype) || !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("GET %s: %d %q, want 200 %s containing %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.ctype, tc.contains)
		}
	}
	// No page loads anything from another origin.
	rec := httptest.NewRecorder()
	s.srv.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	for _, bad := range []string{"http://", "https://", "//cdn"} {
		if strings.Contains(rec.Body.String(), bad) {
			t.Errorf("index.html references %q: assets must be embedded", bad)
		}
	}
}

// With Redis unreachable every data route, and the erasure, answers 503
// with a message that says to retry, and never the cause (an address, a
// Redis error).
func TestRedisDown(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Token = "tok"
	cfg.VisitorSecret, cfg.ErasureGrace = "s", 0
	// Port 1 on loopback: nothing listens there, so every read is refused.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	store := hllstore.New(rdb, hllstore.Config{})
	s, err := New(cfg, nil, nil, counts.NewReader(store), audit.NewReader(rdb, ""))
	if err != nil {
		t.Fatal(err)
	}
	s.SetEraser(store)
	for _, route := range []string{
		"/v1/stats/a", "/v1/campaigns/spring/stats", "/v1/series/a", "/v1/top",
		"/v1/breakdowns/a?dimension=country", "/v1/freshness",
		"/v1/campaigns/spring/recipients", "/v1/campaigns/spring/recipients/ann?tenant=acme", "/v1/campaigns/spring/links",
		"DELETE /v1/recipients/ann?tenant=acme",
	} {
		method, path, ok := strings.Cut(route, " ")
		if !ok {
			method, path = "GET", route
		}
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		rec := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(rec, req)
		var body errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: body %q is not JSON: %v", route, rec.Body.String(), err)
		}
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body.Error, "retry") && !strings.Contains(body.Error, "send it again") {
			t.Errorf("%s: %d %q, want 503 saying to retry", route, rec.Code, body.Error)
		}
		if strings.Contains(body.Error, "127.0.0.1") || strings.Contains(body.Error, "refused") {
			t.Errorf("%s: the answer leaks the cause: %q", route, body.Error)
		}
	}
}

// TestVisitStats: visits, visitors and the sums of a visit record become
// the rates of the answer; no visits, no rates (not NaN).
func TestVisitStats(t *testing.T) {
	t.Parallel()
	if got := visitStats(counts.Result{}); got != (VisitStats{}) {
		t.Errorf("no visits: %+v, want zeros", got)
	}
	r := counts.Result{Total: 8, Uniques: 6, UniquesBound: 1, Sums: map[string]uint64{
		hllstore.SumBounces: 2, hllstore.SumDurationMs: 100_000, hllstore.SumPages: 30,
	}}
	want := VisitStats{Visits: 8, Visitors: 6, VisitorsBound: 1, Bounces: 2, BounceRate: 0.25, MeanDurationS: 12.5, PagesPerVisit: 3.75}
	if got := visitStats(r); got != want {
		t.Errorf("visitStats(%+v) = %+v, want %+v", r, got, want)
	}
	// The field names the API documents.
	b, err := json.Marshal(ClassStats{Visits: want})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"visits":{"visits":8,"visitors":6,"visitors_bound":1,"bounces":2,"bounce_rate":0.25,"mean_duration_s":12.5,"pages_per_visit":3.75}`) {
		t.Errorf("JSON %s", b)
	}
}

// TestVisitKinds: stats read every event kind and visits once each; event
// totals, reasons and the live counts never include visits.
func TestVisitKinds(t *testing.T) {
	t.Parallel()
	if slices.Contains(eventKinds, pixelpb.Kind_KIND_SESSION) || len(eventKinds) < 6 {
		t.Errorf("eventKinds %v: want the event kinds, no visits", eventKinds)
	}
	seen := map[pixelpb.Kind]int{}
	for _, k := range statsKinds {
		seen[k]++
	}
	for _, k := range append(slices.Clone(counts.Kinds), pixelpb.Kind_KIND_SESSION) {
		if seen[k] != 1 {
			t.Errorf("statsKinds %v: %v %d times, want once", statsKinds, k, seen[k])
		}
	}
	if kinds["session"] != pixelpb.Kind_KIND_SESSION {
		t.Errorf("kind=session is %v", kinds["session"])
	}
}

// TestSeriesVisitsColumn: a point carries its visits, and the CSV has a
// visits column after the others; the header and a row have as many
// columns.
func TestSeriesVisitsColumn(t *testing.T) {
	t.Parallel()
	p := seriesPoint(counts.Point{Start: 0, Totals: map[pixelpb.Kind]uint64{pixelpb.Kind_KIND_VIEW: 5, pixelpb.Kind_KIND_SESSION: 3}, Uniques: 4})
	if p.Views != 5 || p.Uniques != 4 || p.Visits != 3 {
		t.Errorf("point %+v, want 5 views, 4 uniques, 3 visits", p)
	}
	if row := seriesRow(p); len(row) != len(seriesHeader) || seriesHeader[len(seriesHeader)-1] != "visits" || row[len(row)-1] != "3" {
		t.Errorf("header %q, row %q", seriesHeader, row)
	}
	if !slices.Contains(counts.Kinds, pixelpb.Kind_KIND_SESSION) {
		t.Errorf("counts.Kinds %v: series do not count visits", counts.Kinds)
	}
}

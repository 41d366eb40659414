package query

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
)

// These requests are all answered before Redis is consulted.
func TestBadRequestsAndAuth(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Token = "tok"
	cfg.MaxRangeDays = 31
	s, err := New(cfg, nil, counts.NewReader(hllstore.New(nil, hllstore.Config{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.ln.Close() })
	for _, tc := range []struct {
		name, path, auth string
		code             int
		msg              string
	}{
		{"no token", "/v1/stats/a", "", 401, "bearer token"},
		{"wrong token", "/v1/stats/a", "Bearer nope", 401, "bearer token"},
		{"bad kind", "/v1/stats/a?kind=x", "Bearer tok", 400, "bad kind"},
		{"bad from", "/v1/stats/a?from=yesterday", "Bearer tok", 400, "YYYY-MM-DD"},
		{"bad to", "/v1/stats/a?from=2026-11-01&to=2026-13-01", "Bearer tok", 400, "bad to"},
		{"bad class", "/v1/stats/a?class=robot", "Bearer tok", 400, "bad class"},
		{"bad campaign", "/v1/campaigns/a%20b/stats", "Bearer tok", 400, "bad id"},
		{"hour range empty", "/v1/stats/a?from=2026-11-01T10:00:00Z&to=2026-11-01T10:30:00Z", "Bearer tok", 400, "empty range"},
		{"empty range", "/v1/stats/a?from=2026-11-02&to=2026-11-01", "Bearer tok", 400, "to must be after from"},
		{"range too long", "/v1/stats/a?from=2026-01-01&to=2026-11-01", "Bearer tok", 400, "limit of 31"},
		{"bad id", "/v1/stats/a%3Cb%3E", "Bearer tok", 400, "bad id"},
		{"unknown path", "/v2/whatever", "Bearer tok", 404, "GET /v1/stats"},
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

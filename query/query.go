// Package query is the HTTP API and the live dashboard over the counts in
// Redis. Routes (all GET, JSON unless noted; openapi.yaml is the contract and
// is served at /v1/openapi.yaml):
//
//	/v1/stats/{cid}                    every kind and class of a content id over [from, to), and its visits
//	/v1/campaigns/{campaign}/stats     the same for a campaign (the caller's content ids only)
//	/v1/series/{cid}                   per hour or day buckets (granularity=hour|day)
//	/v1/campaigns/{campaign}/series    the same for a campaign
//	/v1/live?cid=a&cid=b               Server-Sent Events: today's counts, every second
//	/v1/top                            top content by uniques or views over a range
//	/v1/breakdowns/{cid}               by country, device, browser, OS, source, referrer, UTM, page, landing page, link or custom property
//	/v1/freshness                      the watermark alone
//	/v1/audit                          per edge node and minute: accepted, counted, dead-lettered, missing (operators)
//	/v1/campaigns/{campaign}/recipients       who opened, clicked and converted, per recipient (recipients.go)
//	/v1/campaigns/{campaign}/recipients/{uid} one recipient
//	/v1/campaigns/{campaign}/links            clicks and unique clickers per link
//	DELETE /v1/recipients/{uid}               erase a recipient's activity
//	/                                  the dashboard (embedded HTML, CSS and JS)
//
// Every answer carries a freshness watermark: the event time up to which the
// counts are complete, and the lag behind now (counts.Freshness).
//
// Authentication: bearer tokens, each scoped to a tenant (see Config.Tokens
// and Config.TenantSeparator): 401 without a known token, 403 for a content
// id of another tenant. The dashboard's static files are public; the data
// they show is not.
//
// The package reads through package counts; it writes only to erase a
// recipient's activity (DELETE /v1/recipients/{uid}, through an Eraser).
package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pixelpipe/pixelpipe/audit"
	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
	"github.com/pixelpipe/pixelpipe/schemas"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Server is the query API.
type Server struct {
	cfg    Config
	logger *slog.Logger
	reader *counts.Reader
	audit  *audit.Reader
	ln     net.Listener
	srv    *http.Server
	now    func() time.Time
	// routes lists "METHOD /pattern" of every API route, for the OpenAPI check.
	routes  []string
	live    chan struct{}
	metrics *metrics
	// keyer keys uids into recipient keys (nil without a visitor secret);
	// eraser erases them (nil: erasure answers 501).
	keyer  *visitor.Keyer
	eraser Eraser
}

// New checks cfg and prepares the API; Run listens on cfg.ListenAddr and
// serves. Its metrics go to reg (nil: none).
// It reads counts through reader and the completeness audit through
// auditReader (nil: /v1/audit answers 501).
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, reader *counts.Reader, auditReader *audit.Reader) (*Server, error) {
	// Zero values (a Config built by hand) take the defaults.
	if cfg.TenantSeparator == "" {
		cfg.TenantSeparator = ":"
	}
	if cfg.MaxLiveStreams < 1 {
		cfg.MaxLiveStreams = 256
	}
	if cfg.AuditGroup == "" {
		cfg.AuditGroup = "pixelpipe-processor"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reader.MaxRange = time.Duration(cfg.MaxRangeDays) * 24 * time.Hour
	s := &Server{cfg: cfg, logger: logger, reader: reader, audit: auditReader, now: time.Now, live: make(chan struct{}, cfg.MaxLiveStreams), keyer: newKeyer(cfg.VisitorSecret)}
	m := newMetrics(reg, s.live)
	s.metrics = m
	mux := http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) {
		s.routes = append(s.routes, pattern)
		mux.Handle(pattern, m.instrument(pattern, s.auth(h)))
	}
	api("GET /v1/stats/{cid}", s.stats)
	api("GET /v1/campaigns/{campaign}/stats", s.stats)
	api("GET /v1/series/{cid}", s.series)
	api("GET /v1/campaigns/{campaign}/series", s.series)
	api("GET /v1/live", s.liveStream)
	api("GET /v1/top", s.top)
	api("GET /v1/breakdowns/{cid}", s.breakdown)
	api("GET /v1/freshness", s.freshnessOnly)
	api("GET /v1/audit", s.auditRoute)
	api("GET /v1/campaigns/{campaign}/recipients", s.recipients)
	api("GET /v1/campaigns/{campaign}/recipients/{uid}", s.recipient)
	api("GET /v1/campaigns/{campaign}/links", s.links)
	api("DELETE /v1/recipients/{uid}", s.erase)
	s.routes = append(s.routes, "GET /v1/openapi.yaml")
	mux.HandleFunc("GET /v1/openapi.yaml", serveOpenAPI)
	mux.Handle("GET /{$}", dashboard())
	mux.Handle("GET /assets/", dashboard())
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found: the API is under /v1 (GET /v1/stats/{cid}?from=YYYY-MM-DD&to=YYYY-MM-DD; all routes in /v1/openapi.yaml), the dashboard at /")
	})
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// No WriteTimeout: /v1/live streams for as long as the client
		// listens; every other handler answers within its Redis timeouts.
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: 16 << 10,
	}
	return s, nil
}

// Addr is the address the API serves on, once serving.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run listens on cfg.ListenAddr and serves there until ctx is done (see
// Serve).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on query address %s: %w", s.cfg.ListenAddr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (which it closes) until ctx is done, then lets
// in-flight requests finish (10 s at most). Live streams end when ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.ln = ln
	errc := make(chan error, 1)
	s.srv.BaseContext = func(net.Listener) context.Context { return ctx }
	go func() { errc <- s.srv.Serve(ln) }()
	s.logger.Info("query API serving", "addr", s.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve query API on %s: %w", s.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	<-errc
	return err
}

const dayLayout = "2006-01-02"

// rangeParams reads from and to: UTC dates or RFC 3339 times; from defaults
// to the start of today, to to one day after from.
func (s *Server) rangeParams(w http.ResponseWriter, r *http.Request) (from, to time.Time, ok bool) {
	params := r.URL.Query()
	from = s.now().UTC().Truncate(24 * time.Hour)
	if v := params.Get("from"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad from "+quote(v)+": use a UTC date (YYYY-MM-DD) or an RFC 3339 time")
			return from, to, false
		}
		from = t
	}
	to = from.Add(24 * time.Hour)
	if v := params.Get("to"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad to "+quote(v)+": use a UTC date (YYYY-MM-DD) or an RFC 3339 time (exclusive)")
			return from, to, false
		}
		to = t
	}
	return from, to, true
}

func parseTime(v string) (time.Time, error) {
	if t, err := time.Parse(dayLayout, v); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, v)
}

// readErr answers a reader error: 400 for a bad query, 503 otherwise (Redis
// cannot be read; the message does not leak the cause, the log has it).
func (s *Server) readErr(w http.ResponseWriter, err error, what string) {
	switch {
	case errors.Is(err, counts.ErrBadQuery):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), counts.ErrBadQuery.Error()+": "))
	default:
		s.logger.Error("query counts", "what", what, "err", err)
		writeError(w, http.StatusServiceUnavailable, "counts are unavailable right now; retry shortly")
	}
}

var kinds = map[string]pixelpb.Kind{
	"impression": pixelpb.Kind_KIND_IMPRESSION,
	"view":       pixelpb.Kind_KIND_VIEW,
	"click":      pixelpb.Kind_KIND_CLICK,
	"conversion": pixelpb.Kind_KIND_CONVERSION,
	"open":       pixelpb.Kind_KIND_OPEN,
	"custom":     pixelpb.Kind_KIND_CUSTOM,
	// Visits: sessions with a page view, counted once they end.
	"session": pixelpb.Kind_KIND_SESSION,
}

// validID accepts ids of 1 to schemas.MaxIDLen bytes of the id byte class.
func validID(s string) bool { return s != "" && schemas.ValidID(s) }

const badIDMsg = "bad id: use 1-128 characters of A-Z a-z 0-9 . _ : -"

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return fmt.Sprintf("%q", s)
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Package query is the HTTP API over the counts in Redis:
//
//	GET /v1/stats/{cid}?from=...&to=...&kind=view&class=human
//	GET /v1/campaigns/{campaign}/stats?from=...&to=...&kind=impression
//
// answer the exact total and the estimated unique visitors (with its error
// bound) of one content id or campaign and event kind over [from, to), at
// hour resolution. from and to are UTC dates (YYYY-MM-DD) or RFC 3339 times;
// from defaults to the start of today and to to one day after from. class is
// human (default), bot or machine: machine traffic is never mixed into human
// counts. When a token is configured, requests must carry
// "Authorization: Bearer <token>".
//
// The package reads through package counts and never writes.
package query

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// Config configures the query API.
type Config struct {
	// ListenAddr is the API address, host:port. Default ":8081".
	ListenAddr string
	// Token, when set, is the bearer token every request must carry.
	Token string
	// MaxRangeDays bounds a query's range. Default 400.
	MaxRangeDays int
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{ListenAddr: ":8081", MaxRangeDays: 400}
}

// Server is the query API.
type Server struct {
	cfg    Config
	logger *slog.Logger
	reader *counts.Reader
	ln     net.Listener
	srv    *http.Server
	now    func() time.Time
}

// New binds cfg.ListenAddr; Run serves.
func New(cfg Config, logger *slog.Logger, reader *counts.Reader) (*Server, error) {
	if cfg.MaxRangeDays < 1 {
		return nil, errors.New("query.maxRangeDays must be at least 1")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on query address %s: %w", cfg.ListenAddr, err)
	}
	reader.MaxRange = time.Duration(cfg.MaxRangeDays) * 24 * time.Hour
	s := &Server{cfg: cfg, logger: logger, reader: reader, ln: ln, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stats/{cid}", s.stats)
	mux.HandleFunc("GET /v1/campaigns/{campaign}/stats", s.stats)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found: use GET /v1/stats/{cid}?from=YYYY-MM-DD&to=YYYY-MM-DD&kind=view")
	})
	s.srv = &http.Server{
		Handler:           s.auth(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is done, then lets in-flight requests finish (10 s at most).
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
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

func (s *Server) auth(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pixelpipe"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// StatsResponse is the answer of the stats routes.
type StatsResponse struct {
	ContentID string `json:"content_id,omitempty"`
	Campaign  string `json:"campaign,omitempty"`
	Kind      string `json:"kind"`
	Class     string `json:"class"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Total is the exact number of events of the kind (views for kind=view).
	Total uint64 `json:"total"`
	// Uniques is the estimated number of distinct visitors over the range;
	// the true number lies within ±UniquesBound (four standard errors).
	Uniques      uint64 `json:"uniques"`
	UniquesBound uint64 `json:"uniques_bound"`
	Exact        bool   `json:"uniques_exact"`
	// Reasons: bot and machine events per reason (class bot or machine).
	Reasons map[string]uint64 `json:"reasons,omitempty"`
	// Orders and Value: distinct orders and value per currency, in currency
	// units (kind=conversion).
	Orders uint64             `json:"orders,omitempty"`
	Value  map[string]float64 `json:"value,omitempty"`
}

const dayLayout = "2006-01-02"

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	q := counts.Query{ContentID: r.PathValue("cid"), Campaign: r.PathValue("campaign")}
	for _, id := range []string{q.ContentID, q.Campaign} {
		if id != "" && !validID(id) {
			writeError(w, http.StatusBadRequest, "bad id: use 1-128 characters of A-Z a-z 0-9 . _ : -")
			return
		}
	}
	params := r.URL.Query()
	kindName := params.Get("kind")
	if kindName == "" {
		kindName = "view"
	}
	kind, ok := kinds[kindName]
	if !ok {
		writeError(w, http.StatusBadRequest, "bad kind "+quote(kindName)+": use one of impression, view, click, conversion, open, custom")
		return
	}
	q.Kind = kind
	className := params.Get("class")
	if className == "" {
		className = "human"
	}
	if q.Class, ok = hllstore.ParseClass(className); !ok {
		writeError(w, http.StatusBadRequest, "bad class "+quote(className)+": use human, bot or machine")
		return
	}
	q.From = s.now().UTC().Truncate(24 * time.Hour)
	if v := params.Get("from"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad from "+quote(v)+": use a UTC date (YYYY-MM-DD) or an RFC 3339 time")
			return
		}
		q.From = t
	}
	q.To = q.From.Add(24 * time.Hour)
	if v := params.Get("to"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad to "+quote(v)+": use a UTC date (YYYY-MM-DD) or an RFC 3339 time (exclusive)")
			return
		}
		q.To = t
	}
	res, err := s.reader.Stats(r.Context(), q)
	switch {
	case errors.Is(err, counts.ErrBadQuery):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), counts.ErrBadQuery.Error()+": "))
		return
	case err != nil:
		s.logger.Error("query counts", "content_id", q.ContentID, "campaign", q.Campaign, "err", err)
		writeError(w, http.StatusServiceUnavailable, "counts are unavailable right now; retry shortly")
		return
	}
	out := StatsResponse{
		ContentID: q.ContentID, Campaign: q.Campaign, Kind: kindName, Class: className,
		From: q.From.UTC().Truncate(time.Hour).Format(time.RFC3339), To: q.To.UTC().Truncate(time.Hour).Format(time.RFC3339),
		Total: res.Total, Uniques: res.Uniques, UniquesBound: res.UniquesBound, Exact: res.UniquesBound == 0,
		Reasons: res.Reasons, Orders: res.Orders,
	}
	for cur, micros := range res.Value {
		if out.Value == nil {
			out.Value = map[string]float64{}
		}
		out.Value[cur] = float64(micros) / 1e6
	}
	writeJSON(w, http.StatusOK, out)
}

func parseTime(v string) (time.Time, error) {
	if t, err := time.Parse(dayLayout, v); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, v)
}

var kinds = map[string]pixelpb.Kind{
	"impression": pixelpb.Kind_KIND_IMPRESSION,
	"view":       pixelpb.Kind_KIND_VIEW,
	"click":      pixelpb.Kind_KIND_CLICK,
	"conversion": pixelpb.Kind_KIND_CONVERSION,
	"open":       pixelpb.Kind_KIND_OPEN,
	"custom":     pixelpb.Kind_KIND_CUSTOM,
}

func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("._:-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

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

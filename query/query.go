// Package query is the HTTP API over the counts in Redis:
//
//	GET /v1/stats/{cid}?from=YYYY-MM-DD&to=YYYY-MM-DD&kind=view
//
// answers the exact total and the estimated unique visitors of one content id
// and event kind over the UTC days in [from, to). from defaults to today and
// to to the day after from. When a token is configured, requests must carry
// "Authorization: Bearer <token>".
//
// The package reads through hllstore and never writes.
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
	store  *hllstore.Store
	ln     net.Listener
	srv    *http.Server
	now    func() time.Time
}

// New binds cfg.ListenAddr; Run serves.
func New(cfg Config, logger *slog.Logger, store *hllstore.Store) (*Server, error) {
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
	s := &Server{cfg: cfg, logger: logger, store: store, ln: ln, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stats/{cid}", s.stats)
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

// StatsResponse is the answer of GET /v1/stats/{cid}.
type StatsResponse struct {
	ContentID string `json:"content_id"`
	Kind      string `json:"kind"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Total is the exact number of events of the kind (views for kind=view).
	Total uint64 `json:"total"`
	// Uniques is the estimated number of distinct visitors over the range.
	Uniques uint64 `json:"uniques"`
}

const dayLayout = "2006-01-02"

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	cid := r.PathValue("cid")
	if !validID(cid) {
		writeError(w, http.StatusBadRequest, "bad content id: use 1-128 characters of A-Z a-z 0-9 . _ : -")
		return
	}
	kindName := r.URL.Query().Get("kind")
	if kindName == "" {
		kindName = "view"
	}
	kind, ok := kinds[kindName]
	if !ok {
		writeError(w, http.StatusBadRequest, "bad kind "+quote(kindName)+": use one of impression, view, click, conversion, open, custom")
		return
	}
	from := s.now().UTC().Truncate(24 * time.Hour)
	if v := r.URL.Query().Get("from"); v != "" {
		t, err := time.Parse(dayLayout, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad from "+quote(v)+": use a UTC date, YYYY-MM-DD")
			return
		}
		from = t
	}
	to := from.Add(24 * time.Hour)
	if v := r.URL.Query().Get("to"); v != "" {
		t, err := time.Parse(dayLayout, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad to "+quote(v)+": use a UTC date, YYYY-MM-DD (exclusive)")
			return
		}
		to = t
	}
	if !to.After(from) {
		writeError(w, http.StatusBadRequest, "empty range: to must be after from (to is exclusive)")
		return
	}
	if days := int(to.Sub(from) / (24 * time.Hour)); days > s.cfg.MaxRangeDays {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("range of %d days is longer than the limit of %d", days, s.cfg.MaxRangeDays))
		return
	}
	st, err := s.store.Query(r.Context(), cid, kind, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		s.logger.Error("query counts", "content_id", cid, "err", err)
		writeError(w, http.StatusServiceUnavailable, "counts are unavailable right now; retry shortly")
		return
	}
	writeJSON(w, http.StatusOK, StatsResponse{
		ContentID: cid, Kind: kindName,
		From: from.Format(dayLayout), To: to.Format(dayLayout),
		Total: st.Total, Uniques: st.Uniques,
	})
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

package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/pixelpipe/pixelpipe/edge/spool"
	"github.com/pixelpipe/pixelpipe/internal/visitor"
)

// Server is an edge node.
type Server struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	srv    *fasthttp.Server
	ln     net.Listener
	pub    *publisher
	spool  *spool.Spool
	pool   sync.Pool // *record
	keyer  *visitor.Keyer
	lanes  *lanes
	safe   *safety // redaction, rate policy, consent (safety.go)
	clock  func() time.Time

	bootMs   int64
	idPrefix uint64
	seq      atomic.Uint64
	stopping atomic.Bool

	lastSpoolLog atomic.Int64
}

// New opens and recovers the spool, binds cfg.ListenAddr and prepares the
// server and its publisher to cfg.Kafka; Run serves, and closes the spool
// and the publisher's connections when it returns.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if cfg.NodeID == "" {
		cfg.NodeID, _ = os.Hostname()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var prefix [8]byte
	if _, err := rand.Read(prefix[:]); err != nil {
		return nil, fmt.Errorf("read random event id prefix: %w", err)
	}
	sp, err := spool.Open(cfg.Spool)
	if err != nil {
		return nil, fmt.Errorf("open edge spool: %w", err)
	}
	if st := sp.Stats(); st.Records > 0 || st.CorruptTails > 0 {
		logger.Warn("spool holds hits from a previous run; delivering them first",
			"hits", st.Records, "bytes", st.Bytes, "corrupt_tails", st.CorruptTails, "corrupt_bytes", st.CorruptBytes)
	}
	ln2, err := newLanes(cfg.Spool.Dir)
	if err != nil {
		_ = sp.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		_ = sp.Close()
		return nil, fmt.Errorf("listen on edge address %s: %w", cfg.ListenAddr, err)
	}
	s := &Server{
		cfg:      cfg,
		logger:   logger,
		ln:       ln,
		spool:    sp,
		keyer:    visitor.NewKeyer(cfg.VisitorSecret),
		lanes:    ln2,
		bootMs:   time.Now().UnixMilli(),
		idPrefix: binary.BigEndian.Uint64(prefix[:]),
	}
	s.pool.New = func() any { return &record{buf: make([]byte, 0, 512)} }
	s.m = newMetrics(reg, sp)
	s.safe = newSafety(cfg, reg)
	s.pub = &publisher{cfg: cfg, prod: newProducer(cfg.Kafka, ln2), sp: sp, m: s.m, logger: logger}
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		Name:                          "pixelpipe",
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 false,
		LazyRequestTime:               true, // the handler reads it once (requestTime)
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		ReadBufferSize:                cfg.MaxHeaderBytes,
		MaxRequestBodySize:            cfg.MaxBodyBytes,
		MaxConnsPerIP:                 cfg.MaxConnsPerIP,
		Concurrency:                   cfg.MaxConns,
		DisablePreParseMultipartForm:  true,
		CloseOnShutdown:               true,
		DisableHeaderNamesNormalizing: false,
		SecureErrorLogMessage:         true,
		ErrorHandler:                  s.requestError,
		Logger:                        fasthttpLogger{logger},
	}
	return s, nil
}

// Addr is the bound pixel address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Ready reports whether the edge wants traffic: it is not shutting down and
// its spool is below the high-water mark (Kafka is keeping up, or the
// outage is still short). Wire it to /readyz.
func (s *Server) Ready() error {
	switch {
	case s.stopping.Load():
		return errors.New("shutting down")
	case !s.spool.Ready():
		return errors.New("spool above its high-water mark: Kafka is not keeping up")
	}
	return nil
}

// Run serves until ctx is done, then shuts down: it keeps answering for
// ShutdownDelay with Ready failing, stops accepting, lets in-flight requests
// finish, and delivers the spool to Kafka until it is empty or DrainTimeout
// (counted from the end of ShutdownDelay) passed. Hits not delivered by then
// stay in the spool, fsynced, for the next start.
func (s *Server) Run(ctx context.Context) error {
	stop := make(chan struct{})
	writeCtx, cancelWrites := context.WithCancel(context.Background())
	defer cancelWrites()
	// Hits are numbered by lane from the first request on when the
	// partition count is known: stored in the spool folder, or asked of
	// Kafka now (for a few seconds at most).
	s.pub.learnLanes(ctx)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		s.pub.run(stop, writeCtx)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.srv.Serve(lazyDeadlineListener{s.ln}) }()
	s.logger.Info("edge serving", "addr", s.Addr(), "node", s.cfg.NodeID)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve pixels on %s: %w", s.Addr(), err)
	}
	start := time.Now()
	s.stopping.Store(true)
	if s.cfg.ShutdownDelay > 0 {
		s.logger.Info("edge draining: still answering while load balancers notice", "delay", s.cfg.ShutdownDelay)
		time.Sleep(s.cfg.ShutdownDelay)
	}
	deadline := time.AfterFunc(s.cfg.DrainTimeout, cancelWrites)
	defer deadline.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	if serr := s.srv.ShutdownWithContext(sctx); serr != nil {
		s.logger.Warn("edge connections still open at the drain deadline", "err", serr)
	}
	cancel()
	// From here no handler can append: enter fails, and handlers that
	// entered before finish their append.
	s.pub.closed.Store(true)
	for s.pub.inflight.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-pubDone
	left := s.spool.Stats()
	if cerr := s.spool.Close(); cerr != nil {
		s.logger.Error("close spool", "err", cerr)
	}
	s.pub.prod.close()
	s.logger.Info("edge stopped", "took", time.Since(start).Round(time.Millisecond),
		"spooled_hits_left", left.Records, "spool_bytes", left.Bytes)
	return err
}

// requestError answers requests fasthttp could not read: 431 when the
// request line and headers exceed MaxHeaderBytes, 413 when the body exceeds
// MaxBodyBytes, 408 when the request did not arrive within ReadTimeout, 400
// for anything malformed (smuggling attempts included). fasthttp closes the
// connection after each of these, so nothing after a malformed request is
// read as a second request.
func (s *Server) requestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		s.m.headerTooLarge.Inc()
		ctx.Error("request line and headers too large\n", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.m.bodyTooLarge.Inc()
		ctx.Error(fmt.Sprintf("request body too large: at most %d bytes\n", s.cfg.MaxBodyBytes), fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		s.m.timedOut.Inc()
		ctx.Error("request timeout\n", fasthttp.StatusRequestTimeout)
	default:
		s.m.malformed.Inc()
		ctx.Error("malformed request\n", fasthttp.StatusBadRequest)
	}
	if string(ctx.Path()) == "/e" { // batch clients read JSON
		msg := bytes.TrimSpace(ctx.Response.Body())
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"error":` + strconv.Quote(string(msg)) + "}\n")
	}
	noCache(&ctx.Response.Header)
	ctx.SetConnectionClose()
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp", "detail", fmt.Sprintf(format, args...))
}

// logSpoolError logs a failed spool append at most once per 10 s; the
// counter carries the volume.
func (s *Server) logSpoolError(err error) {
	now := time.Now().UnixNano()
	last := s.lastSpoolLog.Load()
	if now-last < int64(10*time.Second) || !s.lastSpoolLog.CompareAndSwap(last, now) {
		return
	}
	s.logger.Error("spool append failed: hits are answered but not recorded", "err", err)
}

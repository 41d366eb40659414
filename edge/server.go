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

// Server is an edge node. New prepares it; Run (or Serve) opens its spool,
// serves, drains and closes.
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

	// opened is the spool for readers outside the serving goroutines
	// (Ready, the spool gauges): nil until Serve opened it.
	opened atomic.Pointer[spool.Spool]

	bootMs   int64
	idPrefix uint64
	seq      atomic.Uint64
	stopping atomic.Bool

	lastSpoolLog atomic.Int64
}

// New checks cfg and prepares an edge that will publish to cfg.Kafka and
// register its metrics on reg. It touches neither the disk nor the network
// and starts nothing: Run does.
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
	s := &Server{
		cfg:      cfg,
		logger:   logger,
		keyer:    visitor.NewKeyer(cfg.VisitorSecret),
		bootMs:   time.Now().UnixMilli(),
		idPrefix: binary.BigEndian.Uint64(prefix[:]),
	}
	s.pool.New = func() any { return &record{buf: make([]byte, 0, 512)} }
	s.m = newMetrics(reg, s.spoolStats)
	s.safe = newSafety(cfg, reg)
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

// open opens and recovers the spool, reads the stored partition count and
// prepares the publisher. release undoes it.
func (s *Server) open() error {
	sp, err := spool.Open(s.cfg.Spool)
	if err != nil {
		return fmt.Errorf("open edge spool: %w", err)
	}
	if st := sp.Stats(); st.Records > 0 || st.CorruptTails > 0 {
		s.logger.Warn("spool holds hits from a previous run; delivering them first",
			"hits", st.Records, "bytes", st.Bytes, "corrupt_tails", st.CorruptTails, "corrupt_bytes", st.CorruptBytes)
	}
	l, err := newLanes(s.cfg.Spool.Dir)
	if err != nil {
		_ = sp.Close()
		return err
	}
	s.spool, s.lanes = sp, l
	s.pub = &publisher{cfg: s.cfg, prod: newProducer(s.cfg.Kafka, l).withMetrics(s.m.kafka), sp: sp, m: s.m, logger: s.logger}
	s.opened.Store(sp)
	return nil
}

// release closes the spool (fsyncing it) and the publisher's connections.
func (s *Server) release() {
	if cerr := s.spool.Close(); cerr != nil {
		s.logger.Error("close spool", "err", cerr)
	}
	s.pub.prod.close()
}

// spoolStats reads the spool's figures; zero before Serve opened it.
func (s *Server) spoolStats() spool.Stats {
	if sp := s.opened.Load(); sp != nil {
		return sp.Stats()
	}
	return spool.Stats{}
}

// Addr is the address the edge serves pixels on, once serving.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Ready reports whether the edge wants traffic: it is serving, not shutting
// down, and its spool is below the high-water mark (Kafka is keeping up, or
// the outage is still short). Wire it to /readyz.
func (s *Server) Ready() error {
	sp := s.opened.Load()
	switch {
	case sp == nil:
		return errors.New("starting: the spool is not open yet")
	case s.stopping.Load():
		return errors.New("shutting down")
	case !sp.Ready():
		return errors.New("spool above its high-water mark: Kafka is not keeping up")
	}
	return nil
}

// Run opens and recovers the spool, listens on cfg.ListenAddr and serves
// there until ctx is done (see Serve).
func (s *Server) Run(ctx context.Context) error {
	if err := s.open(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.ListenAddr)
	if err != nil {
		s.release()
		return fmt.Errorf("listen on edge address %s: %w", s.cfg.ListenAddr, err)
	}
	return s.serve(ctx, ln)
}

// Serve is Run on a listener of the caller's (which it closes): it opens and
// recovers the spool, then serves pixels on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.open(); err != nil {
		_ = ln.Close()
		return err
	}
	return s.serve(ctx, ln)
}

// serve serves until ctx is done, then shuts down: it keeps answering for
// ShutdownDelay with Ready failing, stops accepting, lets in-flight requests
// finish, and delivers the spool to Kafka until it is empty or DrainTimeout
// (counted from the end of ShutdownDelay) passed. Hits not delivered by then
// stay in the spool, fsynced, for the next start.
func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	s.ln = ln
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
	go func() { serveErr <- s.srv.Serve(lazyDeadlineListener{ln}) }()
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
	s.release()
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

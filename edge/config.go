package edge

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/pixelpipe/pixelpipe/edge/spool"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// Config configures the edge.
type Config struct {
	// ListenAddr is the public pixel address, host:port. Default ":8080".
	ListenAddr string
	// NodeID names this edge in every hit it records (Origin.node_id), for
	// completeness audits. Default: the host name.
	NodeID string
	// VisitorSecret keys the visitor hashes; every edge and processor of a
	// deployment must share it. Required.
	VisitorSecret string
	// Spool is the disk spool every accepted hit is written to before its
	// answer goes out (see package spool for the durability modes). Spool.Dir
	// must be on a volume that outlives the process, and is used by one edge
	// at a time. Default dir: pixelpipe-edge-spool in the temporary folder;
	// default size 1 GiB, segments of 64 MiB, readiness failing at 80 %,
	// sync mode "write" with an fsync every second.
	Spool spool.Config
	// Kafka is where the publisher delivers the spooled hits.
	Kafka KafkaConfig
	// BatchSize is the most hits the publisher reads from the spool and
	// writes to Kafka at once; they spread over the topic's partitions, at
	// most 4000 (or 768 KiB) per produce request (make bench-publish: 8000
	// per batch cost the edge ≈20 % less CPU per hit and the broker ≈40 %
	// less than 2000). Default 8000.
	BatchSize int
	// BatchWait is how long the publisher waits to fill a batch after new
	// hits arrived. Default 5 ms.
	BatchWait time.Duration
	// ShutdownDelay is how long the server keeps answering after shutdown
	// begins, with /readyz failing, so load balancers stop sending traffic
	// first. Default 0 (set it above the readiness probe period in production).
	ShutdownDelay time.Duration
	// DrainTimeout bounds how long shutdown waits for in-flight requests and
	// for Kafka to acknowledge spooled hits; what Kafka has not acknowledged
	// by then stays in the spool for the next start. Default 20 s.
	DrainTimeout time.Duration
	// ReadTimeout, WriteTimeout and IdleTimeout bound each connection.
	// Defaults 5 s, 5 s and 60 s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line plus headers; larger requests
	// get 431. Default 8192.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body (batch POSTs); larger bodies get
	// 413 and the connection is closed. Default 65536.
	MaxBodyBytes int
	// MaxConns bounds the connections served at once; past it new
	// connections get 503 and are closed. Default 65536.
	MaxConns int
	// MaxConnsPerIP bounds concurrent connections from one client IP; 0 means
	// no limit. Default 0 (the edge usually sits behind a load balancer).
	MaxConnsPerIP int
	// TrustedProxies are the load balancers and proxies in front of the edge.
	// When the TCP peer is in one of them, the client IP is the rightmost
	// X-Forwarded-For hop that is not; otherwise it is the peer and
	// X-Forwarded-For is ignored. Default none.
	TrustedProxies []netip.Prefix
	// ClickKeys are the HMAC-SHA256 keys of signed click URLs and signed
	// pixels by key id, so
	// keys can be rotated: sign with the new id, keep the old until its links
	// expire. Default none.
	ClickKeys map[string][]byte
	// ClickAllowHosts lists per site (tenant) id the hosts a click may
	// redirect to without a signature; "*" applies to every site, and an
	// entry starting with "." allows subdomains. Default none.
	ClickAllowHosts map[string][]string
	// OptOutCookie is the name of the opt-out cookie /optout sets. Default
	// "ppoptout".
	OptOutCookie string
	// VisitorCookie names the visitor cookie the edge reads and, with
	// IssueVisitorCookie, sets. Default "ppuid".
	VisitorCookie string
	// IssueVisitorCookie sets a visitor cookie (a random 128-bit id,
	// Secure; HttpOnly; SameSite=None; VisitorCookieTTL) on answers to
	// browsers that have none, only when consent allows: never with gdpr=1
	// and no gdpr_consent, nor with Sec-GPC: 1 or DNT: 1 when honoured, nor
	// to an opted-out browser. Default false (cookieless visitors).
	IssueVisitorCookie bool
	// VisitorCookieTTL is the visitor cookie's Max-Age. Default 365 days.
	VisitorCookieTTL time.Duration
	// CookieDomain is the Domain attribute of cookies the edge sets; empty
	// means the host the request went to. Default empty.
	CookieDomain string
	// HonourGPC and HonourDNT drop the hit's identifiers (explicit id and
	// cookie) when the request carries Sec-GPC: 1 or DNT: 1; the hit is
	// still counted, cookieless. Default true and false.
	HonourGPC, HonourDNT bool
	// Pseudonymise keeps the raw hits topic free of direct identifiers: the
	// client IP is recorded cut to its network (IPv4 /24, IPv6 /48), and
	// the visitor cookie and explicit id (uid) as keyed hashes of
	// themselves ("h:" and 32 hex digits, HMAC-SHA256 under VisitorSecret),
	// so a visitor still counts once and keeps their sessions. What it
	// costs: geo lookups see the network, not the address (country and ASN
	// rarely change; city can), cookieless visitors of one network with the
	// same user agent and site become one, and downstream readers of the
	// raw topic never see the ids a sender put in its URLs. Rate limits
	// still judge the full address, which is never written. Default false.
	Pseudonymise bool
	// ConsentVendorID is this deployment's vendor id in the IAB Global
	// Vendor List. With gdpr=1, a hit has consent only when gdpr_consent is
	// a valid TCF v2 string consenting to purpose 1 (store and/or access
	// information on a device) and, when ConsentVendorID is above 0, to
	// this vendor. Default 0 (purpose 1 only).
	ConsentVendorID int
	// RateFlag is the hits per second from one client IP above which hits
	// are recorded flagged (schemas.EdgeFlagRate; the processor counts them
	// as bot traffic, reason "rate"); 0 turns flagging off. Default 200: far
	// above a browser, below a scripted flood; a carrier-grade NAT can
	// exceed it. Only public client addresses are judged: loopback, private
	// and link-local clients are proxies or internal. Behind a load
	// balancer with a public address set TrustedProxies, or every hit
	// counts against the balancer's address.
	RateFlag int
	// RateShed is the hits per second from one client IP above which hits
	// are answered as usual but not recorded
	// (pixel_edge_rate_limited_total{action="shed"}); 0 never sheds.
	// Default 10000. The estimate (edge/ratelimit) is a sliding one-second
	// window in a fixed 1 MiB table, whatever the number of clients.
	RateShed int
}

// KafkaConfig is where and how the edge publishes. Every produce request
// waits for all in-sync replicas (the spool is acknowledged only then); the
// partition of a hit is the sarama-compatible hash of its key, as kafka-go's
// Hash balancer computes it.
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string
	// Topic is the raw hits topic. Default schemas.TopicHits.
	Topic string
	// WriteTimeout bounds one produce request; a request that times out is
	// retried (from the spool). Default 10 s.
	WriteTimeout time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	sp := spool.DefaultConfig()
	sp.Dir = filepath.Join(os.TempDir(), "pixelpipe-edge-spool")
	return Config{
		ListenAddr:       ":8080",
		Spool:            sp,
		Kafka:            KafkaConfig{Topic: schemas.TopicHits, WriteTimeout: 10 * time.Second},
		BatchSize:        8000,
		BatchWait:        5 * time.Millisecond,
		DrainTimeout:     20 * time.Second,
		ReadTimeout:      5 * time.Second,
		WriteTimeout:     5 * time.Second,
		IdleTimeout:      60 * time.Second,
		MaxHeaderBytes:   8192,
		MaxBodyBytes:     64 << 10,
		MaxConns:         64 << 10,
		OptOutCookie:     "ppoptout",
		VisitorCookie:    "ppuid",
		VisitorCookieTTL: 365 * 24 * time.Hour,
		HonourGPC:        true,
		RateFlag:         200,
		RateShed:         10_000,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("edge.listenAddr is empty"))
	}
	if c.VisitorSecret == "" {
		errs = append(errs, errors.New("visitor.secret is required (shared by all edges and processors)"))
	}
	if err := c.Spool.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("edge.spool: %w", err))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("edge.batchSize must be at least 1, got %d", c.BatchSize))
	}
	if len(c.Kafka.Brokers) == 0 || c.Kafka.Topic == "" || c.Kafka.WriteTimeout <= 0 {
		errs = append(errs, errors.New("edge kafka: brokers, a topic and a positive write timeout are required"))
	}
	if c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("edge read, write and idle timeouts must be positive"))
	}
	if c.MaxHeaderBytes < 1024 {
		errs = append(errs, fmt.Errorf("edge.maxHeaderBytes must be at least 1024, got %d", c.MaxHeaderBytes))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("edge.maxBodyBytes must be at least 1024, got %d", c.MaxBodyBytes))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("edge.maxConns must be at least 1, got %d", c.MaxConns))
	}
	if !validID([]byte(c.OptOutCookie)) || c.OptOutCookie == "" {
		errs = append(errs, fmt.Errorf("edge.optOutCookie %q is not a valid cookie name", c.OptOutCookie))
	}
	if !validID([]byte(c.VisitorCookie)) || c.VisitorCookie == "" || c.VisitorCookie == c.OptOutCookie {
		errs = append(errs, fmt.Errorf("edge.visitorCookie %q is not a valid cookie name distinct from the opt-out cookie", c.VisitorCookie))
	}
	if c.IssueVisitorCookie && c.VisitorCookieTTL < time.Second {
		errs = append(errs, fmt.Errorf("edge.visitorCookieTTL must be at least 1s, got %v", c.VisitorCookieTTL))
	}
	if c.RateFlag < 0 || c.RateShed < 0 || c.RateFlag > 0 && c.RateShed > 0 && c.RateShed < c.RateFlag {
		errs = append(errs, fmt.Errorf("edge.rate.flag (%d) and edge.rate.shed (%d) must be 0 (off) or positive, shed at or above flag", c.RateFlag, c.RateShed))
	}
	if c.ConsentVendorID < 0 || c.ConsentVendorID > 65535 {
		errs = append(errs, fmt.Errorf("edge.consent.vendorID must be 0-65535, got %d", c.ConsentVendorID))
	}
	for kid, key := range c.ClickKeys {
		if len(key) < 16 {
			errs = append(errs, fmt.Errorf("edge.click.keys: key %q has %d bytes, want at least 16", kid, len(key)))
		}
	}
	return errors.Join(errs...)
}

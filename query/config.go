package query

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config configures the query API.
type Config struct {
	// ListenAddr is the API address, host:port. Default ":8081".
	ListenAddr string
	// Token, when set, is a bearer token that may read every tenant's
	// counts (an operator's token). Same as Tokens[Token] = "*".
	Token string
	// Tokens maps a bearer token to the tenant it may read; tenant "*"
	// reads all. With no Token and no Tokens, the API is open (private
	// networks only).
	Tokens map[string]string
	// TenantSeparator splits a content id into tenant and name: content id
	// "acme:article-7" belongs to tenant "acme" with the default ":". A
	// content id without the separator belongs to no tenant and only "*"
	// tokens read it. Default ":". Recipient keys are scoped to the part
	// before ":" whatever this says (the processors' rule): the recipient
	// routes need the default.
	TenantSeparator string
	// MaxRangeDays bounds a query's range. Default 400.
	MaxRangeDays int
	// LiveInterval is how often /v1/live sends counts. Default 1 s.
	LiveInterval time.Duration
	// MaxLiveStreams bounds concurrent /v1/live streams (each reads Redis
	// every LiveInterval). Default 256.
	MaxLiveStreams int
	// EventsPartitions is the partition count of pixel.events.v1: the
	// freshness watermark is "complete" only when every partition reported.
	// Default 6 (schemas.Topics); 0 disables the check.
	EventsPartitions int
	// AuditGroup is the processors' consumer group whose completeness audit
	// GET /v1/audit reads by default. Default "pixelpipe-processor".
	AuditGroup string
	// VisitorSecret, the processors' visitor secret, lets the recipient
	// routes find and erase a recipient by uid (they key it as the
	// processors do). Without it they take recipient keys only (by=key).
	VisitorSecret string
	// UIDsPseudonymised says the edges record uids as pseudonyms
	// (-edge.pseudonymise): a uid is then keyed as its pseudonym, as the
	// processors saw it. A uid holding an e-mail address or a phone number
	// is keyed so in any case (the edges always pseudonymise those).
	UIDsPseudonymised bool
	// ErasureGrace is how long an erasure waits before its second pass,
	// which removes what an aggregator wrote while the erasure was being
	// recorded: longer than an aggregator's write to Redis. Default 5 s.
	ErasureGrace time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{ListenAddr: ":8081", MaxRangeDays: 400, TenantSeparator: ":", LiveInterval: time.Second, MaxLiveStreams: 256, EventsPartitions: 6, AuditGroup: "pixelpipe-processor", ErasureGrace: 5 * time.Second}
}

// Validate reports the first setting out of its range.
func (c Config) Validate() error {
	if c.MaxRangeDays < 1 {
		return errors.New("query.maxRangeDays must be at least 1")
	}
	if c.TenantSeparator == "" {
		return errors.New("query.tenantSeparator must not be empty")
	}
	if c.LiveInterval <= 0 || c.LiveInterval > time.Second {
		return fmt.Errorf("query.liveInterval %s: use a duration above 0 and at most 1s", c.LiveInterval)
	}
	if c.ErasureGrace < 0 || c.ErasureGrace > time.Minute {
		return fmt.Errorf("query.erasureGrace %s: use 0 to 1m", c.ErasureGrace)
	}
	if c.MaxLiveStreams < 1 {
		return errors.New("query.maxLiveStreams must be at least 1")
	}
	for tok, tenant := range c.Tokens {
		if tok == "" || tenant == "" {
			return errors.New("query.tokens: every entry needs a token and a tenant (TOKEN=TENANT, tenant * for all)")
		}
		if tenant != "*" && (!validID(tenant) || strings.Contains(tenant, c.TenantSeparator)) {
			return fmt.Errorf("query.tokens: tenant %q: use characters of A-Z a-z 0-9 . _ - without the separator %q", tenant, c.TenantSeparator)
		}
	}
	return nil
}

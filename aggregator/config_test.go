package aggregator

import (
	"strings"
	"testing"
	"time"
)

// Retention must outlast every write of a day and the rollup job's reads;
// the defaults do.
func TestRetentionValidation(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		name       string
		hour, days time.Duration
		want       string // in the error; "" = valid
	}{
		{"defaults", 35 * day, 400 * day, ""},
		{"shortest hours", 8*day + time.Second, 400 * day, ""},
		{"hours end before late events", 8 * day, 400 * day, "aggregator.hourRetention 192h0m0s: must exceed a day plus aggregator.lateHorizon (192h0m0s)"},
		{"days end before their week is rolled up", 35 * day, 15 * day, "aggregator.dayRetention 360h0m0s: must exceed a week plus aggregator.lateHorizon plus aggregator.rollup.maxWait (360h0m0s)"},
		{"days shorter than hours", 100 * day, 90 * day, "aggregator.dayRetention 2160h0m0s must be at least aggregator.hourRetention 2400h0m0s"},
	} {
		cfg := DefaultConfig()
		cfg.HourRetention, cfg.DayRetention = tc.hour, tc.days
		err := cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	cfg := DefaultConfig()
	cfg.RecipientRetention = 8 * day
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "aggregator.recipientRetention 192h0m0s: must exceed a day plus aggregator.lateHorizon (192h0m0s)") {
		t.Errorf("recipient activity ends before late events: %v", err)
	}
	cfg = DefaultConfig()
	var err error
	if cfg.RecipientRetentionFor, err = ParseRetentions(" acme=720h, acme/spring:2026=4320h,globex/x=192h"); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RecipientRetentionFor) != 3 || cfg.RecipientRetentionFor["acme/spring:2026"] != 180*day {
		t.Fatalf("parsed %v", cfg.RecipientRetentionFor)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "aggregator.recipientRetentionFor globex/x=192h0m0s: must exceed") || strings.Contains(err.Error(), "acme") {
		t.Errorf("a campaign's activity ends before late events: %v", err)
	}
	for _, bad := range []string{"acme", "acme=", "acme=-1h", "=720h", "ac me=720h", "acme/=720h", "a:b=720h", "acme/x y=1h"} {
		if _, err := ParseRetentions(bad); err == nil {
			t.Errorf("ParseRetentions(%q) accepted", bad)
		}
	}
}

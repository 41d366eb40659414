package recipient

import (
	"testing"

	"github.com/pixelpipe/pixelpipe/schemas"
)

func TestRules(t *testing.T) {
	r, err := ParseRules("acme, globex/spring ,/solo")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tenant, campaign string
		want             bool
	}{
		{"acme", "", true}, {"acme", "any", true},
		{"globex", "spring", true}, {"globex", "summer", false}, {"globex", "", false},
		{"", "solo", true}, {"", "", false}, {"initech", "spring", false},
	} {
		if got := r.Allow(c.tenant, c.campaign); got != c.want {
			t.Errorf("Allow(%q, %q) = %v, want %v", c.tenant, c.campaign, got, c.want)
		}
	}
	if all, _ := ParseRules("*"); !all.Allow("anyone", "") {
		t.Error("* allows nobody")
	}
	if none, _ := ParseRules(""); none.Allow("acme", "spring") || (*Rules)(nil).Allow("acme", "") {
		t.Error("no rules allow someone")
	}
	for _, bad := range []string{"ac me", "acme/", "a/b/c", "acme/sp ring"} {
		if _, err := ParseRules(bad); err == nil {
			t.Errorf("ParseRules(%q) accepted", bad)
		}
	}
	if schemas.Tenant("acme:newsletter-42") != "acme" || schemas.Tenant("newsletter-42") != "" {
		t.Error("Tenant")
	}
}

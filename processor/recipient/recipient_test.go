package recipient

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// TestKey: a key is HMAC-SHA256 of tenant, 0, id under the secret, cut to
// 16 bytes; tenants and secrets separate keys of one id; the tenant/id
// boundary is unambiguous.
func TestKey(t *testing.T) {
	k := NewKeyer("s")
	mac := hmac.New(sha256.New, []byte("pixelpipe recipient key\x00s"))
	mac.Write([]byte("acme\x00subscriber-42"))
	want := mac.Sum(nil)[:KeySize]
	got := k.Append(nil, "acme", "subscriber-42")
	if !bytes.Equal(got, want) {
		t.Fatalf("key %x, want %x", got, want)
	}
	for _, other := range [][]byte{
		k.Append(nil, "globex", "subscriber-42"),
		k.Append(nil, "acme", "subscriber-43"),
		k.Append(nil, "acmes", "ubscriber-42"),
		NewKeyer("t").Append(nil, "acme", "subscriber-42"),
	} {
		if bytes.Equal(other, want) {
			t.Fatalf("another tenant, id or secret gives the same key %x", other)
		}
	}
}

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
	if Tenant("acme:newsletter-42") != "acme" || Tenant("newsletter-42") != "" {
		t.Error("Tenant")
	}
}

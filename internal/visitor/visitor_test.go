package visitor

import (
	"testing"

	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

const day = int64(86_400_000)

func TestKeyPreferenceAndStability(t *testing.T) {
	t.Parallel()
	k := NewKeyer("s3cret")
	t0 := int64(1_764_288_000_000) // a UTC midnight
	ip, ua, site := []byte{198, 51, 100, 7}, []byte("UA"), []byte("site")

	u1, src := k.Key(t0, site, []byte("user"), []byte("cookie"), ip, ua)
	if src != pixelpb.IdentitySource_IDENTITY_SOURCE_EXPLICIT {
		t.Fatalf("explicit id not preferred: %v", src)
	}
	u2, _ := k.Key(t0+5*day, site, []byte("user"), nil, []byte{1, 2, 3, 4}, []byte("other"))
	if u1 != u2 {
		t.Fatal("explicit-id key changes with day, IP or user agent")
	}
	c1, src := k.Key(t0, site, nil, []byte("cookie"), ip, ua)
	if src != pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIE || c1 == u1 {
		t.Fatalf("cookie: %v %x", src, c1)
	}
	a, src := k.Key(t0+1, site, nil, nil, ip, ua)
	b, _ := k.Key(t0+day-1, site, nil, nil, ip, ua)
	if src != pixelpb.IdentitySource_IDENTITY_SOURCE_COOKIELESS || a != b {
		t.Fatalf("cookieless key not stable within a day: %x %x", a, b)
	}
	c, _ := k.Key(t0+day, site, nil, nil, ip, ua)
	if c == a {
		t.Fatal("cookieless key did not rotate at midnight")
	}
	d, _ := k.Key(t0+1, site, nil, nil, []byte{198, 51, 100, 8}, ua)
	if d == a {
		t.Fatal("different IPs give the same key")
	}
	other, _ := NewKeyer("other").Key(t0+1, site, nil, nil, ip, ua)
	if other == a {
		t.Fatal("key does not depend on the secret")
	}
}

func TestFieldBoundaries(t *testing.T) {
	t.Parallel()
	k := NewKeyer("s")
	a, _ := k.Key(0, []byte("ab"), nil, nil, []byte("c"), nil)
	b, _ := k.Key(0, []byte("a"), nil, nil, []byte("bc"), nil)
	if a == b {
		t.Fatal("shifting bytes between fields gives the same key")
	}
}

package visitor

import (
	"testing"
	"time"

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

// TestMidnight uses hit times as the clock: the cookieless key rotates at
// UTC midnight, the partition key does not, and PreviousDayKey gives the
// key of the day before only within the window after midnight.
func TestMidnight(t *testing.T) {
	t.Parallel()
	k := NewKeyer("s3cret")
	midnight := int64(1_764_374_400_000) // 2025-11-29T00:00:00Z
	ip, ua, site := []byte{198, 51, 100, 7}, []byte("UA"), []byte("site")
	before, after := midnight-10*60_000, midnight+10*60_000
	kb, _ := k.Key(before, site, nil, nil, ip, ua)
	ka, _ := k.Key(after, site, nil, nil, ip, ua)
	if kb == ka {
		t.Fatal("cookieless key did not rotate at midnight")
	}
	if k.PartitionKey(before, site, nil, nil, ip, ua) != k.PartitionKey(after, site, nil, nil, ip, ua) {
		t.Fatal("partition key of a cookieless visitor changes at midnight")
	}
	if k.PartitionKey(before, site, nil, nil, ip, ua) == k.PartitionKey(before, site, nil, nil, []byte{1, 2, 3, 4}, ua) {
		t.Fatal("partition key ignores the IP")
	}
	if pk := k.PartitionKey(before, site, []byte("u"), nil, ip, ua); pk != func() uint64 { v, _ := k.Key(before, site, []byte("u"), nil, ip, ua); return v }() {
		t.Fatal("partition key of an explicit id is not its visitor key")
	}
	if got := k.PreviousDayKey(after, 30*time.Minute, site, ip, ua); got != kb {
		t.Fatalf("PreviousDayKey 10 min after midnight = %x, want yesterday's %x", got, kb)
	}
	if got := k.PreviousDayKey(midnight+31*60_000, 30*time.Minute, site, ip, ua); got != 0 {
		t.Fatalf("PreviousDayKey 31 min after midnight = %x, want 0", got)
	}
}

package redisconn

import (
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		addrs   []string
		cluster bool
		str     string
	}{
		{"127.0.0.1:6379", []string{"127.0.0.1:6379"}, false, "127.0.0.1:6379"},
		{" redis:6379 ", []string{"redis:6379"}, false, "redis:6379"},
		{"a:1,b:2, c:3", []string{"a:1", "b:2", "c:3"}, true, "a:1,b:2,c:3"},
		{"a:1,", []string{"a:1"}, false, "a:1"},
		{"redis+cluster://a:1", []string{"a:1"}, true, "redis+cluster://a:1"},
		{"redis+cluster://a:1,b:2", []string{"a:1", "b:2"}, true, "a:1,b:2"},
		{"[::1]:7000,[::1]:7001", []string{"[::1]:7000", "[::1]:7001"}, true, "[::1]:7000,[::1]:7001"},
	} {
		a, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(a.Addrs, tc.addrs) || a.Cluster != tc.cluster {
			t.Errorf("Parse(%q) = %+v, want %v cluster=%v", tc.in, a, tc.addrs, tc.cluster)
		}
		if a.String() != tc.str {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, a.String(), tc.str)
		}
		if b, err := Parse(a.String()); err != nil || !slices.Equal(b.Addrs, a.Addrs) || b.Cluster != a.Cluster {
			t.Errorf("Parse(%q) does not read back %+v: %+v, %v", a.String(), a, b, err)
		}
	}
	for _, bad := range []string{"", ",", "redis", "a:1,b", "redis://a:1", "redis+cluster://", "http://a:1"} {
		if a, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", bad, a)
		}
	}
}

func TestNew(t *testing.T) {
	single := New(Addr{Addrs: []string{"127.0.0.1:1"}}, redis.UniversalOptions{})
	defer single.Close()
	if _, ok := single.(*redis.Client); !ok {
		t.Errorf("one address: %T, want *redis.Client", single)
	}
	for _, a := range []Addr{{Addrs: []string{"127.0.0.1:1"}, Cluster: true}, {Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, Cluster: true}} {
		c := New(a, redis.UniversalOptions{})
		if _, ok := c.(*redis.ClusterClient); !ok {
			t.Errorf("%v: %T, want *redis.ClusterClient", a, c)
		}
		_ = c.Close()
	}
}

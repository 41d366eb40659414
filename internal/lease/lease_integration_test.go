//go:build integration

package lease

import (
	"context"
	"testing"
	"time"

	"github.com/pixelpipe/pixelpipe/internal/pipetest"
)

// A lease is held by one owner at a time; only the owner extends or
// releases it.
func TestLease(t *testing.T) {
	t.Parallel()
	rdb, prefix := pipetest.Redis(t)
	l := New(rdb, prefix)
	ctx := context.Background()
	must := func(ok bool, err error) bool {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !must(l.Acquire(ctx, "job", "one", time.Minute)) {
		t.Fatal("a free lease was not acquired")
	}
	// The key and its value: processes of other versions agree on them.
	if got, err := rdb.Get(ctx, prefix+":lease:job").Result(); err != nil || got != "one" || l.key("job") != prefix+":lease:job" {
		t.Fatalf("lease key %s holds %q, %v", l.key("job"), got, err)
	}
	if must(l.Acquire(ctx, "job", "two", time.Minute)) {
		t.Fatal("a held lease was acquired by another owner")
	}
	if must(l.Extend(ctx, "job", "two", time.Minute)) {
		t.Fatal("another owner extended the lease")
	}
	if !must(l.Extend(ctx, "job", "one", time.Minute)) {
		t.Fatal("the owner could not extend its lease")
	}
	if err := l.Release(ctx, "job", "two"); err != nil {
		t.Fatal(err)
	}
	if must(l.Acquire(ctx, "job", "two", time.Minute)) {
		t.Fatal("another owner released the lease")
	}
	if err := l.Release(ctx, "job", "one"); err != nil {
		t.Fatal(err)
	}
	if !must(l.Acquire(ctx, "job", "two", time.Minute)) {
		t.Fatal("a released lease was not acquired")
	}
	// A lease not extended runs out.
	if !must(l.Extend(ctx, "job", "two", 50*time.Millisecond)) {
		t.Fatal("the owner could not shorten its lease")
	}
	time.Sleep(150 * time.Millisecond)
	if !must(l.Acquire(ctx, "job", "three", time.Minute)) {
		t.Fatal("a lease that ran out was not acquired")
	}
}

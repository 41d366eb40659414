// Package lease holds named leases in Redis, so that one process at a time
// runs a job: "<prefix>:lease:<name>" holds the owner's id while its lease
// runs (SET NX PX), and only the owner extends or releases it (a script
// compares first). A lease that is not extended runs out, so a job whose
// process died is taken over after its time to live.
package lease

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Leases takes, extends and releases leases.
type Leases struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns the leases under prefix on rdb. prefix defaults to "pp", the
// default prefix of the pipeline's other keys (hllstore.Config).
func New(rdb redis.UniversalClient, prefix string) *Leases {
	if prefix == "" {
		prefix = "pp"
	}
	return &Leases{rdb: rdb, prefix: prefix}
}

var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// key returns the Redis key of the lease name.
func (l *Leases) key(name string) string { return l.prefix + ":lease:" + name }

// Acquire takes the lease name for owner for ttl, unless someone holds it;
// it reports whether owner holds it now.
func (l *Leases) Acquire(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	ok, err := l.rdb.SetNX(ctx, l.key(name), owner, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", l.key(name), err)
	}
	return ok, nil
}

// Extend sets the lease's remaining time to ttl if owner still holds it,
// and reports whether it does.
func (l *Leases) Extend(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	n, err := extendScript.Run(ctx, l.rdb, []string{l.key(name)}, owner, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("extend lease %s: %w", l.key(name), err)
	}
	return n == 1, nil
}

// Release ends owner's lease (nothing when another holds it).
func (l *Leases) Release(ctx context.Context, name, owner string) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key(name)}, owner).Err(); err != nil {
		return fmt.Errorf("release lease %s: %w", l.key(name), err)
	}
	return nil
}

package hllstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a Store.
type Config struct {
	// Prefix starts every key. Default "pp".
	Prefix string
	// HourRetention and DayRetention are how long hour and day records live
	// after their first write (their writes end within the aggregator's late
	// horizon). Defaults 35 days and 400 days.
	HourRetention, DayRetention time.Duration
	// RecipientRetention is how long a day's recipient activity lives after
	// its first write. Default 90 days. RecipientRetentionFor overrides it
	// per tenant ("acme") or campaign of a tenant ("acme/spring"; the
	// campaign's entry wins over its tenant's).
	RecipientRetention    time.Duration
	RecipientRetentionFor map[string]time.Duration
}

// Store reads and writes count records.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	hourTTL string
	dayTTL  string
	dayDur  time.Duration

	// recipientTTL is the default retention of recipient activity in
	// seconds, recipientTTLs those of RecipientRetentionFor; recipientDur is
	// the longest of them (the indexes of recipient activity live as long).
	recipientTTL  string
	recipientTTLs map[string]string
	recipientDur  time.Duration
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = "pp"
	}
	if cfg.HourRetention <= 0 {
		cfg.HourRetention = 35 * 24 * time.Hour
	}
	if cfg.DayRetention <= 0 {
		cfg.DayRetention = 400 * 24 * time.Hour
	}
	if cfg.RecipientRetention <= 0 {
		cfg.RecipientRetention = 90 * 24 * time.Hour
	}
	seconds := func(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
	ttls, longest := map[string]string{}, cfg.RecipientRetention
	for k, d := range cfg.RecipientRetentionFor {
		ttls[k] = seconds(d)
		longest = max(longest, d)
	}
	return &Store{
		rdb: rdb, prefix: cfg.Prefix,
		recipientTTL: seconds(cfg.RecipientRetention), recipientTTLs: ttls,
		recipientDur: longest,
		hourTTL:      strconv.FormatInt(int64(cfg.HourRetention/time.Second), 10),
		dayTTL:       strconv.FormatInt(int64(cfg.DayRetention/time.Second), 10),
		dayDur:       cfg.DayRetention,
	}
}

// recordFields are the fields of one record that readers need.
var recordFields = [...]string{fieldCount, "r", fieldSums, "v", "oc"}

// Load reads the counts of keys in one round trip: one HMGET per Redis
// hash of the fields those records need (not HGETALL: a day hash also holds
// the other kinds and classes, and campaigns). A key with no record gives
// an empty Count. Counts carry their day's version. A week rollup
// (GranularityWeek) comes with the versions of its seven days, in the same
// round trip; one that is missing or stale (a day written since it was
// built) is built from the days (BuildWeeks) and stored.
func (s *Store) Load(ctx context.Context, keys []Key) ([]Count, error) {
	type group struct {
		key    string // the Redis hash
		fields []string
		slots  []int // key index per record in fields order
		guard  bool  // a day or week hash: ver comes first
		week   bool  // a week rollup
		cid    string
		start  int64
	}
	groups := map[string]*group{}
	var order []string
	for i, k := range keys {
		var hk, fp string // the hash, and the prefix of the key's fields in it
		var id RecordID
		week := k.Gran == GranularityWeek
		if week {
			hk = s.weekKey(k.ContentID, k.Start)
			id = RecordID{Campaign: k.Campaign, Kind: k.Kind, Class: k.Class, Hour: DayRecord}
		} else {
			var dk DayKey
			dk, id = k.Split()
			d, h, _ := s.DayRedisKeys(dk)
			hk, fp = d, DayField(dk)
			if id.Hour != DayRecord {
				hk = h
			}
		}
		// One HMGET per hash and content id: a group hash holds the days of
		// other content ids too, each with its own version.
		gk := hk + "\x00" + fp
		g := groups[gk]
		if g == nil {
			g = &group{key: hk, guard: week || id.Hour == DayRecord, week: week, cid: k.ContentID, start: k.Start}
			if week {
				g.fields = append(g.fields, fieldVersion)
			} else if g.guard {
				g.fields = append(g.fields, fp+fieldGuard)
			}
			if week {
				g.fields = append(g.fields, fieldDayVersions)
			}
			groups[gk] = g
			order = append(order, gk)
		}
		r := rid(id)
		for _, f := range recordFields {
			g.fields = append(g.fields, fp+f+"|"+r)
		}
		g.slots = append(g.slots, i)
	}
	cmds := make([]*redis.SliceCmd, len(order))
	dayVers := make([][7]*redis.SliceCmd, len(order)) // of week rollups
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, hk := range order {
			g := groups[hk]
			cmds[i] = p.HMGet(ctx, g.key, g.fields...)
			if g.week {
				dayVers[i] = s.dayVersions(ctx, p, weekRef{g.cid, g.start})
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load %d count records: %w", len(keys), err)
	}
	out := make([]Count, len(keys))
	for i := range out {
		out[i] = NewCount()
	}
	// Week rollups not built yet, or built before one of their days was
	// written again (stale: their "dv" is not the days' versions now), are
	// built now from their days.
	rebuild := make([]bool, len(order))
	toBuild := map[string][]*group{} // by content id
	for i, hk := range order {
		g := groups[hk]
		if !g.week {
			continue
		}
		if vals := cmds[i].Val(); len(vals) < 2 || vals[0] == nil || vals[1] != versionsOf(&dayVers[i]) {
			rebuild[i] = true
			toBuild[g.cid] = append(toBuild[g.cid], g)
		}
	}
	for cid, gs := range toBuild {
		weeks := make([]int64, len(gs))
		for j, g := range gs {
			weeks[j] = g.start
		}
		built, err := s.BuildWeeks(ctx, cid, weeks)
		if err != nil {
			return nil, err
		}
		for j, g := range gs {
			for _, ki := range g.slots {
				k := keys[ki]
				id := RecordID{Campaign: k.Campaign, Kind: k.Kind, Class: k.Class, Hour: DayRecord}
				if r := built[j][id]; r != nil {
					out[ki] = *r
				}
			}
		}
	}
	// Decode in parallel: over a long range, unmarshaling dense sketches is
	// most of a read's time. Each group fills its own records.
	decode := func(i int) error {
		hk := order[i]
		g := groups[hk]
		vals := cmds[i].Val()
		if rebuild[i] {
			return nil // built above
		}
		if len(vals) != len(g.fields) {
			return fmt.Errorf("load %s: %d values for %d fields", g.key, len(vals), len(g.fields))
		}
		var ver uint64
		if g.guard {
			if v, ok := vals[0].(string); ok {
				if !g.week {
					v = guardVersion(v)
				}
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return fmt.Errorf("load %s: %w: version %q", g.key, ErrCorrupt, v)
				}
				ver = n
			}
			vals = vals[1:]
		}
		if g.week {
			vals = vals[1:] // dv, checked above
		}
		for j, ki := range g.slots {
			r := &out[ki]
			found := false
			for f, name := range recordFields {
				v, ok := vals[j*len(recordFields)+f].(string)
				if !ok {
					continue
				}
				found = true
				if err := r.decodeField(name, v); err != nil {
					return fmt.Errorf("load %s: %w", g.key, err)
				}
			}
			if found {
				r.Version = max(ver, 1)
			}
		}
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), (len(order)+7)/8)
	errs := make([]error, max(workers, 1))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(order); i += workers {
				if err := decode(i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// CampaignContents returns the content ids that campaign had hits on in the
// UTC day starting at dayStart.
func (s *Store) CampaignContents(ctx context.Context, campaign string, dayStart int64) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.campaignIndexKey(campaign, dayStart)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read campaign index of %s: %w", campaign, err)
	}
	return ids, nil
}

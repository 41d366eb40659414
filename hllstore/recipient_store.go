package hllstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/schemas"
)

// recipientBase is the start of the keys of dk's recipients of campaign.
func (s *Store) recipientBase(dk DayKey, campaign string) string {
	return s.groupBase(dk) + dk.ContentID + ":r:" + campaign + ":"
}

// recipientBucketKey is the hash of bucket b of dk's recipients of campaign.
func (s *Store) recipientBucketKey(dk DayKey, campaign string, b int) string {
	return s.recipientBase(dk, campaign) + groupName(uint32(b))
}

// linksKey is the hash of dk's links of campaign.
func (s *Store) linksKey(dk DayKey, campaign string) string {
	return s.groupBase(dk) + dk.ContentID + ":l:" + campaign
}

// clickersKey is the hash of the recipients of bucket b who clicked dk's
// links of campaign.
func (s *Store) clickersKey(dk DayKey, campaign string, b int) string {
	return s.groupBase(dk) + dk.ContentID + ":k:" + campaign + ":" + groupName(uint32(b))
}

// tenantIndexKey names where tenant's recipients have activity.
func (s *Store) tenantIndexKey(tenant string) string { return s.prefix + ":rt:" + tenant }

// tenantIndexEntry is the entry of dk's activity of campaign in its
// tenant's index: "<yyyymmdd>|<content>|<campaign>".
func tenantIndexEntry(dk DayKey, campaign string) string {
	return time.UnixMilli(dk.DayStart).UTC().Format("20060102") + "|" + dk.ContentID + "|" + campaign
}

// recipientRetention is the retention in seconds of content id cid's
// activity of campaign (Config.RecipientRetentionFor).
func (s *Store) recipientRetention(cid, campaign string) string {
	if len(s.recipientTTLs) == 0 {
		return s.recipientTTL
	}
	t := schemas.Tenant(cid)
	if v, ok := s.recipientTTLs[t+"/"+campaign]; ok {
		return v
	}
	if v, ok := s.recipientTTLs[t]; ok {
		return v
	}
	return s.recipientTTL
}

// recipientArgs appends the recipient section of one day of a
// saveDaysScript call: the keys it writes to keys, their arguments to args
// (encoded activities into buf).
func (s *Store) recipientArgs(buf *argBuf, args []any, keys []string, w DayWrite) ([]any, []string) {
	d := w.Day
	if len(d.recipients) == 0 {
		return args, keys
	}
	type bucket struct {
		campaign string
		b        int
	}
	byBucket := map[bucket][]recipientRef{}
	links := map[string]map[string]*linkTotal{} // by campaign and link id
	for ref, a := range d.recipients {
		bk := bucket{ref.campaign, ref.key.Bucket()}
		byBucket[bk] = append(byBucket[bk], ref)
		if len(a.dests) == 0 {
			continue
		}
		ls := links[ref.campaign]
		if ls == nil {
			ls = map[string]*linkTotal{}
			links[ref.campaign] = ls
		}
		for id, l := range a.dests {
			t := ls[id]
			if t == nil {
				t = &linkTotal{dest: l.dest}
				ls[id] = t
			}
			t.machine += l.machine
			if n := a.Clicks[id]; n > 0 {
				t.clicks += n
				t.clickers = append(t.clickers, ref.key)
			}
		}
	}
	for bk, refs := range byBucket {
		keys = append(keys, s.recipientBucketKey(w.Key, bk.campaign, bk.b))
		args = append(args, "m", len(refs), s.recipientRetention(w.Key.ContentID, bk.campaign))
		for _, ref := range refs {
			n := len(buf.bytes)
			buf.bytes = append(buf.bytes, ref.key[:]...)
			buf.bytes = encodeActivity(buf.bytes, d.recipients[ref])
			b := buf.bytes[n:len(buf.bytes):len(buf.bytes)]
			args = append(args, b[:RecipientKeySize], b[RecipientKeySize:])
		}
	}
	for campaign, ls := range links {
		ttl := s.recipientRetention(w.Key.ContentID, campaign)
		keys = append(keys, s.linksKey(w.Key, campaign))
		at := len(args)
		args = append(args, "l", 0, ttl)
		clickers := 0
		for id, t := range ls {
			args = append(args, "d|"+id, t.dest)
			if t.clicks > 0 {
				args = append(args, "n|"+id, t.clicks)
			}
			if t.machine > 0 {
				args = append(args, "m|"+id, t.machine)
			}
			clickers += len(t.clickers)
		}
		args[at+1] = (len(args) - at - 3) / 2
		if clickers == 0 {
			continue
		}
		byBucket := map[int][]any{}
		for id, t := range ls {
			for _, k := range t.clickers {
				byBucket[k.Bucket()] = append(byBucket[k.Bucket()], "u|"+id+"|"+string(k[:]), "1")
			}
		}
		for b, fields := range byBucket {
			keys = append(keys, s.clickersKey(w.Key, campaign, b))
			args = append(append(args, "l", len(fields)/2, ttl), fields...)
		}
	}
	return args, keys
}

// linkTotal sums one link's change over a day's pending recipients.
type linkTotal struct {
	dest            string
	clicks, machine uint64
	clickers        []RecipientKey
}

// rindex is a day's campaign with recipient activity.
type rindex struct {
	d        *Day
	dk       DayKey
	campaign string
}

// toIndex returns the days' campaigns with pending recipient activity that
// their holders have not added to their tenants' indexes yet.
func toIndex(writes []DayWrite) []rindex {
	var out []rindex
	for _, w := range writes {
		for ref := range w.Day.recipients {
			ri := rindex{w.Day, w.Key, ref.campaign}
			if !w.Day.rindexed[ref.campaign] && !slices.Contains(out, ri) {
				out = append(out, ri)
			}
		}
	}
	return out
}

// ReadRecipients reads buckets [from, to) of campaign's recipients on days
// (content ids and days of the campaign, as the campaign index gives them)
// in one round trip, merged per recipient over the days.
func (s *Store) ReadRecipients(ctx context.Context, campaign string, days []DayKey, from, to int) (map[RecipientKey]*Activity, error) {
	from, to = max(from, 0), min(to, RecipientBuckets)
	cmds := make([]*redis.MapStringStringCmd, 0, len(days)*max(to-from, 0))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, dk := range days {
			for b := from; b < to; b++ {
				cmds = append(cmds, p.HGetAll(ctx, s.recipientBucketKey(dk, campaign, b)))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read recipients of campaign %s: %w", campaign, err)
	}
	out := map[RecipientKey]*Activity{}
	for _, c := range cmds {
		for f, v := range c.Val() {
			if err := mergeStored(out, f, v); err != nil {
				return nil, fmt.Errorf("read recipients of campaign %s: %w", campaign, err)
			}
		}
	}
	return out, nil
}

// mergeStored merges the stored activity v of field f (a recipient key)
// into out.
func mergeStored(out map[RecipientKey]*Activity, f, v string) error {
	if len(f) != RecipientKeySize {
		return fmt.Errorf("%w: recipient field of %d bytes", ErrCorrupt, len(f))
	}
	a, ok := decodeActivity(v)
	if !ok {
		return fmt.Errorf("%w: recipient activity %q", ErrCorrupt, v)
	}
	k := RecipientKey([]byte(f))
	if cur := out[k]; cur != nil {
		cur.Merge(&a)
	} else {
		out[k] = &a
	}
	return nil
}

// ReadRecipient reads the activity of the recipients keys of campaign on
// days, merged per recipient (absent: none).
func (s *Store) ReadRecipient(ctx context.Context, campaign string, days []DayKey, keys ...RecipientKey) (map[RecipientKey]*Activity, error) {
	type get struct {
		cmd *redis.StringCmd
		key RecipientKey
	}
	var gets []get
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, dk := range days {
			for _, k := range keys {
				gets = append(gets, get{p.HGet(ctx, s.recipientBucketKey(dk, campaign, k.Bucket()), string(k[:])), k})
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read recipient of campaign %s: %w", campaign, err)
	}
	out := map[RecipientKey]*Activity{}
	for _, g := range gets {
		v, err := g.cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err := mergeStored(out, string(g.key[:]), v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Link is a campaign's link: its destination, a person's clicks, a
// machine's, and the recipients who clicked it (distinct over the days).
type Link struct {
	ID, Destination       string
	Clicks, MachineClicks uint64
	Clickers              uint64
}

// CampaignLinks reads campaign's links on days, summed over the days,
// ordered by clicks (most first), then destination; with clickers, their
// distinct clickers too (else Clickers is 0: the destinations and clicks
// alone read a few fields per link, the clickers one per clicker).
func (s *Store) CampaignLinks(ctx context.Context, campaign string, days []DayKey, clickers bool) ([]Link, error) {
	cmds := make([]*redis.MapStringStringCmd, 0, len(days))
	var who []*redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, dk := range days {
			cmds = append(cmds, p.HGetAll(ctx, s.linksKey(dk, campaign)))
			for b := 0; clickers && b < RecipientBuckets; b++ {
				who = append(who, p.HKeys(ctx, s.clickersKey(dk, campaign, b)))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read links of campaign %s: %w", campaign, err)
	}
	links := map[string]*Link{}
	byLink := map[string]map[string]struct{}{}
	link := func(id string) *Link {
		l := links[id]
		if l == nil {
			l = &Link{ID: id}
			links[id] = l
		}
		return l
	}
	for _, c := range cmds {
		for f, v := range c.Val() {
			kind, rest, ok := strings.Cut(f, "|")
			if !ok {
				continue
			}
			switch kind {
			case "d":
				link(rest).Destination = v
			case "n", "m":
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%w: link count %q", ErrCorrupt, v)
				}
				if kind == "n" {
					link(rest).Clicks += n
				} else {
					link(rest).MachineClicks += n
				}
			}
		}
	}
	for _, c := range who {
		for _, f := range c.Val() {
			id, key, ok := strings.Cut(strings.TrimPrefix(f, "u|"), "|")
			if !ok {
				continue
			}
			if byLink[id] == nil {
				byLink[id] = map[string]struct{}{}
			}
			byLink[id][key] = struct{}{}
		}
	}
	out := make([]Link, 0, len(links))
	for id, l := range links {
		l.Clickers = uint64(len(byLink[id]))
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b Link) int {
		if a.Clicks != b.Clicks {
			if a.Clicks > b.Clicks {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Destination, b.Destination)
	})
	return out, nil
}

// CampaignClickers returns the distinct recipients of buckets [from, to)
// who clicked a link of campaign on days (a person's clicks), in key order:
// the clickers hashes are an index of them, read without reading every
// recipient.
func (s *Store) CampaignClickers(ctx context.Context, campaign string, days []DayKey, from, to int) ([]RecipientKey, error) {
	from, to = max(from, 0), min(to, RecipientBuckets)
	cmds := make([]*redis.StringSliceCmd, 0, len(days)*max(to-from, 0))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, dk := range days {
			for b := from; b < to; b++ {
				cmds = append(cmds, p.HKeys(ctx, s.clickersKey(dk, campaign, b)))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read clickers of campaign %s: %w", campaign, err)
	}
	seen := map[RecipientKey]struct{}{}
	for _, c := range cmds {
		for _, f := range c.Val() {
			if len(f) < RecipientKeySize {
				return nil, fmt.Errorf("%w: clicker field of %d bytes", ErrCorrupt, len(f))
			}
			seen[RecipientKey([]byte(f[len(f)-RecipientKeySize:]))] = struct{}{}
		}
	}
	out := make([]RecipientKey, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b RecipientKey) int { return bytes.Compare(a[:], b[:]) })
	return out, nil
}

// Erasures. EraseRecipient first records the erasure in
// "<prefix>:erased" (recipient key -> erasure time in ms) and moves
// "<prefix>:erased:v" on; aggregators read the version before each write
// with recipient activity (Erasures) and drop what they hold of an erased
// recipient from events received before its erasure. Then it deletes the
// recipient's activity from every day and campaign its tenant's index names.

func (s *Store) erasedKey() string  { return s.prefix + ":erased" }
func (s *Store) erasedVKey() string { return s.prefix + ":erased:v" }

// EraseRecipient removes the activity of recipient key (of tenant) from
// every day of the tenant's index and returns the number of recipient
// records removed. The erasure is recorded first (Erasures): aggregators
// leave out the recipient's activity from events received before atMs,
// also what they hold unwritten. Calling it again is harmless (a second
// pass removes what an aggregator wrote in the moment between reading the
// erasures and writing).
func (s *Store) EraseRecipient(ctx context.Context, tenant string, key RecipientKey, atMs int64) (removed int, err error) {
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.erasedKey(), string(key[:]), atMs)
		p.Expire(ctx, s.erasedKey(), s.recipientDur)
		p.Incr(ctx, s.erasedVKey())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record erasure: %w", err)
	}
	entries, err := s.rdb.SMembers(ctx, s.tenantIndexKey(tenant)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("read recipient index of tenant %q: %w", tenant, err)
	}
	type place struct {
		dk       DayKey
		campaign string
	}
	var places []place
	for _, e := range entries {
		day, rest, ok1 := strings.Cut(e, "|")
		cid, campaign, ok2 := strings.Cut(rest, "|")
		t, err := time.Parse("20060102", day)
		if !ok1 || !ok2 || err != nil {
			continue
		}
		places = append(places, place{DayKey{ContentID: cid, DayStart: t.UnixMilli()}, campaign})
	}
	// The recipient's activity names the links it clicked: their clicker
	// fields go too.
	field := string(key[:])
	vals := make([]*redis.StringCmd, len(places))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, pl := range places {
			vals[i] = p.HGet(ctx, s.recipientBucketKey(pl.dk, pl.campaign, key.Bucket()), field)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("read recipient for erasure: %w", err)
	}
	dels := make([]*redis.IntCmd, 0, len(places))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, pl := range places {
			v, err := vals[i].Result()
			if err != nil {
				continue
			}
			dels = append(dels, p.HDel(ctx, s.recipientBucketKey(pl.dk, pl.campaign, key.Bucket()), field))
			a, _ := decodeActivity(v)
			for id := range a.Clicks {
				p.HDel(ctx, s.clickersKey(pl.dk, pl.campaign, key.Bucket()), "u|"+id+"|"+field)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("erase recipient: %w", err)
	}
	for _, d := range dels {
		removed += int(d.Val())
	}
	return removed, nil
}

// Erasures returns the erased recipients and their erasure times when the
// erasure version moved on from version (else erased is nil), and the
// current version.
func (s *Store) Erasures(ctx context.Context, version int64) (next int64, erased map[RecipientKey]int64, err error) {
	next, err = s.rdb.Get(ctx, s.erasedVKey()).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil, nil
	}
	if err != nil {
		return version, nil, fmt.Errorf("read erasure version: %w", err)
	}
	if next == version {
		return next, nil, nil
	}
	all, err := s.rdb.HGetAll(ctx, s.erasedKey()).Result()
	if err != nil {
		return version, nil, fmt.Errorf("read erasures: %w", err)
	}
	erased = make(map[RecipientKey]int64, len(all))
	for f, v := range all {
		ms, err := strconv.ParseInt(v, 10, 64)
		if len(f) != RecipientKeySize || err != nil {
			continue
		}
		erased[RecipientKey([]byte(f))] = ms
	}
	return next, erased, nil
}

// CampaignDays returns the content ids of campaign on each UTC day of
// dayStarts (the campaign index, CampaignContents) in one round trip.
func (s *Store) CampaignDays(ctx context.Context, campaign string, dayStarts []int64) ([]DayKey, error) {
	cmds := make([]*redis.StringSliceCmd, len(dayStarts))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range dayStarts {
			cmds[i] = p.SMembers(ctx, s.campaignIndexKey(campaign, d))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read campaign index of %s: %w", campaign, err)
	}
	var out []DayKey
	for i, d := range dayStarts {
		ids := cmds[i].Val()
		slices.Sort(ids)
		for _, id := range ids {
			out = append(out, DayKey{ContentID: id, DayStart: d})
		}
	}
	return out, nil
}

package counts

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas"
)

// RecipientScope selects a campaign's recipient activity: the UTC days
// that overlap [From, To) (activity is stored per day of its content id),
// on the campaign's content ids that Allow accepts, or on ContentID alone.
type RecipientScope struct {
	Campaign  string
	ContentID string
	From, To  time.Time
	Allow     func(contentID string) bool
}

// RecipientFilter selects recipients by what they did.
type RecipientFilter uint8

// Recipient filters: every recipient; those a person opened, clicked or
// converted for; those only machines opened or clicked for; those with no
// person's open, click or conversion (machine-only ones and those seen
// only in page views).
const (
	AllRecipients RecipientFilter = iota
	Opened
	Clicked
	Converted
	MachineOnly
	NoneOfThese
)

// RecipientFilters names the filters (the API's filter parameter).
var RecipientFilters = map[string]RecipientFilter{
	"": AllRecipients, "all": AllRecipients, "opened": Opened, "clicked": Clicked,
	"converted": Converted, "machine-only": MachineOnly, "none": NoneOfThese,
}

// Match reports whether a passes f.
func (f RecipientFilter) Match(a *hllstore.Activity) bool {
	switch f {
	case Opened:
		return a.Opens > 0
	case Clicked:
		return len(a.Clicks) > 0
	case Converted:
		return len(a.Orders) > 0 || a.Conversions > 0
	case MachineOnly:
		return a.MachineOnly()
	case NoneOfThese:
		return !a.Human()
	}
	return true
}

// RecipientRow is one recipient's activity over a scope.
type RecipientRow struct {
	Key hllstore.RecipientKey
	hllstore.Activity
}

// RecipientPage is a page of recipients in key order.
type RecipientPage struct {
	Recipients []RecipientRow
	// Next is the cursor of the next page, "" after the last.
	Next string
}

// maxPageReads bounds the stored recipient records one page reads: a page
// with a selective filter ends early (with a cursor) rather than read a
// whole large campaign.
const maxPageReads = 200_000

// days lists the content ids and days holding sc's activity.
func (r *Reader) recipientDays(ctx context.Context, sc RecipientScope) ([]hllstore.DayKey, error) {
	from, to := sc.From.UTC().Truncate(24*time.Hour), sc.To.UTC()
	switch {
	case sc.Campaign == "":
		return nil, fmt.Errorf("%w: a campaign is required", ErrBadQuery)
	case !to.After(from):
		return nil, fmt.Errorf("%w: empty range: to must be after from", ErrBadQuery)
	case to.Sub(from) > r.MaxRange:
		return nil, fmt.Errorf("%w: range of %.1f days is longer than the limit of %.0f days", ErrBadQuery, to.Sub(from).Hours()/24, r.MaxRange.Hours()/24)
	}
	var starts []int64
	for d := from; d.Before(to); d = d.Add(24 * time.Hour) {
		starts = append(starts, d.UnixMilli())
	}
	days, err := r.store.CampaignDays(ctx, sc.Campaign, starts)
	if err != nil {
		return nil, err
	}
	kept := days[:0]
	for _, dk := range days {
		if (sc.ContentID != "" && dk.ContentID == sc.ContentID) || (sc.ContentID == "" && (sc.Allow == nil || sc.Allow(dk.ContentID))) {
			kept = append(kept, dk)
		}
	}
	return kept, nil
}

// Recipients returns up to limit recipients of sc that pass filter, in
// key order, from cursor ("" for the first page; a page's Next after).
// A page reads whole buckets of recipients (hllstore.RecipientBuckets per
// campaign, by key; with Clicked, the clickers of the buckets, from their
// index) from every day of the scope: one bucket first, then as
// many per round trip as should fill the page at the density seen so far;
// it ends at limit or after maxPageReads records read (a page may hold
// fewer than limit with more to come).
func (r *Reader) Recipients(ctx context.Context, sc RecipientScope, filter RecipientFilter, cursor string, limit int) (RecipientPage, error) {
	bucket, after, err := parseCursor(cursor)
	if err != nil {
		return RecipientPage{}, err
	}
	days, err := r.recipientDays(ctx, sc)
	if err != nil {
		return RecipientPage{}, err
	}
	var page RecipientPage
	if len(days) == 0 {
		return page, nil
	}
	read := func(from, to int) (map[hllstore.RecipientKey]*hllstore.Activity, error) {
		return r.store.ReadRecipients(ctx, sc.Campaign, days, from, to)
	}
	if filter == Clicked {
		// The clickers' index names them: only they are read.
		read = func(from, to int) (map[hllstore.RecipientKey]*hllstore.Activity, error) {
			keys, err := r.store.CampaignClickers(ctx, sc.Campaign, days, from, to)
			if err != nil || len(keys) == 0 {
				return nil, err
			}
			return r.store.ReadRecipient(ctx, sc.Campaign, days, keys...)
		}
	}
	chunk, reads := 1, 0
	for bucket < hllstore.RecipientBuckets {
		end := min(bucket+chunk, hllstore.RecipientBuckets)
		got, err := read(bucket, end)
		if err != nil {
			return RecipientPage{}, err
		}
		reads += len(got)
		rows := make([]RecipientRow, 0, len(got))
		for k, a := range got {
			if after != nil && bytes.Compare(k[:], after[:]) <= 0 {
				continue
			}
			if filter.Match(a) {
				rows = append(rows, RecipientRow{Key: k, Activity: *a})
			}
		}
		slices.SortFunc(rows, func(a, b RecipientRow) int { return bytes.Compare(a.Key[:], b.Key[:]) })
		if room := limit - len(page.Recipients); len(rows) >= room {
			page.Recipients = append(page.Recipients, rows[:room]...)
			if len(rows) > room || end < hllstore.RecipientBuckets {
				last := page.Recipients[len(page.Recipients)-1].Key
				if len(rows) == room {
					page.Next = formatCursor(end, nil)
				} else {
					page.Next = formatCursor(last.Bucket(), &last)
				}
			}
			return page, nil
		}
		page.Recipients = append(page.Recipients, rows...)
		bucket, after = end, nil
		if reads >= maxPageReads && bucket < hllstore.RecipientBuckets {
			page.Next = formatCursor(bucket, nil)
			return page, nil
		}
		// Read as many buckets next as should fill the page, by the
		// recipients per bucket so far (at most 64 per round trip).
		need := limit - len(page.Recipients)
		perBucket := float64(len(got)) / float64(chunk)
		chunk = 64
		if perBucket > 0 {
			chunk = max(1, min(64, int(float64(need)/perBucket)+1))
		}
	}
	return page, nil
}

// formatCursor is "<bucket>" or "<bucket>.<key>": the next page starts at
// bucket, after key when given.
func formatCursor(bucket int, after *hllstore.RecipientKey) string {
	s := strconv.Itoa(bucket)
	if after != nil {
		s += "." + after.String()
	}
	return s
}

func parseCursor(c string) (int, *hllstore.RecipientKey, error) {
	if c == "" {
		return 0, nil, nil
	}
	bs, ks, hasKey := strings.Cut(c, ".")
	b, err := strconv.Atoi(bs)
	if err != nil || b < 0 || b > hllstore.RecipientBuckets {
		return 0, nil, fmt.Errorf("%w: bad cursor %q: pass the next cursor of the previous page", ErrBadQuery, c)
	}
	if !hasKey {
		return b, nil, nil
	}
	k, ok := hllstore.ParseRecipientKey(ks)
	if !ok || k.Bucket() != b {
		return 0, nil, fmt.Errorf("%w: bad cursor %q: pass the next cursor of the previous page", ErrBadQuery, c)
	}
	return b, &k, nil
}

// Recipient returns the activity of the recipients keys over sc (absent
// ones: none).
func (r *Reader) Recipient(ctx context.Context, sc RecipientScope, keys ...hllstore.RecipientKey) (map[hllstore.RecipientKey]*hllstore.Activity, error) {
	days, err := r.recipientDays(ctx, sc)
	if err != nil || len(days) == 0 {
		return nil, err
	}
	return r.store.ReadRecipient(ctx, sc.Campaign, days, keys...)
}

// Links returns sc's links: a person's clicks, a machine's, and with
// clickers the distinct recipients who clicked, per destination, most
// clicked first.
func (r *Reader) Links(ctx context.Context, sc RecipientScope, clickers bool) ([]hllstore.Link, error) {
	days, err := r.recipientDays(ctx, sc)
	if err != nil || len(days) == 0 {
		return nil, err
	}
	return r.store.CampaignLinks(ctx, sc.Campaign, days, clickers)
}

// RecipientTenants lists the tenants (schemas.Tenant) of sc's content ids.
func (r *Reader) RecipientTenants(ctx context.Context, sc RecipientScope) ([]string, error) {
	days, err := r.recipientDays(ctx, sc)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, dk := range days {
		if t := schemas.Tenant(dk.ContentID); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

package query

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pixelpipe/pixelpipe/counts"
	"github.com/pixelpipe/pixelpipe/hllstore"
	"github.com/pixelpipe/pixelpipe/schemas/pixelpb"
)

// maxLiveContents bounds the content ids of one live stream.
const maxLiveContents = 20

// LiveEvent is the data of each "counts" event of /v1/live: today's (UTC)
// counts of each requested content id.
type LiveEvent struct {
	Day       string        `json:"day"`
	Contents  []LiveCounts  `json:"contents"`
	Freshness FreshnessBody `json:"freshness"`
}

// LiveCounts is one content id's counts of the day so far.
type LiveCounts struct {
	ContentID    string  `json:"content_id"`
	Views        uint64  `json:"views"`
	Uniques      uint64  `json:"uniques"`
	UniquesBound uint64  `json:"uniques_bound"`
	Impressions  uint64  `json:"impressions"`
	Clicks       uint64  `json:"clicks"`
	Conversions  uint64  `json:"conversions"`
	Opens        uint64  `json:"opens"`
	CTR          float64 `json:"ctr"`
	// NonHuman is the bot, machine and unverified events of every kind.
	NonHuman uint64 `json:"non_human"`
}

// liveStream sends a "counts" event right away and then every LiveInterval
// until the client goes away or the server stops.
func (s *Server) liveStream(w http.ResponseWriter, r *http.Request) {
	var cids []string
	for _, v := range r.URL.Query()["cid"] {
		for c := range strings.SplitSeq(v, ",") {
			if c != "" {
				cids = append(cids, c)
			}
		}
	}
	if len(cids) == 0 || len(cids) > maxLiveContents {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("give 1 to %d content ids: /v1/live?cid=a&cid=b (or cid=a,b)", maxLiveContents))
		return
	}
	for _, c := range cids {
		if !validID(c) {
			writeError(w, http.StatusBadRequest, badIDMsg)
			return
		}
		if !s.checkContent(w, r, c) {
			return
		}
	}
	select {
	case s.live <- struct{}{}:
		defer func() { <-s.live }()
	default:
		writeError(w, http.StatusServiceUnavailable, "too many live streams on this server; retry shortly")
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n\n")
	t := time.NewTicker(s.cfg.LiveInterval)
	defer t.Stop()
	ctx := r.Context()
	for {
		ev, err := s.liveEvent(r, cids)
		if err != nil {
			s.logger.Warn("live counts", "err", err)
			fmt.Fprintf(w, "event: error\ndata: {\"error\":\"counts are unavailable right now; retrying\"}\n\n")
		} else {
			b, _ := json.Marshal(ev)
			fmt.Fprintf(w, "event: counts\ndata: %s\n\n", b)
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) liveEvent(r *http.Request, cids []string) (LiveEvent, error) {
	now := s.now().UTC()
	day := now.Truncate(24 * time.Hour)
	fresh, err := s.reader.Freshness(r.Context(), now, s.cfg.EventsPartitions)
	if err != nil {
		return LiveEvent{}, err
	}
	ev := LiveEvent{Day: day.Format(dayLayout), Freshness: freshnessBody(fresh, now), Contents: make([]LiveCounts, 0, len(cids))}
	for _, c := range cids {
		sum, err := s.reader.Summary(r.Context(), counts.Scope{ContentID: c, From: day, To: day.Add(24 * time.Hour), Kinds: eventKinds})
		if err != nil {
			return LiveEvent{}, err
		}
		h := func(k pixelpb.Kind) counts.Result { return sum.Get(hllstore.Human, k) }
		lc := LiveCounts{
			ContentID: c, Views: h(pixelpb.Kind_KIND_VIEW).Total, Uniques: h(pixelpb.Kind_KIND_VIEW).Uniques, UniquesBound: h(pixelpb.Kind_KIND_VIEW).UniquesBound,
			Impressions: h(pixelpb.Kind_KIND_IMPRESSION).Total, Clicks: h(pixelpb.Kind_KIND_CLICK).Total,
			Conversions: h(pixelpb.Kind_KIND_CONVERSION).Total, Opens: h(pixelpb.Kind_KIND_OPEN).Total,
		}
		lc.CTR = counts.Ratio(lc.Clicks, lc.Impressions)
		for _, cl := range []hllstore.Class{hllstore.Bot, hllstore.Machine, hllstore.Unverified} {
			for _, k := range eventKinds {
				lc.NonHuman += sum.Get(cl, k).Total
			}
		}
		ev.Contents = append(ev.Contents, lc)
	}
	return ev, nil
}

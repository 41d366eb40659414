package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pixelpipe/pixelpipe/internal/loadgen"
	"github.com/pixelpipe/pixelpipe/internal/procstat"
	"github.com/pixelpipe/pixelpipe/internal/redisconn"
)

// Metric names relied on (the parts' admin /metrics).
const (
	metricAccepted = `pixel_edge_hits_total{result="accepted"}`
	metricInvalid  = `pixel_edge_hits_total{result="invalid"}`
	metricDropped  = `pixel_edge_hits_total{result="dropped"}`
	metricApplied  = `pixel_aggregator_events_total{result="applied"}`
)

// scenario is one load: closed loop (wrk) or a constant rate (vegeta).
type scenario struct {
	name     string // as printed
	tag      string // in campaign e2e-<tag>, marker ids mk-<tag>-<n>, files
	closed   bool
	paced    bool // wrk at about rate hits/s (pacedConns)
	conns    int  // closed loop
	rate     int  // vegeta or paced, hits/s
	duration time.Duration
}

// services are the shared processes whose CPU is measured too.
type services struct {
	kafkaPIDs []int // every broker of -kafka (0: not found)
	redisPID  int
}

// result is one scenario's measurements.
type result struct {
	scenario
	gen                         genResult
	accepted, invalid, dropped  float64 // edge counters over the scenario
	counted                     uint64  // the query API's campaign total
	human                       uint64  // of which counted as human traffic
	crossSum                    uint64  // Σ GET /v1/stats/{cid}
	crossN                      int     // content ids added up
	crossErr                    error
	loadTime                    time.Duration // load start → load generator exited
	visibleAfter                time.Duration // load start → the API shows every accepted hit
	drained                     bool
	backlogEnd, backlogMax      float64 // accepted − applied during the load
	backlogKnown                bool
	markers                     markerResult
	cpu                         []cpuShare
	harnessCPU                  time.Duration
	window                      time.Duration
	redisCalls                  map[string]cmdStat
	skipped                     string // why the scenario did not run
	failure                     string // why it failed, if it did
	kneePass                    bool
	kneeWhy                     string
	apiPolls, markerPolls       int
	acceptedAtEnd, appliedAtEnd float64
}

// exact: every accepted hit, and nothing more, is counted.
func (r *result) exact() bool { return r.drained && r.accepted > 0 && float64(r.counted) == r.accepted }

// e2eRate is accepted hits per second of load start → all visible.
func (r *result) e2eRate() float64 {
	if !r.drained || r.visibleAfter <= 0 {
		return 0
	}
	return r.accepted / r.visibleAfter.Seconds()
}

// lagEnd is the backlog at the end of the load in seconds of the accepted rate.
func (r *result) lagEnd() float64 {
	rate := r.acceptedAtEnd / r.loadTime.Seconds()
	if rate <= 0 {
		return 0
	}
	return r.backlogEnd / rate
}

func (r *result) lagBounded(bound time.Duration) bool {
	return r.backlogKnown && r.lagEnd() <= bound.Seconds()
}

type cpuShare struct {
	name  string
	found bool // every process of the target was found
	cpu   time.Duration
}

// perHit is a duration per accepted hit, in µs.
func (r *result) perHit(d time.Duration) float64 {
	if r.accepted <= 0 {
		return 0
	}
	return float64(d.Microseconds()) / r.accepted
}

// runScenario runs one load against the pipeline and measures it.
func (p *pipeline) runScenario(ctx context.Context, sc scenario, svc services) (*result, error) {
	res := &result{scenario: sc}
	campaign := "e2e-" + sc.tag
	reqs, cids := buildCycle(p.cfg, sc.tag, campaign)
	var start func() (*loadProc, error)
	switch {
	case sc.closed:
		script, err := writeWrkScript(p.dir, sc.tag, reqs, p.cfg.threads, 0)
		if err != nil {
			return res, err
		}
		start = func() (*loadProc, error) {
			return startWrk(p.cfg, p.dir, sc.tag, script, p.edgeAddr, sc.conns, sc.duration, 0)
		}
	case sc.paced:
		conns, pace := pacedConns(sc.rate)
		script, err := writeWrkScript(p.dir, sc.tag, reqs, p.cfg.threads, pace)
		if err != nil {
			return res, err
		}
		start = func() (*loadProc, error) {
			return startWrk(p.cfg, p.dir, sc.tag, script, p.edgeAddr, conns, sc.duration, sc.rate)
		}
	default:
		targets, err := writeVegetaTargets(p.dir, sc.tag, p.edgeAddr, reqs)
		if err != nil {
			return res, err
		}
		start = func() (*loadProc, error) { return startVegeta(p.cfg, p.dir, sc.tag, targets, sc.rate, sc.duration) }
	}
	fmt.Fprintf(p.out, "[%s] %s: %s for %v, %d visitors, %d content ids (Zipf s=%.2f), campaign %s\n",
		time.Now().Format("15:04:05"), p.label, sc.name, sc.duration, len(reqs), p.cfg.contents, p.cfg.zipfS, campaign)

	// Before the window.
	from := time.Now().UTC()
	acc0, app0, appKnown, err := p.counters(ctx)
	if err != nil {
		return res, err
	}
	edge0, err := p.scrape(ctx, p.edgeAdmin)
	if err != nil {
		return res, err
	}
	targets := p.cpuTargets(svc)
	cpu0 := ticks(targets)
	redis0, err := commandStats(ctx, p.rdb)
	if err != nil {
		return res, err
	}
	self0 := selfCPU()

	t0 := time.Now()
	lp, err := start()
	if err != nil {
		return res, err
	}
	stopSending, giveUp := make(chan struct{}), make(chan struct{})
	markersDone := make(chan markerResult, 1)
	go func() { markersDone <- p.runMarkers(ctx, sc.tag, campaign, from, stopSending, giveUp) }()
	stopSampling := make(chan struct{})
	sampled := make(chan float64, 1)
	go func() { sampled <- p.sampleBacklog(ctx, acc0, app0, stopSampling) }()

	res.gen, err = waitLoad(ctx, lp, sc.duration)
	tEnd := time.Now()
	res.loadTime = tEnd.Sub(t0)
	close(stopSending)
	close(stopSampling)
	res.backlogMax = <-sampled
	if err != nil {
		close(giveUp)
		<-markersDone
		return res, err
	}
	if acc, app, known, err := p.counters(ctx); err == nil {
		res.acceptedAtEnd, res.appliedAtEnd = acc-acc0, app-app0
		res.backlogEnd, res.backlogKnown = max(acc-acc0-(app-app0), 0), known && appKnown
		res.backlogMax = max(res.backlogMax, res.backlogEnd)
	}

	// Drain: wait until the query API shows every accepted hit. The API's
	// campaign total costs a Redis read per content id, so it is asked
	// when the aggregator's metrics say it has applied as many events as
	// the edge accepted (then a flush makes them visible), and at least
	// once a second regardless.
	deadline := tEnd.Add(p.cfg.drainTimeout)
	var lastAPI time.Time
	for {
		acc, app, _, err := p.counters(ctx)
		if err == nil && (!appKnown || app-app0 >= acc-acc0 || time.Since(lastAPI) >= time.Second) {
			lastAPI = time.Now()
			n, human, err := p.campaignTotal(ctx, campaign, from)
			res.apiPolls++
			if err == nil {
				res.counted, res.human = n, human
				if float64(n) == acc-acc0 {
					// Confirm nothing was accepted meanwhile.
					if acc2, _, _, err := p.counters(ctx); err == nil && acc2 == acc {
						res.visibleAfter, res.drained = time.Since(t0), true
						break
					}
				}
			}
		}
		if err := p.alive(); err != nil {
			close(giveUp)
			<-markersDone
			return res, err
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			close(giveUp)
			<-markersDone
			return res, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !res.drained { // the latest count, for the report
		if n, human, err := p.campaignTotal(ctx, campaign, from); err == nil {
			res.counted, res.human = n, human
		}
	}
	// The markers are counted now (they are accepted hits of the campaign);
	// their poller needs at most a cycle to see the last ones.
	select {
	case res.markers = <-markersDone:
	case <-time.After(max(time.Until(deadline), 5*time.Second)):
		close(giveUp)
		res.markers = <-markersDone
	}

	// After the window.
	res.window = time.Since(t0)
	cpu1 := ticks(targets)
	for i, t := range targets {
		res.cpu = append(res.cpu, cpuShare{name: t.name, found: t.found(), cpu: time.Duration(cpu1[i]-cpu0[i]) * procstat.TickDuration})
	}
	res.harnessCPU = selfCPU() - self0
	redis1, err := commandStats(ctx, p.rdb)
	if err != nil {
		return res, err
	}
	res.redisCalls = diffStats(redis0, redis1)
	edge1, err := p.scrape(ctx, p.edgeAdmin)
	if err != nil {
		return res, err
	}
	res.accepted = edge1[metricAccepted] - edge0[metricAccepted]
	res.invalid = edge1[metricInvalid] - edge0[metricInvalid]
	res.dropped = edge1[metricDropped] - edge0[metricDropped]
	res.markerPolls = res.markers.polls

	switch {
	case res.accepted <= 0:
		res.failure = "no hit was accepted"
	case !res.drained:
		res.failure = fmt.Sprintf("counted %d != accepted %.0f after a drain of %v", res.counted, res.accepted, p.cfg.drainTimeout)
	case float64(res.counted) != res.accepted:
		res.failure = fmt.Sprintf("counted %d != accepted %.0f", res.counted, res.accepted)
	case res.markers.unseen > 0 || res.markers.overcount > 0:
		res.failure = fmt.Sprintf("%d marker hits never visible, %d counted more than once", res.markers.unseen, res.markers.overcount)
	}

	// Cross-check, outside the window: the same total added up per content
	// id, over every content id of the cycle and every marker.
	if p.cfg.crossCheck {
		all := append(slices.Clone(cids), res.markers.cids...)
		for _, cid := range all {
			n, _, err := p.contentTotal(ctx, cid, from)
			if err != nil {
				res.crossErr = err
				break
			}
			res.crossSum += n
			res.crossN++
		}
	}
	fmt.Fprintf(p.out, "[%s] %s: %s: %.0f accepted, %d counted, visible after %.2fs, %d markers p50 %v p99 %v\n",
		time.Now().Format("15:04:05"), p.label, sc.name, res.accepted, res.counted, res.visibleAfter.Seconds(),
		len(res.markers.latencies), res.markers.quantile(0.5), res.markers.quantile(0.99))
	return res, nil
}

// counters reads the edge's accepted hits and the aggregator's applied
// events; known is false when the aggregator does not export the metric.
func (p *pipeline) counters(ctx context.Context) (accepted, applied float64, known bool, err error) {
	e, err := p.scrape(ctx, p.edgeAdmin)
	if err != nil {
		return 0, 0, false, err
	}
	accepted = e[metricAccepted]
	a, err := p.scrape(ctx, p.aggregatorAdm)
	if err != nil {
		return accepted, 0, false, nil
	}
	applied, known = a[metricApplied]
	return accepted, applied, known, nil
}

// sampleBacklog samples accepted − applied every 500 ms until stop and
// returns its largest value.
func (p *pipeline) sampleBacklog(ctx context.Context, acc0, app0 float64, stop <-chan struct{}) float64 {
	var most float64
	for {
		select {
		case <-stop:
			return most
		case <-ctx.Done():
			return most
		case <-time.After(500 * time.Millisecond):
		}
		if acc, app, known, err := p.counters(ctx); err == nil && known {
			most = max(most, acc-acc0-(app-app0))
		}
	}
}

// scrape reads a Prometheus text exposition into "name{labels}" → value.
func (p *pipeline) scrape(ctx context.Context, addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := p.httpc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}

// statsBody is the part of the query API's stats answer added up here.
type statsBody struct {
	Human, Bot, Machine classBody
}

type classBody struct {
	Impressions, Views, Clicks, Conversions, Opens, Custom struct {
		Total uint64 `json:"total"`
	}
}

func (c classBody) sum() uint64 {
	return c.Impressions.Total + c.Views.Total + c.Clicks.Total + c.Conversions.Total + c.Opens.Total + c.Custom.Total
}

// dayRange is the API's from and to covering from's UTC day through today's.
func dayRange(from time.Time) string {
	to := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	return "from=" + from.UTC().Format("2006-01-02") + "&to=" + to.Format("2006-01-02")
}

// stats GETs a stats route and adds up every kind of every traffic class.
func (p *pipeline) stats(ctx context.Context, path string, from time.Time) (total, human uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.queryAddr+path+"?"+dayRange(from), nil)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.httpc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	var s statsBody
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, 0, fmt.Errorf("GET %s: %v", path, err)
	}
	return s.Human.sum() + s.Bot.sum() + s.Machine.sum(), s.Human.sum(), nil
}

// campaignTotal is the campaign's exact total over every content id, kind
// and class, as the query API answers it.
func (p *pipeline) campaignTotal(ctx context.Context, campaign string, from time.Time) (total, human uint64, err error) {
	return p.stats(ctx, "/v1/campaigns/"+url.PathEscape(campaign)+"/stats", from)
}

// contentTotal is a content id's exact total over every kind and class.
func (p *pipeline) contentTotal(ctx context.Context, cid string, from time.Time) (total, human uint64, err error) {
	return p.stats(ctx, "/v1/stats/"+url.PathEscape(cid), from)
}

// sendMarker sends one pixel view of content id cid (campaign campaign) as
// a browser would, with a plain Go HTTP client, and checks the GIF answer.
func (p *pipeline) sendMarker(ctx context.Context, cid, campaign string, n int) error {
	v := splitmix(hashString(p.keyPrefix + cid))
	page := "https://news.example/m/" + cid
	u := "http://" + p.edgeAddr + "/p.gif?cid=" + cid + "&site=news&k=view&cmp=" + campaign + "&url=" + url.QueryEscape(page)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	for k, val := range loadgen.BrowserHeaders {
		req.Header.Set(k, val)
	}
	req.Header.Set("Referer", page)
	req.Header.Set("Cookie", fmt.Sprintf("ppuid=%016x%016x", v, splitmix(v)))
	req.Header.Set("X-Forwarded-For", fmt.Sprintf("85.%d.%d.%d", byte(v>>8), byte(v>>16), 1+n%254))
	resp, err := p.markc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/gif" {
		return fmt.Errorf("marker %s: status %d, %s, %d bytes", cid, resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
	}
	return nil
}

// markerResult is the hit→visible latency of the marker hits.
type markerResult struct {
	cids       []string // every marker accepted by the edge
	latencies  []time.Duration
	unseen     int // never visible before the harness gave up
	overcount  int // shown with a total above 1
	sendErrors int
	firstErr   error
	polls      int
}

func (m markerResult) quantile(q float64) time.Duration {
	if len(m.latencies) == 0 {
		return 0
	}
	l := slices.Clone(m.latencies)
	slices.Sort(l)
	// Nearest rank.
	i := int(float64(len(l))*q+0.999999) - 1
	return l[min(max(i, 0), len(l)-1)].Round(time.Millisecond)
}

// runMarkers is the one goroutine of the hit→visible measurement: every
// -markerEvery, until stopSending, it sends a marker hit of its own content
// id (mk-<tag>-<n>) and notes when it sent it; every 50 ms it asks the
// query API for the oldest outstanding markers (at most 8 per round, so
// polling stays cheap when the pipeline falls behind: visibility is close
// to first-in first-out) and notes when each first shows a total of 1.
// The latency's resolution is the polling round (50 ms plus the requests).
// It returns when every marker was seen, or at giveUp.
func (p *pipeline) runMarkers(ctx context.Context, tag, campaign string, from time.Time, stopSending, giveUp <-chan struct{}) markerResult {
	const (
		pollEvery = 50 * time.Millisecond
		maxPolled = 8
	)
	type marker struct {
		cid  string
		sent time.Time
	}
	var res markerResult
	var pending []marker
	next := time.Now()
	sending := true
	for n := 0; ; {
		if now := time.Now(); sending && !now.Before(next) {
			cid := fmt.Sprintf("mk-%s-%d", tag, n)
			t := time.Now()
			if err := p.sendMarker(ctx, cid, campaign, n); err != nil {
				res.sendErrors++
				if res.firstErr == nil {
					res.firstErr = err
				}
			} else {
				pending = append(pending, marker{cid, t})
				res.cids = append(res.cids, cid)
			}
			n++
			if next = next.Add(p.cfg.markerEvery); next.Before(now) {
				next = now.Add(p.cfg.markerEvery)
			}
		}
		for i, polled := 0, 0; i < len(pending) && polled < maxPolled; polled++ {
			total, _, err := p.contentTotal(ctx, pending[i].cid, from)
			res.polls++
			if err == nil && total >= 1 {
				res.latencies = append(res.latencies, time.Since(pending[i].sent))
				if total > 1 {
					res.overcount++
				}
				pending = slices.Delete(pending, i, i+1)
				continue
			}
			i++
		}
		if !sending && len(pending) == 0 {
			return res
		}
		select {
		case <-ctx.Done():
			res.unseen = len(pending)
			return res
		case <-giveUp:
			res.unseen = len(pending)
			return res
		case <-stopSending:
			sending, stopSending = false, nil
		case <-time.After(pollEvery):
		}
	}
}

// cpuTarget is a process whose CPU is measured, or several added up (the
// brokers of a Kafka cluster).
type cpuTarget struct {
	name string
	pids []int
}

// found is false when one of the target's processes was not found on this
// machine.
func (t cpuTarget) found() bool {
	for _, pid := range t.pids {
		if pid <= 0 {
			return false
		}
	}
	return len(t.pids) > 0
}

// cpuTargets are the processes whose CPU is measured: the four parts, the
// Kafka brokers and redis-server.
func (p *pipeline) cpuTargets(svc services) []cpuTarget {
	return []cpuTarget{
		{"edge", []int{p.edge.pid()}}, {"processor", []int{p.processor.pid()}}, {"aggregator", []int{p.aggregator.pid()}}, {"query", []int{p.query.pid()}},
		{"kafka", svc.kafkaPIDs}, {"redis", []int{svc.redisPID}},
	}
}

func ticks(ts []cpuTarget) []int64 {
	out := make([]int64, len(ts))
	for i, t := range ts {
		for _, pid := range t.pids {
			if pid > 0 {
				out[i] += procstat.CPUTicks(pid)
			}
		}
	}
	return out
}

// selfCPU is this process's user plus system CPU.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cmdStat is one command's line of INFO commandstats.
type cmdStat struct{ calls, usec int64 }

// commandStats reads INFO commandstats: command → calls and µs, summed
// over the masters of a cluster.
func commandStats(ctx context.Context, rdb redis.UniversalClient) (map[string]cmdStat, error) {
	var mu sync.Mutex
	out := map[string]cmdStat{}
	err := redisconn.ForEachServer(ctx, rdb, func(ctx context.Context, c *redis.Client) error {
		s, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, line := range strings.Split(s, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || !strings.HasPrefix(name, "cmdstat_") {
				continue
			}
			var st cmdStat
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					st.calls, _ = strconv.ParseInt(v, 10, 64)
				case "usec":
					st.usec, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			name = strings.TrimPrefix(name, "cmdstat_")
			sum := out[name]
			out[name] = cmdStat{calls: sum.calls + st.calls, usec: sum.usec + st.usec}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	return out, nil
}

func diffStats(a, b map[string]cmdStat) map[string]cmdStat {
	out := map[string]cmdStat{}
	for k, v := range b {
		d := cmdStat{calls: v.calls - a[k].calls, usec: v.usec - a[k].usec}
		if d.calls > 0 {
			out[k] = d
		}
	}
	return out
}

// Package loadgen sends pixel hits over real HTTP to an edge, at a bounded
// rate and for a bounded count or time, and records exactly which hits were
// acknowledged (answered 200 with the GIF), per content id and visitor, so a
// test can compare what the pipeline counted with what it accepted.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTagURL is the page URL prefix of tagged hits.
const DefaultTagURL = "https://loadgen.invalid/hit/"

// TagSeq returns the sequence number in a tagged hit's page URL.
func TagSeq(pageURL, tagURL string) (int, bool) {
	if tagURL == "" {
		tagURL = DefaultTagURL
	}
	rest, ok := strings.CutPrefix(pageURL, tagURL)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// Config describes a load.
type Config struct {
	// BaseURL of the edge, e.g. http://127.0.0.1:8080. Required.
	BaseURL string
	// Rate is hits per second; 0 means as fast as the workers go.
	Rate float64
	// Total stops after this many hits; 0 means no count limit.
	Total int
	// Duration stops after this long; 0 means no time limit. At least one of
	// Total and Duration must be set.
	Duration time.Duration
	// Workers is the number of concurrent connections. Default 4.
	Workers int
	// Contents is the number of content ids, named "<ContentPrefix><n>".
	// Popularity follows a Zipf law (s=1.1) when Zipf is set, else uniform.
	Contents      int
	ContentPrefix string
	Zipf          bool
	// Visitors is the number of distinct visitors, sent as explicit ids
	// (uid parameter) "<VisitorPrefix><n>".
	Visitors      int
	VisitorPrefix string
	// Kind is the k parameter; empty sends none (a view).
	Kind string
	// Campaign is the cmp parameter; empty sends none. With it, every hit
	// names a recipient of the campaign (its uid).
	Campaign string
	// Seed makes the sequence of hits repeatable.
	Seed uint64
	// Tag sends each hit's sequence number (0, 1, ...) in its page URL,
	// TagURL + the number, which the edge records verbatim; Result.Acked
	// then lists which ones were acknowledged, so a test can look for every
	// one of them in the raw topic. Default
	// "https://loadgen.invalid/hit/" when Tag is set.
	Tag    bool
	TagURL string
}

// Result is what a load achieved.
type Result struct {
	Sent, Acked, Failed int
	Elapsed             time.Duration
	// PerContent counts acknowledged hits and their distinct visitors.
	PerContent map[string]*ContentResult
	// FirstErr is the first failure seen, if any.
	FirstErr error
	// AckedSeqs and FailedSeqs are the sequence numbers of the hits that
	// were acknowledged, and of those that were not (refused, timed out or
	// cut off: their fate is unknown), when Config.Tag is set.
	AckedSeqs, FailedSeqs []int
}

// ContentResult is what was acknowledged for one content id.
type ContentResult struct {
	Hits     int
	Visitors map[int]struct{}
}

// Run sends the load and returns what was acknowledged.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.BaseURL == "" || cfg.Contents < 1 || cfg.Visitors < 1 {
		return nil, errors.New("loadgen: BaseURL, Contents and Visitors are required")
	}
	if cfg.Total <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("loadgen: set Total or Duration, or both")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.ContentPrefix == "" {
		cfg.ContentPrefix = "content-"
	}
	if cfg.VisitorPrefix == "" {
		cfg.VisitorPrefix = "visitor-"
	}
	if cfg.Tag && cfg.TagURL == "" {
		cfg.TagURL = DefaultTagURL
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}

	type job struct{ seq, content, visitor int }
	jobs := make(chan job, cfg.Workers)
	res := &Result{PerContent: map[string]*ContentResult{}}
	var mu sync.Mutex
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Workers, DisableCompression: true},
	}
	defer client.CloseIdleConnections()

	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				cid := cfg.ContentPrefix + strconv.Itoa(j.content)
				err := send(client, cfg, cid, j.visitor, j.seq)
				mu.Lock()
				res.Sent++
				if cfg.Tag {
					if err != nil {
						res.FailedSeqs = append(res.FailedSeqs, j.seq)
					} else {
						res.AckedSeqs = append(res.AckedSeqs, j.seq)
					}
				}
				if err != nil {
					res.Failed++
					if res.FirstErr == nil {
						res.FirstErr = err
					}
				} else {
					res.Acked++
					cr := res.PerContent[cid]
					if cr == nil {
						cr = &ContentResult{Visitors: map[int]struct{}{}}
						res.PerContent[cid] = cr
					}
					cr.Hits++
					cr.Visitors[j.visitor] = struct{}{}
				}
				mu.Unlock()
			}
		}()
	}

	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	var zipf *zipfGen
	if cfg.Zipf {
		zipf = newZipf(rng, 1.1, cfg.Contents)
	}
	start := time.Now()
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
loop:
	for i := 0; cfg.Total <= 0 || i < cfg.Total; i++ {
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				select {
				case <-ctx.Done():
					break loop
				case <-time.After(wait):
				}
			}
		}
		c := rng.IntN(cfg.Contents)
		if zipf != nil {
			c = zipf.next()
		}
		select {
		case jobs <- job{seq: i, content: c, visitor: rng.IntN(cfg.Visitors)}:
		case <-ctx.Done():
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, nil
}

func send(client *http.Client, cfg Config, cid string, visitor, seq int) error {
	u := cfg.BaseURL + "/p.gif?cid=" + cid + "&uid=" + cfg.VisitorPrefix + strconv.Itoa(visitor)
	if cfg.Kind != "" {
		u += "&k=" + cfg.Kind
	}
	if cfg.Campaign != "" {
		u += "&cmp=" + cfg.Campaign
	}
	if cfg.Tag {
		u += "&url=" + url.QueryEscape(cfg.TagURL+strconv.Itoa(seq))
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	// The headers a browser sends with an image request, so the hits count
	// as people, not as bots (the processor labels clients that lack them).
	for k, v := range BrowserHeaders {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || len(body) != 43 || resp.Header.Get("Content-Type") != "image/gif" {
		return fmt.Errorf("unexpected answer: status %d, %d bytes, %s", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
	}
	return nil
}

// BrowserHeaders are the headers a desktop Chrome sends with an image
// request; the load generator and tests that play a browser send them.
var BrowserHeaders = map[string]string{
	"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Accept":          "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
	"Accept-Language": "en-US,en;q=0.9",
	"Accept-Encoding": "gzip, deflate, br",
	"Sec-Fetch-Site":  "cross-site",
	"Sec-Fetch-Mode":  "no-cors",
	"Sec-Fetch-Dest":  "image",
	"Sec-Ch-Ua":       `"Chromium";v="131", "Not_A Brand";v="24"`,
}

// zipfGen draws ranks 0..n-1 with P(k) proportional to 1/(k+1)^s.
type zipfGen struct {
	rng *rand.Rand
	cdf []float64
}

func newZipf(rng *rand.Rand, s float64, n int) *zipfGen {
	cdf := make([]float64, n)
	sum := 0.0
	for k := range n {
		sum += 1 / math.Pow(float64(k+1), s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return &zipfGen{rng: rng, cdf: cdf}
}

func (z *zipfGen) next() int {
	u := z.rng.Float64()
	lo, hi := 0, len(z.cdf)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if z.cdf[mid] < u {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

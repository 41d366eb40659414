package main

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/pixelpipe/pixelpipe/internal/loadgen"
)

func cmdLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg loadgen.Config
	fs := newFlagSet("loadgen", "", "pixelpipe loadgen -url=http://127.0.0.1:8080 -rate=200 -duration=30s -contents=20 -visitors=500")
	fs.StringVar(&cfg.BaseURL, "url", "http://127.0.0.1:8080", "edge base URL; only send load to addresses you run")
	fs.Float64Var(&cfg.Rate, "rate", 100, "hits per second; 0 = as fast as possible")
	fs.IntVar(&cfg.Total, "total", 0, "stop after this many hits (0 = no count limit)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0 = no time limit); set -total, -duration or both")
	fs.IntVar(&cfg.Workers, "workers", 4, "concurrent connections")
	fs.IntVar(&cfg.Contents, "contents", 10, "number of content ids (content-0 ...)")
	fs.BoolVar(&cfg.Zipf, "zipf", true, "Zipf-popular content ids instead of uniform")
	fs.IntVar(&cfg.Visitors, "visitors", 1000, "number of distinct visitors (sent as uid)")
	fs.StringVar(&cfg.Kind, "kind", "", "hit kind (k parameter); empty = view")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	cfg.Seed = *seed
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	report(stdout, res)
	if res.FirstErr != nil {
		return fmt.Errorf("%d of %d hits failed, first: %w", res.Failed, res.Sent, res.FirstErr)
	}
	return nil
}

func report(w io.Writer, res *loadgen.Result) {
	fmt.Fprintf(w, "sent %d, acknowledged %d, failed %d in %s (%.0f hits/s)\n",
		res.Sent, res.Acked, res.Failed, res.Elapsed.Round(1e6), float64(res.Sent)/res.Elapsed.Seconds())
	ids := make([]string, 0, len(res.PerContent))
	for id := range res.PerContent {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return res.PerContent[ids[i]].Hits > res.PerContent[ids[j]].Hits })
	for i, id := range ids {
		if i == 5 {
			fmt.Fprintf(w, "  ... %d more content ids\n", len(ids)-5)
			break
		}
		fmt.Fprintf(w, "  %-14s %6d hits %6d visitors\n", id, res.PerContent[id].Hits, len(res.PerContent[id].Visitors))
	}
}

// Command e2ebench is `make bench-e2e`: the end-to-end capacity of the whole
// pipeline on this machine. It starts the pixelpipe binary as four separate
// processes (edge, processor, aggregator, query) against the real Kafka and
// Redis, on a topic prefix, Redis key prefix and consumer groups of this run
// alone, loads the edge over HTTP with load generators that are not ours, and
// reads the result back through the query API, as a customer would.
//
// Load (127.0.0.1 only, every load bounded in time):
//
//   - closed: wrk, -conns connections as fast as the edge answers, for
//     -duration (default 10 s);
//   - paced: wrk at about each -rate (default 10k,20k,30k,40k hits/s,
//     -duration each, default 20 s): one connection per 100 hits/s, each
//     pausing about 10 ms between requests (wrk's delay()). Still a closed
//     loop underneath (a slow edge lowers the rate, and the report shows
//     the rate sent), but at wrk's CPU cost per request;
//   - rate: vegeta at each -rate, a true open loop; on this 2-core machine
//     vegeta itself costs about 100 CPU-µs per request next to the
//     pipeline and cannot send much above 10k/s (the report says so);
//   - knee: rates stepped upward (-knee.gen, paced by default) until a step
//     fails.
//
// Every request is a pixel view as a browser sends it (loadgen.BrowserHeaders,
// a Referer), of a content id drawn from a Zipf law (-contents ids, -zipf s),
// by one of -visitors visitors, each with its own visitor cookie (ppuid) and
// its own public client IP in X-Forwarded-For (the edge is told to trust
// 127.0.0.1 as its load balancer), so per-visitor and per-IP rates stay
// those of people. Each scenario has a campaign of its own (cmp=e2e-<tag>),
// and fresh visitors, so scenarios are independent of their order.
//
// Measured per scenario:
//
//   - accepted: the edge's own counter pixel_edge_hits_total{result="accepted"}
//     (its admin /metrics), over the scenario;
//   - counted: the exact totals the query API returns for the scenario's
//     campaign (GET /v1/campaigns/{campaign}/stats: the sum over the
//     campaign's content ids, every kind and traffic class added up). The
//     scenario fails unless counted == accepted within -drainTimeout after
//     the load; a cross-check afterwards adds up GET /v1/stats/{cid} over
//     every content id the load used;
//   - end-to-end hits/s: accepted ÷ (time from the load's start until the
//     API shows every accepted hit);
//   - hit→visible latency: every -markerEvery (200 ms) during the load a
//     marker hit of its own content id is sent with a plain Go client and
//     GET /v1/stats/{cid} is polled until it shows it; p50 and p99;
//   - backlog: accepted minus pixel_aggregator_events_total{result="applied"}
//     (the aggregator's /metrics), sampled during the load; the lag is
//     bounded when, at the end of the load, the backlog is at most
//     -lagBound (2 s) worth of the accepted rate;
//   - CPU per hit (µs) of the edge, processor, aggregator and query processes,
//     the Kafka broker (.cache/run/kafka.pid) and redis-server
//     (.cache/run/redis.pid), from /proc/PID/stat utime+stime over the window
//     from the load's start until everything is visible; also the load
//     generator's (rusage) and this harness's own, reported apart;
//   - Redis commands per hit: INFO commandstats before and after the window.
//
// The Kafka broker and Redis are shared: anything else using them during a
// run shows in their CPU and in the Redis command counts. -baseline runs the
// same scenarios with a second pixelpipe binary (its own pipeline, after the
// first one's), for a before/after in one run. The report is printed and,
// with -out, also written to a file. The exit status is non-zero when any
// scenario's counted differs from accepted, when nothing was accepted, or on
// any failure; every process the harness starts is stopped on the way out,
// also on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is everything a run needs; main fills it from flags, the short
// test directly.
type config struct {
	pixelpipe, baseline string
	// uids: every hit names its visitor as a uid too, so each is a
	// recipient of the scenario's campaign (per-recipient activity).
	uids         bool
	kafka, redis string
	// kafkaPIDFile and redisPIDFile name the broker's and redis-server's
	// pidfiles; when missing, the process listening on the address is used.
	kafkaPIDFile, redisPIDFile string
	// kafkaReplicas is the replication factor of the run's topics.
	kafkaReplicas int

	modes []string // closed, paced, rate, knee
	// kneeGen is the load generator of -mode=knee: paced (wrk) or vegeta.
	kneeGen string
	// duration of one load; 0: 10 s closed loop, 20 s per rate.
	duration       time.Duration
	conns, threads int
	rates          []int
	kneeStart      int
	kneeStep       int
	kneeMax        int
	kneeP99        time.Duration
	lagBound       time.Duration

	visitors, contents int
	zipfS              float64
	seed               uint64
	markerEvery        time.Duration
	drainTimeout       time.Duration

	wrkBin, vegetaBin string
	edgeFlags         string
	processorFlags    string
	aggregatorFlags   string
	queryFlags        string
	vegetaFlags       string
	crossCheck        bool
	keep              bool
	outFile           string
}

func defaultConfig() config {
	root := repoRoot()
	return config{
		pixelpipe:    "bin/pixelpipe",
		kafka:        "127.0.0.1:19092",
		redis:        "127.0.0.1:16379",
		kafkaPIDFile: filepath.Join(root, ".cache", "run", "kafka.pid"),
		redisPIDFile: filepath.Join(root, ".cache", "run", "redis.pid"),
		modes:        []string{"closed", "paced"},
		kneeGen:      "paced",
		conns:        64,
		threads:      2,
		rates:        []int{10000, 20000, 30000, 40000},
		kneeStart:    5000,
		kneeStep:     5000,
		kneeMax:      100000,
		kneeP99:      2 * time.Second,
		lagBound:     2 * time.Second,
		visitors:     50000,
		contents:     1000,
		zipfS:        1.1,
		seed:         1,
		markerEvery:  200 * time.Millisecond,
		drainTimeout: 90 * time.Second,
		wrkBin:       "wrk",
		vegetaBin:    filepath.Join(root, ".cache", "bin", "vegeta"),
		crossCheck:   true,
	}
}

func parseFlags(args []string) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("e2ebench", flag.ContinueOnError)
	fs.StringVar(&cfg.pixelpipe, "pixelpipe", cfg.pixelpipe, "pixelpipe binary whose four parts are measured")
	fs.StringVar(&cfg.baseline, "baseline", "", "a second pixelpipe binary (e.g. built from an earlier commit): the same scenarios run with it too, on a pipeline of its own, for a before/after in one run")
	fs.StringVar(&cfg.kafka, "kafka", cfg.kafka, "Kafka brokers, comma-separated: every one is a bootstrap broker, and their CPU is added up (a cluster's brokers must all be listed)")
	fs.IntVar(&cfg.kafkaReplicas, "kafka.replicas", 1, "replication factor of the run's topics (3 on a three-broker cluster; min.insync.replicas is one less)")
	fs.StringVar(&cfg.redis, "redis", cfg.redis, "Redis address, as pixelpipe's -redis.addr: host:port, or a Redis Cluster's host:port,host:port,... (Redis commands are then summed over its masters; Redis CPU is that of -redis.pidfile alone)")
	fs.StringVar(&cfg.kafkaPIDFile, "kafka.pidfile", cfg.kafkaPIDFile, "pidfiles of the Kafka brokers (for their CPU), comma-separated in the order of -kafka; for a broker without one, or whose pidfile names no live process, the process listening on its address")
	fs.StringVar(&cfg.redisPIDFile, "redis.pidfile", cfg.redisPIDFile, "pidfile of redis-server (for its CPU); when absent, the process listening on -redis")
	mode := fs.String("mode", strings.Join(cfg.modes, ","), "comma-separated, run in this order: closed (wrk), paced (wrk paced to each -rate), rate (vegeta at each -rate), knee (-knee.gen, rates stepped up until a step fails)")
	fs.DurationVar(&cfg.duration, "duration", 0, "length of one load; default 10s closed loop, 20s per rate or knee step")
	fs.IntVar(&cfg.conns, "conns", cfg.conns, "wrk connections (closed loop)")
	fs.IntVar(&cfg.threads, "threads", cfg.threads, "wrk threads (closed loop)")
	rates := fs.String("rate", "10000,20000,30000,40000", "rates of -mode=paced and -mode=rate, hits/s, comma-separated")
	fs.StringVar(&cfg.kneeGen, "knee.gen", cfg.kneeGen, "load generator of -mode=knee: paced (wrk, about 10 CPU-µs per request here) or vegeta (a true open loop, but about 100 CPU-µs per request here: on 2 cores it saturates near 10k/s)")
	fs.IntVar(&cfg.kneeStart, "knee.start", cfg.kneeStart, "first rate of -mode=knee, hits/s")
	fs.IntVar(&cfg.kneeStep, "knee.step", cfg.kneeStep, "rate step of -mode=knee, hits/s")
	fs.IntVar(&cfg.kneeMax, "knee.max", cfg.kneeMax, "highest rate -mode=knee tries, hits/s")
	fs.DurationVar(&cfg.kneeP99, "knee.p99", cfg.kneeP99, "a knee step passes when its hit→visible p99 is at most this (and its backlog drains and stays bounded)")
	fs.DurationVar(&cfg.lagBound, "lagBound", cfg.lagBound, "the lag is bounded when the backlog at the end of a load is at most this long at the accepted rate")
	fs.IntVar(&cfg.visitors, "visitors", cfg.visitors, "distinct visitors per scenario (each its own ppuid cookie and client IP); also the length of the request cycle, each visitor once per cycle")
	fs.IntVar(&cfg.contents, "contents", cfg.contents, "distinct content ids, drawn from a Zipf law")
	fs.Float64Var(&cfg.zipfS, "zipf", cfg.zipfS, "Zipf exponent s of content popularity (> 1)")
	fs.Uint64Var(&cfg.seed, "seed", cfg.seed, "seed of the request cycle")
	fs.BoolVar(&cfg.uids, "uids", false, "every hit also names its visitor as a uid, so each is a recipient of the scenario's campaign and the aggregators keep its activity (per-recipient views)")
	fs.DurationVar(&cfg.markerEvery, "markerEvery", cfg.markerEvery, "interval of the hit→visible marker hits during a load")
	fs.DurationVar(&cfg.drainTimeout, "drainTimeout", cfg.drainTimeout, "after a load, how long to wait for the query API to show every accepted hit")
	fs.StringVar(&cfg.wrkBin, "wrk", cfg.wrkBin, "wrk binary")
	fs.StringVar(&cfg.vegetaBin, "vegeta", cfg.vegetaBin, "vegeta binary (deploy/local/bench-deps.sh vegeta installs it there)")
	fs.StringVar(&cfg.edgeFlags, "edgeflags", "", "extra space-separated flags of the edge")
	fs.StringVar(&cfg.processorFlags, "processorflags", "", "extra space-separated flags of the processor")
	fs.StringVar(&cfg.aggregatorFlags, "aggregatorflags", "", "extra space-separated flags of the aggregator")
	fs.StringVar(&cfg.queryFlags, "queryflags", "", "extra space-separated flags of the query API")
	fs.StringVar(&cfg.vegetaFlags, "vegetaflags", "", "extra space-separated flags of vegeta attack, e.g. -max-workers=512")
	fs.BoolVar(&cfg.crossCheck, "crosscheck", cfg.crossCheck, "after each scenario, also add up GET /v1/stats/{cid} over every content id it used")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the run's topics, Redis keys and logs (default: deleted when the run succeeds; logs are kept on failure)")
	fs.StringVar(&cfg.outFile, "out", "", "also write the whole output to this file")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// The default pidfile is the single broker's of make services-up: not
	// that of brokers named otherwise.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["kafka"] && !set["kafka.pidfile"] {
		cfg.kafkaPIDFile = ""
	}
	cfg.modes = nil
	for _, m := range strings.Split(*mode, ",") {
		switch m = strings.TrimSpace(m); m {
		case "closed", "paced", "rate", "knee":
			cfg.modes = append(cfg.modes, m)
		case "":
		default:
			return cfg, fmt.Errorf("-mode %q: use closed, paced, rate or knee (comma-separated)", m)
		}
	}
	cfg.rates = nil
	for _, r := range strings.Split(*rates, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(r, "/s"))
		if err != nil || n < 1 {
			return cfg, fmt.Errorf("-rate %q: use positive integers, hits per second", r)
		}
		cfg.rates = append(cfg.rates, n)
	}
	return cfg, cfg.validate()
}

func (c config) validate() error {
	var errs []error
	if len(c.modes) == 0 {
		errs = append(errs, errors.New("no -mode"))
	}
	if c.kneeGen != "paced" && c.kneeGen != "vegeta" {
		errs = append(errs, errors.New("-knee.gen must be paced or vegeta"))
	}
	if c.duration != 0 && (c.duration < time.Second || c.duration > 10*time.Minute) {
		errs = append(errs, errors.New("-duration must be between 1s and 10m (whole seconds for wrk)"))
	}
	if c.conns < 1 || c.threads < 1 {
		errs = append(errs, errors.New("-conns and -threads must be at least 1"))
	}
	if c.visitors < 1 || c.contents < 1 || c.zipfS <= 1 {
		errs = append(errs, errors.New("-visitors and -contents must be at least 1, -zipf above 1"))
	}
	if c.markerEvery < 10*time.Millisecond {
		errs = append(errs, errors.New("-markerEvery must be at least 10ms"))
	}
	if c.drainTimeout <= 0 || c.drainTimeout > 30*time.Minute {
		errs = append(errs, errors.New("-drainTimeout must be positive and at most 30m"))
	}
	if c.kneeStart < 1 || c.kneeStep < 1 || c.kneeMax < c.kneeStart {
		errs = append(errs, errors.New("-knee.start and -knee.step must be positive, -knee.max at least -knee.start"))
	}
	return errors.Join(errs...)
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2ebench:", err)
		os.Exit(2)
	}
	out := io.Writer(os.Stdout)
	if cfg.outFile != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.outFile), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "e2ebench:", err)
			os.Exit(1)
		}
		f, err := os.Create(cfg.outFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2ebench:", err)
			os.Exit(1)
		}
		defer f.Close()
		out = io.MultiWriter(os.Stdout, f)
	}
	// SIGINT/SIGTERM cancel ctx: loads stop, and every process started is
	// stopped on the way out. A second signal kills at once (the children
	// then get SIGKILL/SIGTERM from the kernel: see startProc).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	_, err = run(ctx, cfg, out)
	if err != nil {
		fmt.Fprintf(out, "\nFAIL: %v\n", err)
		stop()
		os.Exit(1)
	}
	fmt.Fprintln(out, "\nPASS: every scenario's counted equals accepted")
}

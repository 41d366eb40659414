package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// binaryReport is every scenario of one pixelpipe binary.
type binaryReport struct {
	label, bin string
	results    []*result
	// knee: the highest passing rate of -mode=knee (0: none passed);
	// kneeNote says how the search ended.
	knee     int
	kneeRan  bool
	kneeNote string
}

func (b *binaryReport) failures() []string {
	var out []string
	for _, r := range b.results {
		if r.failure != "" {
			out = append(out, fmt.Sprintf("%s, %s: %s", b.label, r.name, r.failure))
		}
	}
	return out
}

// run runs every scenario of cfg with cfg.pixelpipe, then with
// cfg.baseline when set, prints the report and returns an error when a
// scenario was not exact or anything failed. main and the short test call it.
func run(ctx context.Context, cfg config, out io.Writer) ([]*binaryReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, m := range cfg.modes {
		tool := cfg.wrkBin
		if m == "rate" || m == "knee" && cfg.kneeGen == "vegeta" {
			tool = cfg.vegetaBin
		}
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("-mode=%s needs %s: %v (deploy/local/bench-deps.sh installs wrk, and with the argument vegeta also vegeta)", m, tool, err)
		}
	}
	svc := services{redisPID: servicePID(cfg.redisPIDFile, cfg.redis)}
	pidfiles := strings.Split(cfg.kafkaPIDFile, ",")
	for i, addr := range strings.Split(cfg.kafka, ",") {
		pidfile := ""
		if i < len(pidfiles) {
			pidfile = pidfiles[i]
		}
		svc.kafkaPIDs = append(svc.kafkaPIDs, servicePID(pidfile, addr))
	}
	kafkaTarget := cpuTarget{pids: svc.kafkaPIDs}
	fmt.Fprintf(out, "e2ebench: %s, Go %s, %d CPUs; Kafka %s (pids %v, topics with %d replicas), Redis %s (pid %d); modes %s\n",
		time.Now().UTC().Format(time.RFC3339), runtime.Version(), runtime.NumCPU(), cfg.kafka, svc.kafkaPIDs, cfg.kafkaReplicas, cfg.redis, svc.redisPID, strings.Join(cfg.modes, ","))
	if !kafkaTarget.found() || svc.redisPID == 0 {
		fmt.Fprintln(out, "note: the Kafka broker or redis-server process was not found on this machine: its CPU is reported as 0")
	}
	bins := []struct{ label, bin string }{{"pixelpipe", cfg.pixelpipe}}
	if cfg.baseline != "" {
		bins = append(bins, struct{ label, bin string }{"baseline", cfg.baseline})
	}
	var reports []*binaryReport
	var failures []string
	for _, b := range bins {
		rep, err := runBinary(ctx, &cfg, b.label, b.bin, svc, out)
		if rep != nil {
			reports = append(reports, rep)
			failures = append(failures, rep.failures()...)
		}
		if err != nil {
			printReport(out, &cfg, reports)
			return reports, fmt.Errorf("%s (%s): %w", b.label, b.bin, err)
		}
	}
	printReport(out, &cfg, reports)
	if len(failures) > 0 {
		return reports, errors.New(strings.Join(failures, "; "))
	}
	return reports, nil
}

// runBinary starts one binary's pipeline, runs the scenarios of every mode
// on it in turn, and stops it.
func runBinary(ctx context.Context, cfg *config, label, bin string, svc services, out io.Writer) (rep *binaryReport, err error) {
	rep = &binaryReport{label: label, bin: bin}
	p, err := startPipeline(ctx, cfg, label, bin, out)
	defer func() {
		if p != nil {
			p.close(err != nil || len(rep.failures()) > 0)
		}
	}()
	if err != nil {
		return rep, err
	}
	dur := func(def time.Duration) time.Duration {
		if cfg.duration > 0 {
			return cfg.duration
		}
		return def
	}
	// runOne runs a scenario; a scenario that did not drain leaves a
	// backlog that would load the next one, so later ones are skipped.
	undrained := ""
	runOne := func(sc scenario) (*result, error) {
		if undrained != "" {
			r := &result{scenario: sc, skipped: "not run: " + undrained + " did not drain"}
			rep.results = append(rep.results, r)
			return r, nil
		}
		r, err := p.runScenario(ctx, sc, svc)
		rep.results = append(rep.results, r)
		if err != nil {
			r.failure = err.Error()
			first, _, _ := strings.Cut(r.failure, "\n")
			r.skipped = "aborted: " + first
			return r, err
		}
		if !r.drained {
			undrained = sc.name
		}
		return r, nil
	}
	for _, m := range cfg.modes {
		switch m {
		case "closed":
			if _, err := runOne(scenario{name: fmt.Sprintf("closed c%d", cfg.conns), tag: "closed", closed: true, conns: cfg.conns, duration: dur(10 * time.Second)}); err != nil {
				return rep, err
			}
		case "paced":
			for _, rate := range cfg.rates {
				if _, err := runOne(scenario{name: fmt.Sprintf("paced %d/s", rate), tag: fmt.Sprintf("p%d", rate), paced: true, rate: rate, duration: dur(20 * time.Second)}); err != nil {
					return rep, err
				}
			}
		case "rate":
			for _, rate := range cfg.rates {
				if _, err := runOne(scenario{name: fmt.Sprintf("rate %d/s", rate), tag: fmt.Sprintf("r%d", rate), rate: rate, duration: dur(20 * time.Second)}); err != nil {
					return rep, err
				}
			}
		case "knee":
			rep.kneeRan = true
			for rate := cfg.kneeStart; rate <= cfg.kneeMax; rate += cfg.kneeStep {
				r, err := runOne(scenario{name: fmt.Sprintf("knee %d/s", rate), tag: fmt.Sprintf("k%d", rate), paced: cfg.kneeGen == "paced", rate: rate, duration: dur(20 * time.Second)})
				if err != nil {
					return rep, err
				}
				r.kneePass, r.kneeWhy = kneeVerdict(cfg, r)
				if !r.kneePass {
					rep.kneeNote = fmt.Sprintf("%s failed: %s", r.name, r.kneeWhy)
					break
				}
				rep.knee = rate
			}
			if rep.kneeNote == "" {
				rep.kneeNote = fmt.Sprintf("every step up to -knee.max %d/s passed", cfg.kneeMax)
			}
		}
	}
	return rep, nil
}

// kneeVerdict: a rate passes when the load generator offered it, the edge
// answered every request, the backlog stayed bounded and drained with every
// hit counted, and the hit→visible p99 is within -knee.p99.
func kneeVerdict(cfg *config, r *result) (bool, string) {
	switch {
	case r.skipped != "":
		return false, r.skipped
	case r.gen.rps < 0.95*r.gen.offered:
		return false, fmt.Sprintf("%s sent %.0f/s of %.0f/s asked (the load generator, or with wrk the edge's answers, fell behind)", r.gen.tool, r.gen.rps, r.gen.offered)
	case r.gen.errors > 0:
		return false, fmt.Sprintf("%d requests failed or timed out", r.gen.errors)
	case !r.exact():
		return false, "not exact: " + r.failure
	case !r.lagBounded(cfg.lagBound):
		return false, fmt.Sprintf("backlog at the end of the load %.1fs of traffic (bound %v)", r.lagEnd(), cfg.lagBound)
	case r.markers.unseen > 0 || len(r.markers.latencies) == 0:
		return false, "no hit→visible measurement"
	case r.markers.quantile(0.99) > cfg.kneeP99:
		return false, fmt.Sprintf("hit→visible p99 %v > %v", r.markers.quantile(0.99), cfg.kneeP99)
	}
	return true, ""
}

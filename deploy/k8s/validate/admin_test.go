package validate

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pixelpipe/pixelpipe/internal/admin"
)

// adminStatus caches, per path, the HTTP status the parts' admin server
// answers while not ready ([0]) and while ready ([1]).
var (
	adminMu     sync.Mutex
	adminStatus = map[string][2]int{}
)

// probeAdmin runs the parts' admin server and asks it for each path the
// manifests may probe or scrape.
func probeAdmin(paths ...string) (map[string][2]int, error) {
	srv, err := admin.Listen("127.0.0.1:0", prometheus.NewRegistry(), nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	out := map[string][2]int{}
	for i, ready := range []bool{false, true} {
		srv.SetReady(ready)
		for _, p := range paths {
			resp, err := http.Get("http://" + srv.Addr() + p)
			if err != nil {
				return nil, fmt.Errorf("admin %s: %w", p, err)
			}
			resp.Body.Close()
			st := out[p]
			st[i] = resp.StatusCode
			out[p] = st
		}
	}
	return out, nil
}

// probePathProblem says what is wrong with path as a probe of kind
// (liveness or readiness), or "" when the admin server answers it as that
// probe needs: liveness 200 whether ready or not (a draining part is
// alive), readiness 503 while not ready and 200 once ready.
func probePathProblem(kind, path string) string {
	adminMu.Lock()
	st, ok := adminStatus[path]
	if !ok {
		got, err := probeAdmin(path)
		if err != nil {
			adminMu.Unlock()
			return err.Error()
		}
		st = got[path]
		adminStatus[path] = st
	}
	adminMu.Unlock()
	switch {
	case st[0] == http.StatusNotFound || st[1] == http.StatusNotFound:
		return fmt.Sprintf("the admin server does not serve %s (404)", path)
	case kind == "liveness" && (st[0] != http.StatusOK || st[1] != http.StatusOK):
		return fmt.Sprintf("%s answers %d while not ready and %d while ready: a liveness probe needs 200 in both", path, st[0], st[1])
	case kind == "readiness" && (st[0] != http.StatusServiceUnavailable || st[1] != http.StatusOK):
		return fmt.Sprintf("%s answers %d while not ready and %d while ready: a readiness probe needs 503 then 200", path, st[0], st[1])
	case kind == "metrics" && st[1] != http.StatusOK:
		return fmt.Sprintf("%s answers %d", path, st[1])
	}
	return ""
}

package pipetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterNodes is the size of a Cluster: three masters with a replica each.
const clusterNodes = 6

// Cluster is a Redis Cluster of one test's own, for fault tests that kill,
// pause or restart its nodes: never the shared cluster other tests use. It
// is started by deploy/local/services.sh (cluster-up), so its nodes have the
// shared cluster's settings (three masters with a replica each, node
// timeout 5 s, append-only file fsynced every second), with their run
// folder (pidfiles, logs, data) in the test's temporary folder and on free
// ports. Only the processes this Cluster started are ever signalled, by the
// PIDs the script recorded; every one still running is killed on cleanup.
type Cluster struct {
	t       testing.TB
	script  string
	runDir  string
	base    int
	env     []string
	clients map[string]*redis.Client
}

// PrivateCluster starts a private cluster and waits until it serves every
// slot and its nodes agree on who is master.
func PrivateCluster(t testing.TB) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (make services-up installs it): %v", err)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{
		t:       t,
		script:  filepath.Join(root, "deploy", "local", "services.sh"),
		runDir:  t.TempDir(),
		base:    clusterPorts(t),
		clients: map[string]*redis.Client{},
	}
	c.env = append(os.Environ(),
		"PIXEL_RUN_DIR="+c.runDir,
		"PIXEL_REDIS_CLUSTER_PORT="+strconv.Itoa(c.base),
		"PIXEL_START_TIMEOUT=60",
	)
	t.Cleanup(func() {
		for _, cl := range c.clients {
			_ = cl.Close()
		}
		for i := range clusterNodes {
			if pid := c.pid(c.base + i); pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGCONT)
				_ = syscall.Kill(pid, syscall.SIGKILL)
				waitGone(pid, 30*time.Second)
			}
		}
	})
	// Registered after the kill above, so it runs first: a failed test
	// shows what the nodes said before their folder is removed.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, a := range c.Addrs() {
			log, _ := os.ReadFile(filepath.Join(c.runDir, "redis-cluster", portOf(a)+".log"))
			t.Logf("private Redis Cluster node %s, last lines of its log:\n%s", a, lastLines(log, 15))
		}
	})
	c.Start()
	return c
}

// clusterPorts returns the first of six consecutive ports that are free on
// 127.0.0.1, as are their cluster bus ports (10000 higher).
func clusterPorts(t testing.TB) int {
	t.Helper()
	return consecutivePorts(t, clusterNodes, 10000, "a private Redis Cluster")
}

// consecutivePorts returns the first of n consecutive ports that are free on
// 127.0.0.1, as are the n ports offset higher.
func consecutivePorts(t testing.TB, n, offset int, what string) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(9000)
		free := true
		for i := range n {
			for _, p := range []int{base + i, base + i + offset} {
				ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
				if err != nil {
					free = false
					break
				}
				_ = ln.Close()
			}
		}
		if free {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports (and the %d above them) for %s", n, offset, what)
	return 0
}

// Addrs are the nodes' addresses, host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, clusterNodes)
	for i := range out {
		out[i] = "127.0.0.1:" + strconv.Itoa(c.base+i)
	}
	return out
}

// Start starts the nodes that are not running (a killed one restarts on
// its data and rejoins: a master that was failed over comes back as the
// replica of the one that replaced it) and waits until the cluster serves
// every slot, with three masters and three replicas that all agree.
func (c *Cluster) Start() {
	c.t.Helper()
	cmd := exec.Command(c.script, "cluster-up")
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("start private Redis Cluster on %d-%d: %v\n%s", c.base, c.base+clusterNodes-1, err, out)
	}
	// The script's fallback, fresh nodes, would lose the data the test
	// wrote: a failure for a reason that is not the code's under test.
	if strings.Contains(string(out), "fresh cluster nodes") {
		c.t.Fatalf("private Redis Cluster restarted on wiped nodes:\n%s", out)
	}
}

// Kill stops node addr with SIGKILL, as a crash would, and waits until it
// is gone.
func (c *Cluster) Kill(addr string) { c.signal(addr, syscall.SIGKILL) }

// Pause stops node addr's process with SIGSTOP (it neither answers nor
// reads what its master sends); Resume continues it.
func (c *Cluster) Pause(addr string)  { c.signal(addr, syscall.SIGSTOP) }
func (c *Cluster) Resume(addr string) { c.signal(addr, syscall.SIGCONT) }

func (c *Cluster) signal(addr string, sig syscall.Signal) {
	c.t.Helper()
	port, err := strconv.Atoi(portOf(addr))
	if err != nil || port < c.base || port >= c.base+clusterNodes {
		c.t.Fatalf("%s is not a node of the private cluster on %d-%d", addr, c.base, c.base+clusterNodes-1)
	}
	pid := c.pid(port)
	if pid <= 0 {
		c.t.Fatalf("private Redis Cluster node %s: no live process recorded in %s", addr, c.runDir)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		c.t.Fatalf("signal %v to Redis Cluster node %s (pid %d): %v", sig, addr, pid, err)
	}
	if sig == syscall.SIGKILL && !waitGone(pid, 30*time.Second) {
		c.t.Fatalf("Redis Cluster node %s (pid %d) still alive 30s after SIGKILL", addr, pid)
	}
}

// pid returns the recorded pid of the node on port when that process is a
// redis-server of that port (not a recycled pid), else 0.
func (c *Cluster) pid(port int) int {
	raw, err := os.ReadFile(filepath.Join(c.runDir, "redis-cluster", strconv.Itoa(port)+".pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0
	}
	// redis-server rewrites its command line as its title.
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(strings.ReplaceAll(string(cmdline), "\x00", " "), "redis-server 127.0.0.1:"+strconv.Itoa(port)) {
		return 0
	}
	return pid
}

// Node returns a client of node addr alone (no redirections), closed on
// cleanup.
func (c *Cluster) Node(addr string) *redis.Client {
	if cl := c.clients[addr]; cl != nil {
		return cl
	}
	cl := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	c.clients[addr] = cl
	return cl
}

// ClusterNode is one line of CLUSTER NODES.
type ClusterNode struct {
	ID, Addr string
	Master   bool   // flags has master
	Failed   bool   // flags has fail or fail?
	MasterID string // of a replica
	Slots    [][2]int
}

// Nodes returns the cluster's nodes as the first node that answers sees
// them (CLUSTER NODES).
func (c *Cluster) Nodes() []ClusterNode {
	c.t.Helper()
	var lastErr error
	for _, a := range c.Addrs() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		out, err := c.Node(a).ClusterNodes(ctx).Result()
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		nodes, err := parseClusterNodes(out)
		if err != nil {
			c.t.Fatal(err)
		}
		return nodes
	}
	c.t.Fatalf("no node of the private Redis Cluster answers CLUSTER NODES: %v", lastErr)
	return nil
}

// parseClusterNodes reads CLUSTER NODES: "<id> <ip:port@cport> <flags>
// <master id or -> <ping> <pong> <epoch> <link> <slot or range>...".
func parseClusterNodes(out string) ([]ClusterNode, error) {
	var nodes []ClusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := ClusterNode{ID: f[0], Addr: addr}
		for _, flag := range strings.Split(f[2], ",") {
			switch flag {
			case "master":
				n.Master = true
			case "fail", "fail?":
				n.Failed = true
			}
		}
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") { // a slot being migrated
				continue
			}
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("CLUSTER NODES slots %q in %q", r, line)
			}
			n.Slots = append(n.Slots, [2]int{a, b})
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// MasterOf returns the address of the master that serves key's slot
// (CLUSTER KEYSLOT, CLUSTER NODES), and of its replica.
func (c *Cluster) MasterOf(key string) (master, replica string) {
	c.t.Helper()
	var slot int64
	var err error
	for _, a := range c.Addrs() {
		if slot, err = c.Node(a).ClusterKeySlot(context.Background(), key).Result(); err == nil {
			break
		}
	}
	if err != nil {
		c.t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	nodes := c.Nodes()
	var id string
	for _, n := range nodes {
		for _, r := range n.Slots {
			if n.Master && !n.Failed && int(slot) >= r[0] && int(slot) <= r[1] {
				id, master = n.ID, n.Addr
			}
		}
	}
	if master == "" {
		c.t.Fatalf("no live master serves slot %d of %s: %+v", slot, key, nodes)
	}
	for _, n := range nodes {
		if n.MasterID == id && !n.Failed {
			replica = n.Addr
		}
	}
	return master, replica
}

// KeyOn returns a key (a hash tag alone: "{k<n>}") of a slot that master
// serves.
func (c *Cluster) KeyOn(master string) string {
	c.t.Helper()
	var ranges [][2]int
	for _, n := range c.Nodes() {
		if n.Addr == master && n.Master {
			ranges = n.Slots
		}
	}
	for i := range 10_000 {
		k := "{k" + strconv.Itoa(i) + "}"
		slot, err := c.Node(master).ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			c.t.Fatalf("CLUSTER KEYSLOT on %s: %v", master, err)
		}
		for _, r := range ranges {
			if int(slot) >= r[0] && int(slot) <= r[1] {
				return k
			}
		}
	}
	c.t.Fatalf("no key found on %s (slots %v)", master, ranges)
	return ""
}

// WaitMaster waits until node addr says it is a master (ROLE), e.g. a
// replica promoted after its master failed, and returns how long it took.
func (c *Cluster) WaitMaster(addr string, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		role, err := c.Node(addr).Do(ctx, "role").Slice()
		cancel()
		if err == nil && len(role) > 0 && role[0] == "master" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			c.t.Fatalf("Redis Cluster node %s not a master %s after: role %v, %v", addr, timeout, role, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// waitGone waits until pid has exited (or is a zombie not yet reaped).
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

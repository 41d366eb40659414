package procstat

import (
	"net"
	"os"
	"strconv"
	"testing"
)

func TestSelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := ListenerPID(ln.Addr().String()); got != os.Getpid() {
		t.Errorf("ListenerPID = %d, want this process %d", got, os.Getpid())
	}
	if got := Field(os.Getpid(), 4); got != strconv.Itoa(os.Getppid()) {
		t.Errorf("ppid field = %q, want %d", got, os.Getppid())
	}
	// Burn some CPU so at least one tick is counted.
	x := 0
	for i := range 300_000_000 {
		x ^= i
	}
	_ = x
	if CPUTicks(os.Getpid()) <= 0 {
		t.Error("no CPU time counted")
	}
	if rss := RSS(os.Getpid()); rss < 1<<20 {
		t.Errorf("RSS = %d bytes, want at least 1 MiB", rss)
	}
	if ListenerPID("127.0.0.1:1") != 0 || CPUTicks(-1) != 0 || RSS(-1) != 0 {
		t.Error("want zeros for nothing")
	}
}

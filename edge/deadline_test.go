package edge

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestLazyDeadlines checks that a lazily set read deadline is the one asked
// for last, whether it was loosened, tightened or cleared after an earlier
// one reached the socket.
func TestLazyDeadlines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		first     time.Duration // 0: none
		then      time.Duration // -1: clear
		sendAfter time.Duration // 0: never
		wantErr   bool
		atLeast   time.Duration
		atMost    time.Duration
	}{
		{"loosened", 50 * time.Millisecond, 300 * time.Millisecond, 0, true, 300 * time.Millisecond, 2 * time.Second},
		{"tightened", 2 * time.Second, 50 * time.Millisecond, 0, true, 50 * time.Millisecond, time.Second},
		{"first ever", 0, 50 * time.Millisecond, 0, true, 50 * time.Millisecond, time.Second},
		{"cleared", 50 * time.Millisecond, -1, 200 * time.Millisecond, false, 200 * time.Millisecond, 2 * time.Second},
		{"loosened, data in time", 50 * time.Millisecond, time.Second, 200 * time.Millisecond, false, 200 * time.Millisecond, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := tcpPair(t)
			c := &lazyDeadlineConn{Conn: server}
			start := time.Now()
			if tc.first > 0 {
				_ = c.SetReadDeadline(start.Add(tc.first))
			}
			if tc.then < 0 {
				_ = c.SetReadDeadline(time.Time{})
			} else {
				_ = c.SetReadDeadline(start.Add(tc.then))
			}
			if tc.sendAfter > 0 {
				go func() {
					time.Sleep(tc.sendAfter)
					_, _ = client.Write([]byte("x"))
				}()
			}
			_, err := c.Read(make([]byte, 1))
			took := time.Since(start)
			if gotErr := err != nil; gotErr != tc.wantErr || (err != nil && !errors.Is(err, os.ErrDeadlineExceeded)) {
				t.Fatalf("read error %v, want a timeout: %v", err, tc.wantErr)
			}
			if took < tc.atLeast || took > tc.atMost {
				t.Fatalf("read returned after %v, want %v..%v", took, tc.atLeast, tc.atMost)
			}
		})
	}
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return client, server
}

package edge

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// lazyDeadlineListener wraps accepted connections in lazyDeadlineConn.
type lazyDeadlineListener struct{ net.Listener }

func (l lazyDeadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lazyDeadlineConn{Conn: c}, nil
}

// lazyDeadlineConn makes fasthttp's per-request deadlines cheap. fasthttp
// sets a read deadline before waiting for a request (IdleTimeout), another
// at its first byte (ReadTimeout) and a write deadline before the answer
// (WriteTimeout): three timer updates in the runtime per request, ≈0.5 µs
// of a pixel's CPU in the profile (BENCHMARKS.md). Here a deadline is only
// recorded, and passed to the socket when the socket's deadline is later
// than it (or there is none): the socket's deadline is never later than the
// one asked for. When the socket's deadline fires before the one asked for,
// Read and Write set the asked-for one and carry on, so a timeout is only
// ever reported once the deadline fasthttp asked for has passed. On a busy
// keep-alive connection the socket's deadline therefore moves about once
// per ReadTimeout instead of three times per request.
type lazyDeadlineConn struct {
	net.Conn
	// Deadlines asked for and set on the socket, Unix ns, 0 for none.
	readWant, readSet   atomic.Int64
	writeWant, writeSet atomic.Int64
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOf(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// needSet reports whether a socket deadline set at set (0: none) can fire
// after want (0: none): then it has to move to want now.
func needSet(want, set int64) bool {
	return set == 0 && want != 0 || set > want && want != 0
}

func (c *lazyDeadlineConn) SetReadDeadline(t time.Time) error {
	want := unixNano(t)
	c.readWant.Store(want)
	if !needSet(want, c.readSet.Load()) {
		return nil
	}
	c.readSet.Store(want)
	return c.Conn.SetReadDeadline(t)
}

func (c *lazyDeadlineConn) SetWriteDeadline(t time.Time) error {
	want := unixNano(t)
	c.writeWant.Store(want)
	if !needSet(want, c.writeSet.Load()) {
		return nil
	}
	c.writeSet.Store(want)
	return c.Conn.SetWriteDeadline(t)
}

func (c *lazyDeadlineConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// early reports whether a timeout from the socket came before the deadline
// asked for, and if so moves the socket's deadline to it.
func early(err error, want, set *atomic.Int64, apply func(time.Time) error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	w := want.Load()
	if w != 0 && time.Now().UnixNano() >= w {
		return false // the deadline asked for has passed
	}
	set.Store(w)
	return apply(timeOf(w)) == nil
}

func (c *lazyDeadlineConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if n > 0 || err == nil || !early(err, &c.readWant, &c.readSet, c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

func (c *lazyDeadlineConn) Write(b []byte) (int, error) {
	written := 0
	for {
		n, err := c.Conn.Write(b[written:])
		written += n
		if err == nil || !early(err, &c.writeWant, &c.writeSet, c.Conn.SetWriteDeadline) {
			return written, err
		}
	}
}

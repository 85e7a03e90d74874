//go:build linux || darwin || freebsd || netbsd || openbsd

package email

import (
	"net"
	"syscall"
	"time"
)

// idleClean reports whether a pooled connection is as it was left: the
// server has neither closed it nor sent anything unasked (a "421 timeout"
// before closing, a TLS close_notify). It looks at the socket without
// waiting and without taking anything from it. A connection it cannot
// look at is taken as clean.
func idleClean(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	// The last transaction's deadline has passed on a connection idle for
	// longer than the send timeout, and a raw read past its deadline never
	// looks at the socket. The next transaction sets its own.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	clean := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read yet is the only clean answer; a byte, the end
		// of the stream (no error) or an error (a reset) are not.
		clean = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for the socket to become readable
	})
	return err == nil && clean
}

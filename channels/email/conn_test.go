package email

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingConn is the network under a trackedConn: it keeps each write
// apart, and answers reads from replies.
type recordingConn struct {
	net.Conn
	writes   [][]byte
	replies  *strings.Reader
	writeErr error
	closed   bool
}

func (r *recordingConn) Write(p []byte) (int, error) {
	if r.writeErr != nil {
		return 0, r.writeErr
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recordingConn) Read(p []byte) (int, error) { return r.replies.Read(p) }
func (r *recordingConn) Close() error               { r.closed = true; return nil }

// What go-mail writes between two reads goes out in one write, before the
// read; Close sends what is still held; a message larger than maxHeld goes
// out in parts; and a write that fails when held data goes out counts as a
// write failure (nothing reached the server), not as a lost reply.
func TestConnSendsEachTurnInOneWrite(t *testing.T) {
	raw := &recordingConn{replies: strings.NewReader("250 ok\r\n354 go\r\n")}
	tc := &trackedConn{Conn: raw}
	for _, w := range []string{"MAIL FROM:<a@b>", "\r\n"} {
		if _, err := tc.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	if len(raw.writes) != 0 {
		t.Fatalf("written before the read: %q", raw.writes)
	}
	buf := make([]byte, 8)
	if _, err := tc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if len(raw.writes) != 1 || string(raw.writes[0]) != "MAIL FROM:<a@b>\r\n" {
		t.Fatalf("writes before the first reply: %q, want the command in one", raw.writes)
	}
	// A read with nothing held writes nothing.
	if _, err := tc.Read(buf); err != nil {
		t.Fatal(err)
	}
	if len(raw.writes) != 1 {
		t.Fatalf("%d writes after a read with nothing held, want 1", len(raw.writes))
	}

	// A body of 3 × 4 KB (go-mail's flushes) and the end of data: one write.
	part := strings.Repeat("x", 4096)
	for range 3 {
		_, _ = tc.Write([]byte(part))
	}
	_, _ = tc.Write([]byte("\r\n.\r\n"))
	_ = tc.Close()
	if len(raw.writes) != 2 || len(raw.writes[1]) != 3*4096+5 || !raw.closed {
		t.Fatalf("after close: %d writes (last %d bytes), closed %v; want the body in one, then closed",
			len(raw.writes), len(raw.writes[len(raw.writes)-1]), raw.closed)
	}

	// More than maxHeld: what is held goes first, then the large part.
	raw = &recordingConn{replies: strings.NewReader("")}
	tc = &trackedConn{Conn: raw}
	_, _ = tc.Write([]byte("DATA\r\n"))
	big := bytes.Repeat([]byte("y"), maxHeld+1)
	if n, err := tc.Write(big); n != len(big) || err != nil {
		t.Fatalf("large write: %d, %v", n, err)
	}
	if len(raw.writes) != 2 || string(raw.writes[0]) != "DATA\r\n" || len(raw.writes[1]) != len(big) {
		t.Fatalf("large write went out as %d writes, want what was held, then it", len(raw.writes))
	}

	// A failed send of held data is a write failure.
	raw = &recordingConn{replies: strings.NewReader(""), writeErr: errors.New("connection reset by peer")}
	tc = &trackedConn{Conn: raw}
	_, _ = tc.Write([]byte("RCPT TO:<c@d>\r\n"))
	if _, err := tc.Read(buf); err == nil {
		t.Fatal("read after a failed write succeeded")
	}
	f := tc.failure()
	if f == nil || f.onRead || !strings.Contains(f.err.Error(), "reset") {
		t.Fatalf("failure %+v, want the write's error, not on read", f)
	}
}

// blockingConn's writes wait until it is closed, as a write to a peer
// that reads nothing does once the buffers are full.
type blockingConn struct {
	net.Conn
	writing, closed chan struct{}
	once, entered   sync.Once
}

func (b *blockingConn) Write(p []byte) (int, error) {
	b.entered.Do(func() { close(b.writing) })
	<-b.closed
	return 0, net.ErrClosed
}

func (b *blockingConn) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// A TLS handshake cut short by its context closes the connection from
// another goroutine while the handshake is writing: Close must end that
// write, not wait for it (nor touch what it is writing).
func TestConnCloseEndsAWriteInProgress(t *testing.T) {
	raw := &blockingConn{writing: make(chan struct{}), closed: make(chan struct{})}
	tc := &trackedConn{Conn: raw}
	_, _ = tc.Write([]byte("EHLO varsel\r\n")) // held
	wrote := make(chan error, 1)
	go func() {
		_, err := tc.Write(bytes.Repeat([]byte("z"), maxHeld+1)) // sends what is held first
		wrote <- err
	}()
	<-raw.writing
	closed := make(chan struct{})
	go func() { _ = tc.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the write it should end")
	}
	if err := <-wrote; err == nil {
		t.Fatal("the write ended by Close succeeded")
	}
}

// A TLS connection under go-mail ends with a close_notify: crypto/tls
// writes it and then sets the write deadline to now, so what is held goes
// out when the deadline changes, before Close.
func TestConnSendsTheTLSCloseNotify(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		s := tls.Server(c, serverTLS)
		buf := make([]byte, 16)
		n, err := io.ReadFull(s, buf[:5])
		if err != nil || string(buf[:n]) != "hello" {
			got <- fmt.Errorf("read %q, %v", buf[:n], err)
			return
		}
		// A close_notify reads as io.EOF; a connection closed without
		// one as an error of its own.
		_, err = s.Read(buf)
		got <- err
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := &trackedConn{Conn: raw}
	c := tls.Client(tc, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != io.EOF {
		t.Fatalf("the server's read after the data: %v, want io.EOF", err)
	}
	// crypto/tls reads a bare close at a record's end as io.EOF too: the
	// alert went out if no write failed.
	if f := tc.failure(); f != nil {
		t.Fatalf("a write failed on the way out: %v (the close_notify was lost)", f.err)
	}
}

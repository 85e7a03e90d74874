package email

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// received is one message the test server accepted.
type received struct {
	From string
	To   []string
	Data []byte
}

// testServer is an in-process SMTP server (github.com/emersion/go-smtp) on
// 127.0.0.1 that records messages and counts connections.
type testServer struct {
	Host string
	Port int

	// User and Pass, when set, are required through AUTH PLAIN.
	User, Pass string
	// TLS, when set, enables STARTTLS; with Implicit the listener speaks
	// TLS from the first byte.
	TLS      *tls.Config
	Implicit bool
	// Discard drops message bodies (benchmarks).
	Discard bool
	// LineLimit, when set, is the longest line the server takes, CRLF
	// included (RFC 5321: 1000); go-smtp's default is 2000.
	LineLimit int
	// Hide names extensions left out of the EHLO reply (not with TLS):
	// without CHUNKING the channel pipelines DATA; without PIPELINING too,
	// it sends with go-mail's one command at a time.
	Hide []string
	// Record keeps what each read on a plain connection got (reads()).
	Record bool
	// OnRcpt and OnData, when set, may refuse a command; OnData must
	// consume r when it returns nil.
	OnRcpt func(to string) error
	OnData func(c *smtp.Conn, r io.Reader) error

	mu       sync.Mutex
	reads    []string
	msgs     []received
	overTLS  int // messages received over TLS
	sessions int // connections ever opened
	open     int
	maxOpen  int
	conns    map[*smtp.Conn]bool
}

func startServer(t testing.TB, configure func(*testServer)) *testServer {
	t.Helper()
	ts := &testServer{conns: map[*smtp.Conn]bool{}}
	if configure != nil {
		configure(ts)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.Hide) > 0 || ts.Record {
		if ts.TLS != nil {
			t.Fatal("testServer: Hide and Record work on plain connections only")
		}
		l = hidingListener{l, ts}
	}
	if ts.Implicit {
		l = tls.NewListener(l, ts.TLS)
	}
	s := smtp.NewServer(ts)
	s.TLSConfig = ts.TLS
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	if ts.LineLimit > 0 {
		s.MaxLineLength = ts.LineLimit
	}
	s.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	addr := l.Addr().(*net.TCPAddr)
	ts.Host, ts.Port = "127.0.0.1", addr.Port
	return ts
}

// hidingListener's connections leave extensions out of the EHLO reply:
// go-smtp always offers PIPELINING and CHUNKING, and writes each line of a
// reply on its own (it flushes each).
type hidingListener struct {
	net.Listener
	ts *testServer
}

func (l hidingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return hidingConn{c, l.ts}, nil
}

type hidingConn struct {
	net.Conn
	ts *testServer
}

func (c hidingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.ts.Record && n > 0 {
		c.ts.mu.Lock()
		c.ts.reads = append(c.ts.reads, string(p[:n]))
		c.ts.mu.Unlock()
	}
	return n, err
}

func (c hidingConn) Write(p []byte) (int, error) {
	for _, h := range c.ts.Hide {
		if string(p) == "250-"+h+"\r\n" {
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// dialogues runs f against a server that offers PIPELINING and CHUNKING
// (go-smtp's default: the channel sends commands and message in one
// write), one that offers PIPELINING alone (it pipelines the commands up
// to DATA) and one that offers neither (go-mail's one command at a time);
// hide is what f's server must leave out.
func dialogues(t *testing.T, f func(t *testing.T, hide []string)) {
	t.Run("chunked", func(t *testing.T) { f(t, nil) })
	t.Run("pipelined", func(t *testing.T) { f(t, []string{"CHUNKING"}) })
	t.Run("one command at a time", func(t *testing.T) { f(t, []string{"PIPELINING", "CHUNKING"}) })
}

// config returns a channel config for ts.
func (ts *testServer) config() Config {
	return Config{Host: ts.Host, Port: ts.Port, TLS: TLSNone, From: "Driftsstatus Æøå <status@example.com>",
		Username: ts.User, Password: ts.Pass}
}

func (ts *testServer) messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.msgs...)
}

func (ts *testServer) counts() (sessions, maxOpen int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.sessions, ts.maxOpen
}

// dropAll closes every open connection from the server side, as an idle
// timeout on a real server would.
func (ts *testServer) dropAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for c := range ts.conns {
		_ = c.Conn().Close()
	}
}

func (ts *testServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.sessions++
	ts.open++
	ts.maxOpen = max(ts.maxOpen, ts.open)
	ts.conns[c] = true
	return &session{ts: ts, conn: c}, nil
}

type session struct {
	ts     *testServer
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.ts.User || pass != s.ts.Pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.ts.User != "" && !s.authed {
		return errAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.ts.OnRcpt != nil {
		if err := s.ts.OnRcpt(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	if s.ts.OnData != nil {
		if err := s.ts.OnData(s.conn, r); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	w := io.Writer(&buf)
	if s.ts.Discard {
		w = io.Discard
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	s.ts.msgs = append(s.ts.msgs, received{From: s.from, To: s.to, Data: buf.Bytes()})
	if _, ok := s.conn.TLSConnectionState(); ok {
		s.ts.overTLS++
	}
	return nil
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error {
	s.ts.mu.Lock()
	defer s.ts.mu.Unlock()
	s.ts.open--
	delete(s.ts.conns, s.conn)
	return nil
}

// errDropped is returned by an OnData hook that closed the connection.
var errDropped = errors.New("connection dropped by test")

package email

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varsel/varsel/notifier"
)

// scripted is one connection to a scripted SMTP server: the test says
// what it reads and writes, so it can hold its replies back.
type scripted struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// line reads one command line and fails the test unless it starts with
// prefix.
func (s *scripted) line(prefix string) string {
	s.t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Errorf("server: reading %q: %v", prefix, err)
		return ""
	}
	if !strings.HasPrefix(l, prefix) {
		s.t.Errorf("server: got %q, want %q", l, prefix)
	}
	return l
}

// body reads a message up to its lone dot.
func (s *scripted) body() string {
	s.t.Helper()
	var b strings.Builder
	for {
		l := s.line("")
		if l == ".\r\n" || l == "" {
			return b.String()
		}
		b.WriteString(l)
	}
}

// takeMessage accepts the pipelined MAIL, RCPT and DATA just read, then
// the message.
func (s *scripted) takeMessage() {
	s.send("250 ok", "250 ok", "354 go ahead")
	s.body()
	s.send("250 queued")
}

// quit answers the client's QUIT.
func (s *scripted) quit() {
	s.line("QUIT")
	s.send("221 bye")
}

// drain reads whatever comes until the client lets go of the connection.
func (s *scripted) drain() {
	_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.ReadAll(s.r)
}

func (s *scripted) send(lines ...string) {
	_, _ = s.conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
}

// greet answers the greeting and EHLO, offering PIPELINING and the
// extensions named.
func (s *scripted) greet(ext ...string) {
	s.greetWith(append([]string{"PIPELINING"}, ext...)...)
}

// greetWith answers the greeting and EHLO, offering the extensions named.
func (s *scripted) greetWith(ext ...string) {
	s.send("220 scripted ESMTP")
	s.line("EHLO")
	lines := []string{"250-scripted"}
	for _, e := range ext {
		lines = append(lines, "250-"+e)
	}
	s.send(append(lines, "250-8BITMIME", "250 ENHANCEDSTATUSCODES")...)
}

// chunk reads a BDAT command's chunk and says whether it was the last.
func (s *scripted) chunk() (string, bool) {
	s.t.Helper()
	l := s.line("BDAT ")
	var n int
	var last string
	if _, err := fmt.Sscanf(l, "BDAT %d %s", &n, &last); err != nil {
		s.t.Errorf("server: %q: %v", l, err)
		return "", false
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		s.t.Errorf("server: reading a chunk of %d: %v", n, err)
	}
	return string(b), last == "LAST"
}

// scriptedServer serves each connection with handle (n counts them from
// 1) on 127.0.0.1 and returns a channel config for it.
func scriptedServer(t *testing.T, handle func(n int, s *scripted)) Config {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(n, &scripted{t: t, conn: c, r: bufio.NewReader(c)})
			}()
		}
	}()
	return Config{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, TLS: TLSNone,
		From: "Driftsstatus <status@example.com>", SendTimeout: 3 * time.Second}
}

// TestPipelinedCommandsNeedNoReplyInBetween: on a server that offers
// PIPELINING, MAIL FROM, RCPT TO and DATA go out before any reply (this
// server answers none until it has all three; a client that waited
// would time out), with the parameters go-mail sends.
func TestPipelinedCommandsNeedNoReplyInBetween(t *testing.T) {
	read := make(chan []string, 1)
	cfg := scriptedServer(t, func(n int, s *scripted) {
		s.greet()
		got := []string{s.line("MAIL FROM:"), s.line("RCPT TO:"), s.line("DATA")}
		s.send("250 2.1.0 ok", "250 2.1.5 ok", "354 go ahead")
		read <- append(got, s.body())
		s.send("250 2.0.0 queued")
		s.quit()
	})
	ch := newChannel(t, cfg, nil)
	mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
	got := <-read
	if len(got) != 4 {
		t.Fatalf("server read %d parts, want 4", len(got))
	}
	if got[0] != "MAIL FROM:<status@example.com> BODY=8BITMIME\r\n" || got[1] != "RCPT TO:<kari@example.com>\r\n" {
		t.Errorf("commands %q", got[:2])
	}
	if !strings.Contains(got[3], "\r\nSubject:") || !strings.Contains(got[3], "List-Unsubscribe-Post: List-Unsubscribe=One-Click") {
		t.Errorf("message is not the composed email:\n%s", got[3])
	}
}

// TestPipelinedRefusalReadsEveryReply: a refused recipient is the bounce
// even when a careless server then says 354 to DATA. The server then waits
// for a message it should not take: the connection is closed with nothing
// more sent (a transaction cut off in its data is discarded), and the
// next email goes on a new one.
func TestPipelinedRefusalReadsEveryReply(t *testing.T) {
	after := make(chan string, 1)
	cfg := scriptedServer(t, func(n int, s *scripted) {
		s.greet()
		if n == 1 {
			s.line("MAIL FROM:")
			s.line("RCPT TO:<ghost@")
			s.line("DATA")
			s.send("250 2.1.0 ok", "550 5.1.1 <ghost@example.com>: no such user", "354 go ahead")
			_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, err := io.ReadAll(s.r)
			after <- fmt.Sprintf("%q %v", rest, err)
			return
		}
		s.line("MAIL FROM:")
		s.line("RCPT TO:<kari@")
		s.line("DATA")
		s.takeMessage()
		s.quit()
	})
	ch := newChannel(t, cfg, nil)
	_, retry, err := ch.Notify(context.Background(), delivery("ev-1", subscriber("ghost"), nil))
	if err == nil || retry || notifier.ReasonOf(err) != notifier.ReasonBounced {
		t.Fatalf("retry=%v reason=%s err=%v, want a bounce without retry", retry, notifier.ReasonOf(err), err)
	}
	if !strings.Contains(err.Error(), "send RCPT TO: 550") || !strings.Contains(err.Error(), "5.1.1") || strings.Contains(err.Error(), "ghost@example.com") {
		t.Errorf("error %q: want RCPT's reply, the address masked", err)
	}
	if got := <-after; got != `"" <nil>` {
		t.Errorf("after the 354 the server read %s, want nothing and the end of the connection", got)
	}
	mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
}

// TestUnreadableReplyDropsTheConnection: a reply net/textproto cannot
// read (a bare code) leaves the dialogue out of step: whatever was refused
// before it, the connection is not used again, so the next email does not
// read this one's replies.
func TestUnreadableReplyDropsTheConnection(t *testing.T) {
	for _, tt := range []struct {
		name    string
		replies []string
		reason  notifier.Reason
	}{
		{"after a refused MAIL", []string{"451 4.3.0 try later", "503", "503 5.5.1 need MAIL"}, notifier.ReasonServer},
		{"after a refused RCPT", []string{"250 ok", "550 5.1.1 no such user", "554"}, notifier.ReasonBounced},
		{"a 421 after a refused RCPT", []string{"250 ok", "550 5.1.1 no such user", "421 4.3.2 shutting down"}, notifier.ReasonBounced},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := scriptedServer(t, func(n int, s *scripted) {
				s.greet()
				s.line("MAIL FROM:")
				s.line("RCPT TO:")
				s.line("DATA")
				if n == 1 {
					s.send(tt.replies...)
					s.drain()
					return
				}
				s.takeMessage()
				s.quit()
			})
			ch := newChannel(t, cfg, nil)
			d := delivery("ev-1", subscriber("kari"), nil)
			if _, _, err := ch.Notify(context.Background(), d); notifier.ReasonOf(err) != tt.reason {
				t.Fatalf("reason=%s err=%v, want %s", notifier.ReasonOf(err), err, tt.reason)
			}
			d = delivery("ev-2", subscriber("kari"), nil)
			mustSend(t, ch, d) // on connection 2: connection 1 would fail it
		})
	}
}

// TestPipelinedClosingReplyRedials: "421 closing" to MAIL on a pooled
// connection (the server timed it out) is no failure: nothing was
// accepted, so the email goes on a new connection; the replies that
// will never come are not waited for.
func TestPipelinedClosingReplyRedials(t *testing.T) {
	cfg := scriptedServer(t, func(n int, s *scripted) {
		s.greet()
		s.line("MAIL FROM:")
		s.line("RCPT TO:")
		s.line("DATA")
		if n == 1 {
			s.takeMessage()
			s.line("MAIL FROM:")
			s.line("RCPT TO:")
			s.line("DATA")
			s.send("421 4.4.2 idle too long, closing")
			// Held open: a client that read on past the 421 would wait.
			s.drain()
			return
		}
		s.takeMessage()
		s.quit()
	})
	ch := newChannel(t, cfg, nil)
	mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
	start := time.Now()
	mustSend(t, ch, delivery("ev-2", subscriber("kari"), nil))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the redial took %v: replies after 421 were waited for", took)
	}
}

// TestPipelinedTemporaryRefusalOfMailKeepsTheConnection: a 4xx to MAIL
// FROM (and so 503 to RCPT and DATA) is a retried server failure, and the
// connection, in no transaction, carries the next email without RSET.
func TestPipelinedTemporaryRefusalOfMailKeepsTheConnection(t *testing.T) {
	cfg := scriptedServer(t, func(n int, s *scripted) {
		if n > 1 {
			t.Errorf("connection %d: the first should have been kept", n)
			return
		}
		s.greet()
		s.line("MAIL FROM:")
		s.line("RCPT TO:")
		s.line("DATA")
		s.send("451 4.3.0 try again later", "503 5.5.1 need MAIL", "503 5.5.1 need MAIL")
		s.line("MAIL FROM:")
		s.line("RCPT TO:")
		s.line("DATA")
		s.takeMessage()
		s.quit()
	})
	ch := newChannel(t, cfg, nil)
	d := delivery("ev-1", subscriber("kari"), nil)
	_, retry, err := ch.Notify(context.Background(), d)
	if err == nil || !retry || notifier.ReasonOf(err) != notifier.ReasonServer || !strings.Contains(err.Error(), "send MAIL FROM: 451") {
		t.Fatalf("retry=%v reason=%s err=%v, want MAIL's 451, retried", retry, notifier.ReasonOf(err), err)
	}
	d.Attempt = 2
	mustSend(t, ch, d)
	_ = ch.Close()
}

// TestChunkedEmailNeedsNoReplyBeforeTheMessage: on a server that offers
// CHUNKING too, the message goes out as BDAT's chunk right after the
// commands, before any reply (this server answers none until it has the
// whole chunk), sized and not dot-stuffed.
func TestChunkedEmailNeedsNoReplyBeforeTheMessage(t *testing.T) {
	read := make(chan []string, 1)
	cfg := scriptedServer(t, func(n int, s *scripted) {
		s.greet("CHUNKING")
		got := []string{s.line("MAIL FROM:"), s.line("RCPT TO:")}
		msg, last := s.chunk()
		if !last {
			t.Error("the chunk is not the last")
		}
		s.send("250 2.1.0 ok", "250 2.1.5 ok", "250 2.0.0 queued")
		read <- append(got, msg)
		s.quit()
	})
	ch := newChannel(t, cfg, nil)
	mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
	got := <-read
	if got[0] != "MAIL FROM:<status@example.com> BODY=8BITMIME\r\n" || got[1] != "RCPT TO:<kari@example.com>\r\n" {
		t.Errorf("commands %q", got[:2])
	}
	m := parse(t, []byte(got[2]))
	if m.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Errorf("chunk is not the composed email:\n%s", got[2])
	}
	if strings.Contains(got[2], "\r\n..") || !strings.HasSuffix(got[2], "\r\n") {
		t.Errorf("chunk is dot-stuffed or unterminated:\n%s", got[2])
	}
}

// TestChunkedRefusalResetsAndKeepsTheConnection: a refused recipient is
// the bounce; BDAT's refusal after it is not what is reported; RSET ends
// MAIL's transaction and the connection carries the next email.
func TestChunkedRefusalResetsAndKeepsTheConnection(t *testing.T) {
	cfg := scriptedServer(t, func(n int, s *scripted) {
		if n > 1 {
			t.Errorf("connection %d: the first should have been kept", n)
			return
		}
		s.greet("CHUNKING")
		s.line("MAIL FROM:")
		s.line("RCPT TO:<ghost@")
		s.chunk()
		s.send("250 2.1.0 ok", "550 5.1.1 no such user", "554 5.5.1 no valid recipients")
		s.line("RSET")
		s.send("250 2.0.0 reset")
		s.line("MAIL FROM:")
		s.line("RCPT TO:<kari@")
		s.chunk()
		s.send("250 ok", "250 ok", "250 queued")
		s.quit()
	})
	ch := newChannel(t, cfg, nil)
	_, retry, err := ch.Notify(context.Background(), delivery("ev-1", subscriber("ghost"), nil))
	if err == nil || retry || notifier.ReasonOf(err) != notifier.ReasonBounced || !strings.Contains(err.Error(), "send RCPT TO: 550") {
		t.Fatalf("retry=%v reason=%s err=%v, want RCPT's bounce", retry, notifier.ReasonOf(err), err)
	}
	mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
}

// TestChunkedVerdictNotHeardIsAmbiguous: when the connection breaks after
// the commands and the message went out together and MAIL was answered,
// the server may have the email: the failure says so (and is retried).
func TestChunkedVerdictNotHeardIsAmbiguous(t *testing.T) {
	cfg := scriptedServer(t, func(n int, s *scripted) {
		s.greet("CHUNKING")
		s.line("MAIL FROM:")
		s.line("RCPT TO:")
		s.chunk()
		s.send("250 2.1.0 ok")
	})
	ch := newChannel(t, cfg, nil)
	_, retry, err := ch.Notify(context.Background(), delivery("ev-1", subscriber("kari"), nil))
	if err == nil || !retry || notifier.ReasonOf(err) != notifier.ReasonAmbiguous {
		t.Fatalf("retry=%v reason=%s err=%v, want an ambiguous failure, retried", retry, notifier.ReasonOf(err), err)
	}
}

// TestPipeliningPolicy: pipelining=commands never sends BDAT, even to a
// server that offers CHUNKING; pipelining=off sends one command at a time
// (nothing follows MAIL FROM until it is answered).
func TestPipeliningPolicy(t *testing.T) {
	t.Run("commands", func(t *testing.T) {
		cfg := scriptedServer(t, func(n int, s *scripted) {
			s.greet("CHUNKING")
			s.line("MAIL FROM:")
			s.line("RCPT TO:")
			s.line("DATA\r\n")
			s.takeMessage()
			s.quit()
		})
		cfg.Pipelining = PipeliningCommands
		ch := newChannel(t, cfg, nil)
		mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
	})
	t.Run("off", func(t *testing.T) {
		cfg := scriptedServer(t, func(n int, s *scripted) {
			s.greet("CHUNKING")
			s.line("MAIL FROM:")
			// A pipelining client has sent RCPT and DATA in the same write.
			_ = s.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if b, err := s.r.Peek(1); err == nil {
				t.Errorf("%q followed MAIL FROM before its reply", b)
			}
			s.r = bufio.NewReader(s.conn) // the timed-out reader is spent
			s.send("250 ok")
			s.line("RCPT TO:")
			s.send("250 ok")
			s.line("DATA\r\n")
			s.send("354 go ahead")
			s.body()
			s.send("250 queued")
			s.quit()
		})
		cfg.Pipelining = PipeliningOff
		ch := newChannel(t, cfg, nil)
		mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
	})
}

// TestChunkedLostRepliesAreAmbiguousNotResent: when the connection breaks
// after the commands and the message went out together, before any reply,
// the server may have the email: it is not sent again at once on a new
// connection as if the pooled one had been stale, but failed as ambiguous
// (and retried on the schedule).
func TestChunkedLostRepliesAreAmbiguousNotResent(t *testing.T) {
	var mu sync.Mutex
	received := 0
	cfg := scriptedServer(t, func(n int, s *scripted) {
		s.greet("CHUNKING")
		for i := 0; ; i++ {
			if l := s.line("MAIL FROM:"); l == "" || strings.HasPrefix(l, "QUIT") {
				return
			}
			s.line("RCPT TO:")
			s.chunk()
			mu.Lock()
			received++
			mu.Unlock()
			if n == 1 && i == 1 {
				return // took the second email, then the connection broke
			}
			s.send("250 ok", "250 ok", "250 queued")
		}
	})
	ch := newChannel(t, cfg, nil)
	mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
	_, retry, err := ch.Notify(context.Background(), delivery("ev-2", subscriber("kari"), nil))
	if err == nil || !retry || notifier.ReasonOf(err) != notifier.ReasonAmbiguous || !strings.Contains(err.Error(), "send BDAT") {
		t.Fatalf("retry=%v reason=%s err=%v, want an ambiguous BDAT, retried", retry, notifier.ReasonOf(err), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if received != 2 {
		t.Errorf("the server got %d messages, want 2: the second sent once", received)
	}
}

// TestIdlePooledConnectionClosedByServer: a pooled connection the server
// closed while it was idle, with a 421 first or without a word, is seen
// before anything is written on it: the email goes on a new connection,
// once (with BDAT a lost reply could not say so).
func TestIdlePooledConnectionClosedByServer(t *testing.T) {
	for _, farewell := range []string{"421 4.4.2 idle too long, closing", ""} {
		t.Run(fmt.Sprintf("%q", farewell), func(t *testing.T) {
			closed := make(chan struct{})
			cfg := scriptedServer(t, func(n int, s *scripted) {
				s.greet("CHUNKING")
				s.line("MAIL FROM:")
				s.line("RCPT TO:")
				s.chunk()
				s.send("250 ok", "250 ok", "250 queued")
				if n > 1 {
					s.quit()
					return
				}
				if farewell == "" {
					_ = s.conn.Close()
					close(closed)
					return
				}
				// Later than the verdict, so that it waits in the socket,
				// not in what the client read with the verdict.
				time.Sleep(20 * time.Millisecond)
				s.send(farewell)
				close(closed)
				// Held open after its farewell: nothing may come.
				_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if rest, _ := io.ReadAll(s.r); len(rest) > 0 {
					t.Errorf("sent after the server's 421: %q", rest)
				}
			})
			ch := newChannel(t, cfg, nil)
			mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
			<-closed
			time.Sleep(20 * time.Millisecond) // from the server's write to the client's socket
			mustSend(t, ch, delivery("ev-2", subscriber("kari"), nil))
		})
	}
}

// TestIdleLongerThanTheSendTimeoutIsKept: a pooled connection idle for
// longer than the send timeout (whose deadline has passed) is still used.
func TestIdleLongerThanTheSendTimeoutIsKept(t *testing.T) {
	dialogues(t, func(t *testing.T, hide []string) {
		ts := startServer(t, func(ts *testServer) { ts.Hide = hide })
		cfg := ts.config()
		cfg.SendTimeout = 100 * time.Millisecond
		ch := newChannel(t, cfg, nil)
		mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
		time.Sleep(200 * time.Millisecond)
		mustSend(t, ch, delivery("ev-2", subscriber("kari"), nil))
		if sessions, _ := ts.counts(); sessions != 1 {
			t.Errorf("%d connections, want 1", sessions)
		}
	})
}

// TestReplyOutOfTurnIsNotTheNextEmails: a line the server sent after the
// verdict, read into go-mail's buffer with it, is not taken for the next
// email's reply: that email goes on a new connection.
func TestReplyOutOfTurnIsNotTheNextEmails(t *testing.T) {
	cfg := scriptedServer(t, func(n int, s *scripted) {
		s.greet()
		s.line("MAIL FROM:")
		s.line("RCPT TO:")
		s.line("DATA")
		s.send("250 ok", "250 ok", "354 go ahead")
		s.body()
		if n == 1 {
			s.send("250 queued", "500 5.5.1 out of turn")
			s.drain()
			return
		}
		s.send("250 queued")
		s.quit()
	})
	ch := newChannel(t, cfg, nil)
	mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
	mustSend(t, ch, delivery("ev-2", subscriber("kari"), nil))
}

// TestRefusedResetDropsTheConnection: after a refused recipient, a server
// that does not answer RSET with 250 may still hold the transaction: the
// connection is not used again, pipelined or one command at a time.
func TestRefusedResetDropsTheConnection(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			cfg := scriptedServer(t, func(n int, s *scripted) {
				if pipelining {
					s.greet()
				} else {
					s.greetWith()
				}
				if n == 1 {
					if pipelining {
						s.line("MAIL FROM:")
						s.line("RCPT TO:")
						s.line("DATA")
						s.send("250 ok", "550 5.1.1 no such user", "503 5.5.1 no recipients")
					} else {
						s.line("MAIL FROM:")
						s.send("250 ok")
						s.line("RCPT TO:")
						s.send("550 5.1.1 no such user")
					}
					// Every RSET refused, until the client lets go.
					_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					for {
						l, err := s.r.ReadString('\n')
						if err != nil {
							return
						}
						if l != "RSET\r\n" {
							t.Errorf("after the refused RSET: %q", l)
						}
						s.send("451 4.3.0 cannot reset now")
					}
				}
				s.line("MAIL FROM:")
				if !pipelining {
					s.send("250 ok")
				}
				s.line("RCPT TO:")
				if !pipelining {
					s.send("250 ok")
				}
				s.line("DATA")
				if pipelining {
					s.send("250 ok", "250 ok")
				}
				s.send("354 go ahead")
				s.body()
				s.send("250 queued")
				s.quit()
			})
			ch := newChannel(t, cfg, nil)
			if _, _, err := ch.Notify(context.Background(), delivery("ev-1", subscriber("ghost"), nil)); notifier.ReasonOf(err) != notifier.ReasonBounced {
				t.Fatalf("reason=%s err=%v, want bounced", notifier.ReasonOf(err), err)
			}
			mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
		})
	}
}

// TestDialoguesTakeTheirWays: the three servers of dialogues do lead the
// channel into its three dialogues, as the server sees them.
func TestDialoguesTakeTheirWays(t *testing.T) {
	dialogues(t, func(t *testing.T, hide []string) {
		ts := startServer(t, func(ts *testServer) { ts.Hide, ts.Record = hide, true })
		ch := newChannel(t, ts.config(), nil)
		mustSend(t, ch, delivery("ev-1", subscriber("kari"), nil))
		ts.mu.Lock()
		reads := ts.reads
		ts.mu.Unlock()
		var chunked, together bool
		for _, r := range reads {
			chunked = chunked || strings.Contains(r, "BDAT ")
			together = together || (strings.Contains(r, "MAIL FROM:") && strings.Contains(r, "RCPT TO:"))
		}
		want := map[int][2]bool{0: {true, true}, 1: {false, true}, 2: {false, false}}[len(hide)]
		if chunked != want[0] || together != want[1] {
			t.Errorf("BDAT %v, MAIL and RCPT in one read %v; want %v, %v. Reads: %q", chunked, together, want[0], want[1], reads)
		}
	})
}

package email

import (
	"bytes"
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// step is the part of a mail transaction a send failed in.
type step int

const (
	stepSend      step = iota // not known (an error without a stage)
	stepConnCheck             // the connection was gone before the transaction
	stepMailFrom
	stepRcptTo
	stepData
	stepWrite // writing the message after DATA's 354
	stepChunk // BDAT's chunk, sent with the commands: its verdict, or replies lost after it
	stepDataClose
	stepReset
)

// failure is a failed mail transaction, whichever way it was sent: go-mail's
// one command at a time, or pipelined (sendPipelined).
type failure struct {
	step     step
	code     int    // the server's reply code; 0 when it did not answer
	enhanced string // its enhanced status code (RFC 3463), when it has them
	err      error
	// delivered: the server took the message; only something after it failed.
	delivered bool
	// clean: every reply of the transaction was read and the server is in
	// no transaction, so the connection can carry the next email.
	clean bool
}

// goMailFailure reads go-mail's SendError into a failure; err is not nil.
func goMailFailure(err error, msg *gomail.Msg) *failure {
	// go-mail resets after a refused MAIL or RCPT; replyError decides.
	f := &failure{err: err, clean: true}
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return f
	}
	f.code, f.enhanced = se.ErrorCode(), se.EnhancedStatusCode()
	f.delivered = msg.IsDelivered()
	switch se.Reason {
	case gomail.ErrConnCheck:
		f.step = stepConnCheck
	case gomail.ErrSMTPMailFrom:
		f.step = stepMailFrom
	case gomail.ErrSMTPRcptTo:
		f.step = stepRcptTo
	case gomail.ErrSMTPData:
		f.step = stepData
	case gomail.ErrWriteContent:
		f.step = stepWrite
	case gomail.ErrSMTPDataClose:
		f.step = stepDataClose
	case gomail.ErrSMTPReset:
		f.step = stepReset
	}
	return f
}

// stage names the SMTP step of f, for the error text.
func (f *failure) stage() string {
	switch f.step {
	case stepConnCheck:
		return "check smtp connection"
	case stepMailFrom:
		return "send MAIL FROM"
	case stepRcptTo:
		return "send RCPT TO"
	case stepData:
		return "send DATA"
	case stepWrite:
		return "write message"
	case stepChunk:
		return "send BDAT"
	case stepDataClose:
		return "end DATA"
	case stepReset:
		return "send RSET"
	}
	return "send email"
}

// replyError reports whether the server answered MAIL or RCPT with an error,
// every other reply was read and the transaction was reset: the connection
// is still good. Not after 421, with which a server closes the connection
// (RFC 5321, 3.8).
func (f *failure) replyError() bool {
	return f.clean && f.code >= 400 && f.code != 421 && (f.step == stepMailFrom || f.step == stepRcptTo)
}

// stale reports whether a send on a reused connection failed because the
// connection had gone stale: an I/O error or "421 closing" at MAIL FROM
// (or go-mail's connection check), when the server has accepted nothing.
// With BDAT the message went out with MAIL, so a lost reply to MAIL is
// stepChunk's, never stale: the server may have the email.
func (f *failure) stale(io *ioFailure) bool {
	switch f.step {
	case stepConnCheck:
		return true
	case stepMailFrom:
		return io != nil || f.code == 421
	}
	return false
}

// extensions are what a connection's server offers that a pipelined
// transaction needs to know, read from its EHLO reply once.
type extensions struct {
	pipelining bool
	chunking   bool   // CHUNKING with PIPELINING: BDAT after the commands
	enhanced   bool   // ENHANCEDSTATUSCODES
	mailParams string // what go-mail adds to MAIL FROM for this server
}

// readExtensions reads what the server offers, as far as policy (a
// Pipelining value) allows using it.
func readExtensions(sc *smtp.Client, policy string) extensions {
	var e extensions
	if policy != PipeliningOff {
		e.pipelining, _ = sc.Extension("PIPELINING")
	}
	if ok, _ := sc.Extension("CHUNKING"); ok && e.pipelining && policy == PipeliningAuto {
		e.chunking = true
	}
	e.enhanced, _ = sc.Extension("ENHANCEDSTATUSCODES")
	// The parameters go-mail's Client.Mail sends (Varsel asks for no DSN).
	if ok, _ := sc.Extension("8BITMIME"); ok {
		e.mailParams += " BODY=8BITMIME"
	}
	if ok, _ := sc.Extension("SMTPUTF8"); ok {
		e.mailParams += " SMTPUTF8"
	}
	return e
}

var enhancedCode = regexp.MustCompile(`\b[245]\.\d{1,3}\.\d{1,3}\b`)

// sendPipelined runs one mail transaction on a server that offers
// PIPELINING (RFC 2920): MAIL FROM, RCPT TO and DATA go out in one write
// and their replies are read in order, then the message and its end. When
// the server also offers CHUNKING (RFC 3030), the message itself follows
// in the same write as BDAT's chunk, sized, not dot-stuffed, without
// waiting for 354. The message is composed, signed and written by go-mail
// either way, through go-mail's connection. go-mail, like go-smtp's
// client, waits for each reply before the next command: four round trips
// an email where this takes two, or one. Each reply is read even after
// one failed, as RFC 2920 requires, and the first failure is the one
// reported: a refused recipient is RCPT's failure, not DATA's.
func sendPipelined(sc *smtp.Client, ext extensions, msg *gomail.Msg, timeout time.Duration) *failure {
	from, err := msg.GetSender(false)
	if err != nil {
		return &failure{step: stepMailFrom, err: err}
	}
	rcpts, err := msg.GetRecipients()
	if err != nil {
		return &failure{step: stepRcptTo, err: err}
	}
	for _, a := range append([]string{from}, rcpts...) {
		if strings.ContainsAny(a, "\r\n") {
			return &failure{step: stepMailFrom, err: fmt.Errorf("address %q holds a line break", a)}
		}
	}
	var chunk *bytes.Buffer
	if ext.chunking {
		chunk = chunkPool.Get().(*bytes.Buffer)
		defer putChunk(chunk)
		if _, err := msg.WriteTo(chunk); err != nil {
			return &failure{step: stepWrite, err: err}
		}
	}
	// As go-mail before each send: the transaction's deadline.
	if err := sc.UpdateDeadline(timeout); err != nil {
		return &failure{step: stepConnCheck, err: err}
	}
	t := sc.Text
	// The connection (trackedConn) sends what is written before the next
	// read in one write: these commands are one TCP send.
	if err := t.PrintfLine("MAIL FROM:%s%s", from, ext.mailParams); err != nil {
		return &failure{step: stepMailFrom, err: err}
	}
	for _, r := range rcpts {
		if err := t.PrintfLine("RCPT TO:%s", r); err != nil {
			return &failure{step: stepRcptTo, err: err}
		}
	}
	if chunk != nil {
		// The whole message as one last chunk. A server that refuses
		// MAIL or RCPT still reads the chunk (RFC 3030, 2) and refuses it.
		fmt.Fprintf(t.W, "BDAT %d LAST\r\n", chunk.Len())
		_, _ = t.W.Write(chunk.Bytes())
		if err := t.W.Flush(); err != nil {
			return &failure{step: stepWrite, err: err}
		}
	} else if err := t.PrintfLine("DATA"); err != nil {
		return &failure{step: stepData, err: err}
	}

	var first *failure
	read := func(s step, expect int) (ok, goOn bool) {
		_, _, err := t.ReadResponse(expect)
		if err == nil {
			return true, true
		}
		f := replyFailure(s, err, ext)
		if f.code == 0 && chunk != nil {
			// The message went out with the commands: a verdict not
			// heard, the server may have it.
			f.step = stepChunk
		}
		if first == nil {
			first = f
		}
		// No reply code: the connection failed. 421: the server is
		// closing it. Either way no more replies will come.
		return false, f.code != 0 && f.code != 421
	}
	mailOK, goOn := read(stepMailFrom, 250)
	if !goOn {
		return first
	}
	for range rcpts {
		if _, goOn = read(stepRcptTo, 25); !goOn {
			return first
		}
	}
	if chunk != nil {
		if _, goOn = read(stepChunk, 250); !goOn || first == nil {
			return first
		}
		first.clean = true
		if mailOK && first.step == stepRcptTo {
			// MAIL's transaction is still open: end it, or the next
			// MAIL is refused.
			first.clean = sc.Reset() == nil
		}
		return first
	}
	dataOK, goOn := read(stepData, 354)
	if !goOn {
		return first
	}
	if first != nil {
		if dataOK {
			// 354 although MAIL or every RCPT was refused: the server
			// waits for a message it should not take. Leaving it there,
			// the connection is dropped (not clean), and a server
			// discards a transaction cut off in its data (RFC 5321,
			// 4.1.1.4): nothing is delivered.
			return first
		}
		first.clean = true
		if mailOK {
			// MAIL's transaction is open: end it, or the next MAIL is
			// refused.
			first.clean = sc.Reset() == nil
		}
		return first
	}

	w := t.DotWriter()
	if _, err := msg.WriteTo(w); err != nil {
		return &failure{step: stepWrite, err: err}
	}
	// As go-mail's DataCloser: the dot writer's own error is a write that
	// the reply's read reports too.
	_ = w.Close()
	if _, _, err := t.ReadResponse(250); err != nil {
		return replyFailure(stepDataClose, err, ext)
	}
	return nil
}

// chunkPool holds the buffers BDAT's chunks are composed in.
var chunkPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putChunk(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return // a rare large message: let it go
	}
	b.Reset()
	chunkPool.Put(b)
}

// replyFailure is a failed read of a reply at s: the server's refusal, or
// the connection's failure.
func replyFailure(s step, err error, ext extensions) *failure {
	f := &failure{step: s, err: err}
	var tpe *textproto.Error
	if errors.As(err, &tpe) {
		f.code = tpe.Code
		if ext.enhanced {
			f.enhanced = enhancedCode.FindString(tpe.Msg)
		}
	}
	return f
}

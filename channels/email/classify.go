package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"syscall"

	"github.com/varsel/varsel/notifier"
)

// classify turns a failed send into a *notifier.SendError and says whether
// a retry can help. go-mail's SendError.IsTemp only looks at reply codes and
// hides the I/O error under it, so the connection's own record (io) and the
// raw dial error decide network failures.
func (c *Channel) classify(action string, f *failure, io *ioFailure, ctxErr error, rcpt string) (*notifier.SendError, bool) {
	code, enhanced, err := f.code, f.enhanced, f.err
	if tpe := (*textproto.Error)(nil); code == 0 && errors.As(err, &tpe) {
		code = tpe.Code
	}
	reason, retry := notifier.ReasonUnknown, true
	switch {
	case ctxErr != nil && errors.Is(ctxErr, context.DeadlineExceeded):
		reason = notifier.ReasonTimeout
	case ctxErr != nil:
		// The caller gave up (shutdown); the job goes back to the queue.
	case code >= 500 && code < 600:
		retry = false
		reason = notifier.ReasonRejected
		if f.step == stepRcptTo && !policyRefusal(code, enhanced) {
			reason = notifier.ReasonBounced
		}
	case code >= 400 && code < 500:
		reason = notifier.ReasonServer
	case io != nil && isTimeout(io.err):
		reason = notifier.ReasonTimeout
	case (f.step == stepDataClose || f.step == stepChunk) && io != nil && io.onRead:
		// The whole message went out and the connection broke while we
		// waited for the verdict: the server may have queued it. (Over
		// TLS a close_notify ends the stream above the connection, which
		// sees no error: that shows as a network failure, retried too.)
		reason = notifier.ReasonAmbiguous
	case io != nil:
		reason = notifier.ReasonNetwork
	case isTimeout(err):
		reason = notifier.ReasonTimeout
	case isNetwork(err):
		reason = notifier.ReasonNetwork
	}
	msg := action + ": " + c.redact(err.Error(), rcpt)
	errs := []error{err}
	if io != nil && !errors.Is(err, io.err) {
		// go-mail's SendError does not unwrap to the I/O error; keep it
		// reachable for errors.Is(err, os.ErrDeadlineExceeded) and friends.
		errs = append(errs, io.err)
		if !strings.Contains(msg, io.err.Error()) {
			msg += " (" + c.redact(io.err.Error(), rcpt) + ")"
		}
	}
	if ctxErr != nil {
		errs = append(errs, ctxErr)
	}
	return &notifier.SendError{Reason: reason, Err: &redactedError{msg: msg, errs: errs}}, retry
}

// policyRefusal reports whether a 5xx RCPT reply is about us (relaying
// denied, authentication required, our reputation: 530, 5.7.x) rather than
// the address; those must not count as the subscriber's hard bounce, or one
// misconfiguration would pause email for everyone.
func policyRefusal(code int, enhanced string) bool {
	return code == 530 || strings.HasPrefix(enhanced, "5.7.")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// isNetwork reports whether err is a dial, I/O or TLS failure, which a later
// attempt may not meet.
func isNetwork(err error) bool {
	var (
		ne    net.Error
		op    *net.OpError
		errno syscall.Errno
		rh    tls.RecordHeaderError
		ae    tls.AlertError
		cve   *tls.CertificateVerificationError
		uae   x509.UnknownAuthorityError
		hne   x509.HostnameError
	)
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &op) || errors.As(err, &ne) || errors.As(err, &errno) ||
		errors.As(err, &rh) || errors.As(err, &ae) || errors.As(err, &cve) ||
		errors.As(err, &uae) || errors.As(err, &hne)
}

// redact masks the recipient address and the SMTP password in s. go-mail
// puts the recipient in its error text and servers often echo it.
func (c *Channel) redact(s, rcpt string) string {
	if rcpt != "" {
		s = strings.ReplaceAll(s, rcpt, notifier.MaskEmail(rcpt))
	}
	if c.cfg.Password != "" {
		s = strings.ReplaceAll(s, c.cfg.Password, "xxxxx")
	}
	return s
}

// redactedError carries a failure with a message safe to log and store; the
// original errors stay reachable through errors.Is and errors.As.
type redactedError struct {
	msg  string
	errs []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.errs }

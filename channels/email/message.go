package email

import (
	"crypto/sha256"
	"encoding/hex"
	"net/mail"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"github.com/varsel/varsel/notifier"
)

// MessageID returns the Message-ID (without angle brackets) of the email
// about eventID to subscriberID. It is deterministic, so a resend carries the
// same id and later messages of an incident can point back to the first.
func MessageID(eventID, subscriberID, domain string) string {
	sum := sha256.Sum256([]byte(eventID + "|" + subscriberID))
	return hex.EncodeToString(sum[:16]) + ".varsel@" + domain
}

// threadRoot returns the Message-ID of the first email of d's incident for
// d's subscriber, or "" when d starts the thread or has no incident.
func threadRoot(d *notifier.Delivery, domain string) string {
	if d.Incident == nil || d.Incident.FirstEventID == "" || d.Incident.FirstEventID == d.Event.ID {
		return ""
	}
	return MessageID(d.Incident.FirstEventID, d.Subscriber.ID, domain)
}

// buildMessage turns a delivery into a go-mail message and its Message-ID,
// DKIM-signed when configured. Its errors are *notifier.SendError and never
// worth a retry.
func (c *Channel) buildMessage(d *notifier.Delivery) (*gomail.Msg, string, error) {
	msg, id, err := Compose(d, c.from)
	if err != nil {
		return nil, "", err
	}
	if len(c.dkimKeys) > 0 {
		if err := signMessage(msg, c.dkimKeys); err != nil {
			return nil, "", &notifier.SendError{Reason: notifier.ReasonUnknown, Err: err}
		}
	}
	return msg, id, nil
}

// Compose builds the email for a delivery, as sent and as the outbox keeps
// it: both MIME parts, threading and unsubscribe headers, and its
// deterministic Message-ID (returned without angle brackets). Its errors
// are *notifier.SendError and never worth a retry.
func Compose(d *notifier.Delivery, from *mail.Address) (*gomail.Msg, string, error) {
	fromDomain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	if d.Event == nil || d.Subscriber == nil {
		return nil, "", &notifier.SendError{Reason: notifier.ReasonUnknown, Err: ErrIncomplete}
	}
	to := d.Subscriber.Email
	if a, err := mail.ParseAddress(to); to == "" || err != nil || a.Address != to {
		return nil, "", &notifier.SendError{Reason: notifier.ReasonInvalidAddress, Err: ErrBadAddress}
	}
	m := d.Message
	if m == nil || strings.TrimSpace(m.Subject) == "" || (strings.TrimSpace(m.Text) == "" && strings.TrimSpace(m.HTML) == "") {
		return nil, "", &notifier.SendError{Reason: notifier.ReasonTemplate, Err: ErrEmptyMessage}
	}
	if m.UnsubscribeURL == "" && !m.Staff {
		return nil, "", &notifier.SendError{Reason: notifier.ReasonTemplate, Err: ErrNoUnsubscribe}
	}

	msg := gomail.NewMsg(gomail.WithCharset(gomail.CharsetUTF8), gomail.WithEncoding(gomail.EncodingQP))
	msg.SetAddrHeaderFromMailAddress(gomail.HeaderFrom, from)
	msg.SetAddrHeaderFromMailAddress(gomail.HeaderTo, &mail.Address{Name: d.Subscriber.Name, Address: to})
	msg.Subject(m.Subject)
	msg.SetDate()
	id := MessageID(d.Event.ID, d.Subscriber.ID, fromDomain)
	msg.SetMessageIDWithValue(id)
	if root := threadRoot(d, fromDomain); root != "" {
		msg.SetGenHeader(gomail.HeaderInReplyTo, "<"+root+">")
		msg.SetGenHeader(gomail.HeaderReferences, "<"+root+">")
	}
	if m.Locale != "" {
		msg.SetGenHeader(gomail.HeaderContentLang, m.Locale)
	}
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	// Tell auto-responders (Exchange) not to answer a status notice.
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	if !m.Staff {
		msg.SetGenHeader(gomail.HeaderListUnsubscribe, "<"+m.UnsubscribeURL+">")
		msg.SetGenHeader(gomail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	msg.SetUserAgent("Varsel")

	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	}
	return msg, id, nil
}

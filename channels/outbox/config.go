package outbox

import (
	"errors"
	"net/mail"
)

// Config says where the outbox writes.
type Config struct {
	// Dir is the outbox root: email/<event>/<subscriber>.eml, sms.jsonl
	// and webhook.jsonl go below it. Usually $VARSEL_DATA_DIR/outbox.
	Dir string
	// From is the From header of outbox email (VARSEL_MAIL_FROM).
	From string
	// UserAgent is the User-Agent a webhook line shows, "Varsel/<version>"
	// as the webhook channel sends it; empty means webhook.DefaultUserAgent.
	UserAgent string
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("outbox: Dir is required"))
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, errors.New("outbox: From must be an address such as \"Status <status@localhost>\""))
	}
	return errors.Join(errs...)
}

package notifier

// Message is an event rendered for one subscriber on one channel. Only the
// fields of that channel are filled.
type Message struct {
	// Locale is the language of the fixed phrases ("en" or "nb").
	Locale string
	// ContentLocale is the language of the incident's free text, which may
	// differ from Locale when the producer did not write the reader's language.
	ContentLocale string

	Subject string // email
	Text    string // email plain text
	HTML    string // email HTML

	SMS      string // SMS body, GSM-7 where possible
	Segments int    // SMS segments the body needs

	WebhookText string // the "text" field of the webhook payload
	// ComponentNames names the event's components (webhook): id → name
	// from the site file in Locale, the id itself when the file does not
	// name it. Shared between subscribers: read only.
	ComponentNames map[string]string

	StatusURL      string // public status page
	IncidentURL    string // the incident's page, "" for letters without one
	UnsubscribeURL string // one-click unsubscribe for this subscriber and channel
	PreferencesURL string // the subscriber's own page (email only)

	// Staff marks an email to Varsel's own staff (a promise reminder), not
	// to a subscriber: it has no unsubscribe link and no List-Unsubscribe.
	Staff bool
}

// Renderer turns an event into a message for one subscriber on one channel.
// Implementations render once per (event, locale, channel, time zone) and
// only personalize per subscriber, and must be safe for concurrent use.
type Renderer interface {
	Render(ev *Event, inc *IncidentState, sub *Subscriber, ch ChannelName) (*Message, error)
}

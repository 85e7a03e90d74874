package render

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/varsel/varsel/notifier"
)

// ConfirmLinkValidity is how long a sign-up confirmation link works. The
// email says so, and notifier/web signs its links to expire after it.
const ConfirmLinkValidity = 48 * time.Hour

// confirmSubscription names the templates of the confirmation email:
// subject.N, email.txt.N and email.txt.N.footer in templates/confirm.tmpl,
// email.html.N in templates/confirm.html.tmpl.
const confirmSubscription = "confirm.subscription"

// confirmView is what the confirmation templates see. It embeds a view so
// the shared email head and end (which read .Locale, .Subject, .Impact)
// work unchanged.
type confirmView struct {
	view
	Email      string // the address that asked, as typed
	ConfirmURL string // the signed link that creates the subscription
	Hours      int    // how long the link works
}

// ConfirmSubscription renders the email that asks someone who signed up on
// the status page to confirm their address (double opt-in): what they asked
// for, the link, how long it works, and that nothing happens if they ignore
// it. It has no greeting by name and no unsubscribe footer: there is no
// subscriber yet. locale is resolved like a subscriber's (en, nb, variants,
// else the default). cancelURL becomes Message.UnsubscribeURL, the
// List-Unsubscribe header's one-click target (RFC 8058): notifier/web's
// signed link that cancels the sign-up. Errors are missing arguments or
// template and catalogue defects.
func (r *Renderer) ConfirmSubscription(email, locale, confirmURL, cancelURL string) (*notifier.Message, error) {
	if strings.TrimSpace(email) == "" || strings.TrimSpace(confirmURL) == "" || strings.TrimSpace(cancelURL) == "" {
		return nil, errors.New("render confirmation: email, confirmation URL and cancel URL are required")
	}
	locale = ResolveLocale(locale, r.defaultLocale)
	ls := r.sets[locale]
	if ls == nil {
		return nil, fmt.Errorf("render confirmation: %w %q", ErrUnknownLocale, locale)
	}
	wrap := func(err error) error { return fmt.Errorf("render confirmation for %s: %w", locale, err) }
	v := &confirmView{
		view: view{
			Type: confirmSubscription, Kind: "notice",
			Locale: locale, ContentLocale: locale,
			StatusURL: r.cfg.PublicURL + "/",
		},
		Email:      email,
		ConfirmURL: confirmURL,
		Hours:      int(ConfirmLinkValidity / time.Hour),
	}
	v.Link = v.StatusURL
	subject, err := ls.execText("subject."+confirmSubscription, v)
	if err != nil {
		return nil, wrap(err)
	}
	v.Subject = strings.Join(strings.Fields(subject), " ")
	text, err := ls.execText("email.txt."+confirmSubscription, v)
	if err != nil {
		return nil, wrap(err)
	}
	// The footer is added after tidy, which would strip the space of the
	// signature separator "-- ".
	footer, err := ls.execText("email.txt."+confirmSubscription+".footer", v)
	if err != nil {
		return nil, wrap(err)
	}
	var html strings.Builder
	for _, name := range []string{"email.html.head", "email.html." + confirmSubscription, "email.html.end"} {
		s, err := ls.execHTML(name, v)
		if err != nil {
			return nil, wrap(err)
		}
		html.WriteString(s)
	}
	return &notifier.Message{
		Locale: locale, ContentLocale: locale,
		Subject: v.Subject, Text: tidy(text) + "\n\n" + footer + "\n", HTML: html.String(),
		StatusURL: v.StatusURL,
		// A mail client's "unsubscribe" on this email cancels the sign-up.
		UnsubscribeURL: cancelURL,
	}, nil
}

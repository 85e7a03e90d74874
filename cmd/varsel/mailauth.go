package main

import (
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/varsel/varsel/channels/email"
)

// validateDKIM checks the DKIM settings and reads their key files, so a
// missing, unreadable or unusable key stops serve at start-up with the
// other configuration problems instead of failing every email later.
func (c *Config) validateDKIM(bad func(env, format string, args ...any)) {
	if c.DKIMDomain != "" && c.DKIMKeyFile != "" {
		if _, _, err := email.CheckDKIMKeyFile(c.DKIMKeyFile); err != nil {
			bad("VARSEL_DKIM_KEY_FILE", "%v", err)
		}
	}
	if c.DKIMRSASelector == "" && c.DKIMRSAKeyFile == "" {
		return
	}
	if c.DKIMDomain == "" {
		bad("VARSEL_DKIM_RSA_SELECTOR", "the second (RSA) signature needs the first: set VARSEL_DKIM_DOMAIN, VARSEL_DKIM_SELECTOR and VARSEL_DKIM_KEY_FILE too")
	}
	if c.DKIMRSASelector == "" || c.DKIMRSAKeyFile == "" {
		bad("VARSEL_DKIM_RSA_SELECTOR", "set both VARSEL_DKIM_RSA_SELECTOR and VARSEL_DKIM_RSA_KEY_FILE, or neither")
	}
	if c.DKIMRSASelector != "" && c.DKIMRSASelector == c.DKIMSelector {
		bad("VARSEL_DKIM_RSA_SELECTOR", "%q is VARSEL_DKIM_SELECTOR too: each key needs a selector (DNS record) of its own", c.DKIMRSASelector)
	}
	if c.DKIMRSAKeyFile != "" {
		switch alg, _, err := email.CheckDKIMKeyFile(c.DKIMRSAKeyFile); {
		case err != nil:
			bad("VARSEL_DKIM_RSA_KEY_FILE", "%v", err)
		case alg != "rsa":
			bad("VARSEL_DKIM_RSA_KEY_FILE", "%s holds an %s key; this one must be RSA (put the Ed25519 key in VARSEL_DKIM_KEY_FILE)", c.DKIMRSAKeyFile, alg)
		}
	}
}

// emailDKIM returns the email channel's DKIM keys: none without
// VARSEL_DKIM_DOMAIN, the second only with VARSEL_DKIM_RSA_KEY_FILE.
func (c *Config) emailDKIM() (first, rsa *email.DKIMConfig) {
	if c.DKIMDomain == "" {
		return nil, nil
	}
	first = &email.DKIMConfig{Domain: c.DKIMDomain, Selector: c.DKIMSelector, KeyFile: c.DKIMKeyFile}
	if c.DKIMRSAKeyFile != "" {
		rsa = &email.DKIMConfig{Domain: c.DKIMDomain, Selector: c.DKIMRSASelector, KeyFile: c.DKIMRSAKeyFile}
	}
	return first, rsa
}

// warnPublicURL warns once when the links in messages are plain http to
// a host other than loopback: RFC 8058 one-click List-Unsubscribe wants an
// https URI, and mailbox providers ignore (or distrust) other ones.
func warnPublicURL(logger *slog.Logger, publicURL string) {
	u, err := url.Parse(publicURL)
	if err != nil || strings.EqualFold(u.Scheme, "https") || isLoopbackHost(u.Hostname()) {
		return
	}
	logger.Warn("VARSEL_PUBLIC_URL is not https: the List-Unsubscribe links in emails are not RFC 8058 one-click conformant, and mailbox providers may ignore them",
		"public_url", u.Scheme+"://"+u.Host)
}

// isLoopbackHost reports whether host is localhost, 127.0.0.0/8 or ::1.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

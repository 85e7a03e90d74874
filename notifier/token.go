package notifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
	"sync"
)

// ErrBadToken means a link token was forged, altered or malformed.
var ErrBadToken = errors.New("invalid or altered link")

// Token purposes.
const (
	PurposeUnsubscribe = "u"
	PurposeConfirm     = "c"
	// PurposePreferences is the subscriber's own page,
	// /preferences/{token}: SubscriberID names the subscriber and Channel
	// is empty. Like an unsubscribe link it does not expire; rotating
	// VARSEL_SECRET revokes every link at once.
	PurposePreferences = "p"
)

// TokenClaims is what a signed link token says.
type TokenClaims struct {
	Purpose      string
	SubscriberID string
	Channel      ChannelName
}

// Tokens signs and verifies the tokens in unsubscribe and confirmation
// links with HMAC-SHA256 under VARSEL_SECRET.
type Tokens struct {
	key  []byte
	macs sync.Pool // hash.Hash keyed with key: Sign runs once per message
}

// NewTokens returns a signer for secret, which must be at least 16 bytes.
func NewTokens(secret []byte) (*Tokens, error) {
	if len(secret) < 16 {
		return nil, errors.New("secret must be at least 16 bytes")
	}
	t := &Tokens{key: append([]byte(nil), secret...)}
	t.macs.New = func() any { return hmac.New(sha256.New, t.key) }
	return t, nil
}

// Sign returns a URL-safe token naming the subscriber and channel.
func (t *Tokens) Sign(c TokenClaims) string {
	payload := make([]byte, 0, len(c.Purpose)+len(c.SubscriberID)+len(c.Channel)+2)
	payload = append(append(append(append(append(payload, c.Purpose...), '|'), c.SubscriberID...), '|'), c.Channel...)
	var sum [sha256.Size]byte
	mac := t.sum(sum[:0], payload)
	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(payload))+1+enc.EncodedLen(len(mac)))
	out = enc.AppendEncode(out, payload)
	out = append(out, '.')
	out = enc.AppendEncode(out, mac)
	return string(out)
}

// Verify checks a token in constant time and returns its claims, or an error
// wrapping ErrBadToken.
func (t *Tokens) Verify(token string) (TokenClaims, error) {
	enc := base64.RawURLEncoding
	p64, s64, ok := strings.Cut(token, ".")
	if !ok {
		return TokenClaims{}, ErrBadToken
	}
	payload, err1 := enc.DecodeString(p64)
	sig, err2 := enc.DecodeString(s64)
	var sum [sha256.Size]byte
	if err1 != nil || err2 != nil || !hmac.Equal(sig, t.sum(sum[:0], payload)) {
		return TokenClaims{}, ErrBadToken
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 3 {
		return TokenClaims{}, ErrBadToken
	}
	return TokenClaims{Purpose: parts[0], SubscriberID: parts[1], Channel: ChannelName(parts[2])}, nil
}

// sum appends the MAC of payload to dst.
func (t *Tokens) sum(dst, payload []byte) []byte {
	m := t.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(tokenDomain)
	m.Write(payload)
	dst = m.Sum(dst)
	t.macs.Put(m)
	return dst
}

// tokenDomain separates link tokens from any other use of the secret.
var tokenDomain = []byte("varsel-link-v1|")

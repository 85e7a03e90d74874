package notifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// ErrBadToken means a link token was forged, altered or malformed.
var ErrBadToken = errors.New("invalid or altered link")

// Token purposes.
const (
	PurposeUnsubscribe = "u"
	PurposeConfirm     = "c"
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
	key []byte
}

// NewTokens returns a signer for secret, which must be at least 16 bytes.
func NewTokens(secret []byte) (*Tokens, error) {
	if len(secret) < 16 {
		return nil, errors.New("secret must be at least 16 bytes")
	}
	return &Tokens{key: append([]byte(nil), secret...)}, nil
}

// Sign returns a URL-safe token naming the subscriber and channel.
func (t *Tokens) Sign(c TokenClaims) string {
	payload := c.Purpose + "|" + c.SubscriberID + "|" + string(c.Channel)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(t.mac(payload))
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
	if err1 != nil || err2 != nil || !hmac.Equal(sig, t.mac(string(payload))) {
		return TokenClaims{}, ErrBadToken
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 3 {
		return TokenClaims{}, ErrBadToken
	}
	return TokenClaims{Purpose: parts[0], SubscriberID: parts[1], Channel: ChannelName(parts[2])}, nil
}

func (t *Tokens) mac(payload string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte("varsel-link-v1|"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

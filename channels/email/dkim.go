package email

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"
)

// MinRSABits is the smallest RSA key Varsel signs with: RFC 8301 forbids
// signing with less, and verifiers ignore such signatures.
const MinRSABits = 1024

// dkimHeaders are the headers every DKIM signature covers when present:
// the usual list, the threading and language headers, and the two
// List-Unsubscribe headers that RFC 8058 section 4 requires to be signed
// (a one-click URL that a forwarder could swap would be a gift to phishers).
var dkimHeaders = []string{
	"From", "To", "Subject", "Date", "Message-ID", "Content-Type", "MIME-Version",
	"In-Reply-To", "References", "Content-Language", "Auto-Submitted",
	"List-Unsubscribe", "List-Unsubscribe-Post",
}

// dkimOversigned are signed once more than they occur, so nobody can add a
// second copy in transit without breaking the signature.
var dkimOversigned = []string{"From", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post"}

// dkimField is the header field name of a signature.
const dkimField = "DKIM-Signature"

// dkimKey is one configured signing key.
type dkimKey struct {
	domain, selector string
	key              crypto.Signer
}

// signer parses the configured key.
func (d *DKIMConfig) signer() (crypto.Signer, error) {
	b, err := d.keyPEM()
	if err != nil {
		return nil, err
	}
	k, err := parseDKIMKey(b)
	if err != nil {
		if d.KeyFile != "" && len(d.Key) == 0 {
			return nil, fmt.Errorf("dkim key %s: %w", d.KeyFile, err)
		}
		return nil, fmt.Errorf("dkim key: %w", err)
	}
	return k, nil
}

// CheckDKIMKeyFile reads the PEM private key in file the way the channel
// will and says what it holds: "rsa" or "ed25519" and its size in bits.
// Its errors name the file and never show any of the key.
func CheckDKIMKeyFile(file string) (algorithm string, bits int, err error) {
	k, err := (&DKIMConfig{KeyFile: file}).signer()
	if err != nil {
		return "", 0, err
	}
	algorithm, bits = keyAlgorithm(k)
	return algorithm, bits, nil
}

func keyAlgorithm(k crypto.Signer) (string, int) {
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		return "rsa", pub.N.BitLen()
	case ed25519.PublicKey:
		return "ed25519", 256
	}
	return fmt.Sprintf("%T", k.Public()), 0
}

// parseDKIMKey accepts an unencrypted RSA (PKCS#1 or PKCS#8) or Ed25519
// (PKCS#8) private key in PEM; RSA keys need at least MinRSABits.
func parseDKIMKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("not a PEM file (want a PRIVATE KEY block, e.g. from openssl genpkey)")
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("the private key is encrypted; store it unencrypted, readable only by varsel")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return nil, errors.New("an ECDSA key: DKIM signs with RSA or Ed25519 only")
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q (want PRIVATE KEY or RSA PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too small: want at least %d (2048 recommended, RFC 8301)", n, MinRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		name := strings.TrimPrefix(fmt.Sprintf("%T", key), "*")
		return nil, fmt.Errorf("a %s key: DKIM signs with RSA or Ed25519 only", name)
	}
}

// signedHeaders is the h= list for the serialized message raw: each header
// of dkimHeaders as often as it occurs, the oversigned ones once more
// (RFC 6376 section 8.15), so none of those can be added in transit.
func signedHeaders(raw []byte) ([]string, error) {
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("read message header: %w", err)
	}
	var keys []string
	for _, name := range dkimHeaders {
		for range h.Values(name) {
			keys = append(keys, name)
		}
	}
	// One instance more than there are is signed as empty: adding one
	// breaks the signature.
	return append(keys, dkimOversigned...), nil
}

// sign returns the DKIM-Signature header field for the serialized message
// raw, with relaxed/relaxed canonicalization (whitespace and header-name
// case may change on the way, as when a mail store re-folds headers),
// folded by go-msgauth: tags at tag boundaries, b= in 75-byte chunks. It
// ends in CRLF.
func (k *dkimKey) sign(raw []byte, headerKeys []string) (string, error) {
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain: k.domain, Selector: k.selector, Signer: k.key, Hash: crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             headerKeys,
	})
	if err != nil {
		return "", err
	}
	defer s.Close()
	if _, err := s.Write(raw); err != nil {
		return "", err
	}
	if err := s.Close(); err != nil {
		return "", err
	}
	return s.Signature(), nil
}

// refold folds a header field again so that its lines keep within 78
// octets (RFC 5322 section 2.1.1) where a word allows: go-msgauth leaves
// its first line at up to 90. It breaks only where whitespace already is,
// which relaxed canonicalization reads the same way, so the signature
// stays valid. h= has no whitespace and stays on one line of its own
// (about 210 octets with our header list, far from the 998 limit).
func refold(field string) string {
	words := strings.Fields(field)
	var b strings.Builder
	line := 0
	for i, w := range words {
		switch {
		case i == 0:
		case line+1+len(w) > 78:
			b.WriteString("\r\n")
			line = 0
			fallthrough
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String() + "\r\n"
}

// signMessage DKIM-signs msg with every key: it serializes msg, signs
// those bytes and adds the signatures as one preformatted header, which
// go-mail writes as it is. go-mail's own signer is not used: it folds the
// h= tag inside header names, which breaks relaxed canonicalization.
//
// A go-mail message serializes to the same bytes every time once written
// (its Date and Message-ID are set, and the multipart boundary is kept
// after the first write), so the bytes sent are the bytes signed, plus
// the DKIM-Signature fields.
func signMessage(msg *gomail.Msg, keys []dkimKey) error {
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("serialize message: %w", err)
	}
	raw := buf.Bytes()
	headerKeys, err := signedHeaders(raw)
	if err != nil {
		return err
	}
	values := make([]string, 0, len(keys))
	for i := range keys {
		sig, err := keys[i].sign(raw, headerKeys)
		if err != nil {
			return fmt.Errorf("dkim sign with %s._domainkey.%s: %w", keys[i].selector, keys[i].domain, err)
		}
		v, ok := strings.CutPrefix(refold(sig), dkimField+": ")
		if !ok {
			return fmt.Errorf("dkim sign: unexpected signature field %.20q", sig)
		}
		values = append(values, strings.TrimSuffix(v, "\r\n"))
	}
	// go-mail writes "<name>: <value>\r\n"; a second signature rides in the
	// same value as a field of its own.
	msg.SetGenHeaderPreformatted(gomail.Header(dkimField), strings.Join(values, "\r\n"+dkimField+": "))
	return nil
}

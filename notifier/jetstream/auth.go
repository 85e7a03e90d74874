package jetstream

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
)

// The embedded server asks every client who it is. Two users exist, each
// written once as a nats CLI context file (mode 0600) under
// $VARSEL_DATA_DIR/nats/:
//
//   - varsel.json: the service itself, and every CLI command on the same
//     machine; it may do everything;
//   - producer.json: for the systems that publish incident events; it may
//     publish to varsel.events.> and receive the replies to its own
//     requests (the stream's acknowledgements), nothing else. It cannot
//     read a bucket, a stream or the link secret.
//
// The service's own connections use their own inbox prefix, so the replies
// they receive (a subscriber read, the secret) never travel on _INBOX.>,
// where a producer may listen.
const (
	ServiceUser  = "varsel"
	ProducerUser = "producer"
	// ServiceInbox is the inbox prefix of the service's connections.
	ServiceInbox = "_VARSEL_INBOX"
	// CredentialsDir is where the context files are, under the data dir.
	CredentialsDir = "nats"
)

// Credentials say who a client is to NATS: user and password, a token, a
// .creds file (JWT and nkey seed) or an nkey seed. Empty connects
// anonymously.
type Credentials struct {
	User      string
	Password  string
	Token     string
	CredsFile string
	NKeySeed  string
}

// options are the nats.go options that present the credentials.
func (c Credentials) options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeed != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: %w", c.NKeySeed, err)
		}
		opts = append(opts, opt)
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	return opts, nil
}

// natsContext is the part of a nats CLI context file Varsel reads and
// writes (as `nats context save` stores them).
type natsContext struct {
	Description string `json:"description,omitempty"`
	URL         string `json:"url"`
	User        string `json:"user,omitempty"`
	Password    string `json:"password,omitempty"`
	Token       string `json:"token,omitempty"`
	Creds       string `json:"creds,omitempty"`
	NKey        string `json:"nkey,omitempty"`
}

// LoadContext reads a nats CLI context file (JSON with url, user and
// password, token, creds or nkey) or a .creds file, and returns the URL it
// names (empty for a .creds file) and the credentials.
func LoadContext(path string) (string, Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", Credentials{}, fmt.Errorf("nats context: %w", err)
	}
	if strings.HasSuffix(path, ".creds") || strings.Contains(string(b), "-----BEGIN NATS USER JWT-----") {
		return "", Credentials{CredsFile: path}, nil
	}
	var nc natsContext
	if err := json.Unmarshal(b, &nc); err != nil {
		return "", Credentials{}, fmt.Errorf("nats context %s: not a nats CLI context file (JSON with url, user, password) nor a .creds file: %w", path, err)
	}
	creds := Credentials{User: nc.User, Password: nc.Password, Token: nc.Token, CredsFile: nc.Creds, NKeySeed: nc.NKey}
	if creds == (Credentials{}) {
		return "", Credentials{}, fmt.Errorf("nats context %s: names no user, token, creds or nkey", path)
	}
	return nc.URL, creds, nil
}

// embeddedUsers reads the embedded server's two context files under dir,
// creating them with fresh random passwords when missing. url is written
// into them (the server's client URL, which may change between starts).
func embeddedUsers(dir, url string) (service, producer Credentials, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Credentials{}, Credentials{}, fmt.Errorf("nats credentials: %w", err)
	}
	service, err = ensureContext(filepath.Join(dir, "varsel.json"), ServiceUser, url,
		"Varsel's own account on its embedded NATS: the service and the CLI on this machine. Keep it secret.")
	if err != nil {
		return Credentials{}, Credentials{}, err
	}
	producer, err = ensureContext(filepath.Join(dir, "producer.json"), ProducerUser, url,
		"Varsel's producer account: may publish incident events to varsel.events.> and nothing else.")
	if err != nil {
		return Credentials{}, Credentials{}, err
	}
	return service, producer, nil
}

func ensureContext(path, user, url, description string) (Credentials, error) {
	var nc natsContext
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &nc); err != nil || nc.User != user || nc.Password == "" {
			return Credentials{}, fmt.Errorf("nats credentials %s: unreadable, or not the %s user (delete it to have a new one generated; producers then need the new file)", path, user)
		}
		if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return Credentials{}, fmt.Errorf("nats credentials %s: readable by others and cannot be restricted: %w", path, err)
			}
		}
		// An empty url reads the password before the server has started.
		if url == "" || nc.URL == url {
			return Credentials{User: nc.User, Password: nc.Password}, nil
		}
	case errors.Is(err, fs.ErrNotExist):
		nc = natsContext{Description: description, User: user, Password: randomPassword()}
	default:
		return Credentials{}, fmt.Errorf("nats credentials: %w", err)
	}
	nc.URL = url
	out, _ := json.MarshalIndent(nc, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), 0o600); err != nil {
		return Credentials{}, fmt.Errorf("nats credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Credentials{}, fmt.Errorf("nats credentials: %w", err)
	}
	return Credentials{User: nc.User, Password: nc.Password}, nil
}

func randomPassword() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Package jetstream is Varsel's NATS layer: the embedded server, the
// streams and KeyValue buckets, the stores built on them, and the consumers
// that drive intake and dispatch.
package jetstream

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartServer starts an embedded nats-server with JetStream storing in
// storeDir and listening on listen ("127.0.0.1:4222"; port 0 picks a free
// one), with no authentication and no encryption: for tests. The service
// uses StartServerWith. It returns once the server accepts connections.
func StartServer(storeDir, listen string, logger *slog.Logger) (*server.Server, error) {
	return StartServerWith(ServerConfig{StoreDir: storeDir, Listen: listen}, logger)
}

// ServerConfig is how the embedded server is started.
type ServerConfig struct {
	StoreDir string
	Listen   string
	// Service and Producer are the two users; without them anyone may
	// connect. The producer is in an account of its own that imports
	// varsel.events.> from the service's account as a service, so a
	// publish's reply subject (where JetStream sends its acknowledgement)
	// is a subject of the producer's own account: it can never name a
	// bucket or a stream of the service's.
	Service, Producer *Credentials
	// EncryptionKey encrypts the JetStream store at rest (nats-server's
	// own store encryption, ChaCha20-Poly1305); PreviousKey is the key the
	// store was encrypted with before, for a rotation. A plain store is
	// encrypted the first time it is opened with a key.
	EncryptionKey, PreviousKey string
}

// StartServerWith starts the embedded server as cfg says.
func StartServerWith(cfg ServerConfig, logger *slog.Logger) (*server.Server, error) {
	storeDir, listen := cfg.StoreDir, cfg.Listen
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("parse listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("parse listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else if l, err := net.Listen("tcp", listen); err != nil {
		// nats-server would only log this and never become ready.
		return nil, fmt.Errorf("embedded NATS on VARSEL_NATS_LISTEN %s: %w (is another varsel serve or a nats-server running? stop it, or set VARSEL_NATS_LISTEN)", listen, err)
	} else {
		_ = l.Close()
	}
	opts := &server.Options{
		ServerName: "varsel",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
		// Events may be up to 64 KiB; allow more so an oversized one still
		// arrives and is rejected with its reason instead of vanishing.
		MaxPayload: 1 << 20,
	}
	if cfg.Service != nil && cfg.Producer != nil {
		prod := server.NewAccount(producerAccount)
		opts.Accounts = []*server.Account{prod}
		opts.Users = []*server.User{
			// No account: the global one, where the store has always been.
			{Username: cfg.Service.User, Password: cfg.Service.Password},
			{Username: cfg.Producer.User, Password: cfg.Producer.Password, Account: prod, Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{EventsSubjects}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
	}
	if cfg.EncryptionKey != "" {
		opts.JetStreamKey = cfg.EncryptionKey
		opts.JetStreamOldKey = cfg.PreviousKey
		opts.JetStreamCipher = server.ChaCha
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create embedded nats-server: %w", err)
	}
	s.SetLoggerV2(&serverLog{l: logger.With("component", "nats-server")}, false, false, false)
	if len(opts.Accounts) > 0 {
		prod, err := s.LookupAccount(producerAccount)
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server: %w", err)
		}
		gacc := s.GlobalAccount()
		if err := gacc.AddServiceExport(EventsSubjects, nil); err != nil {
			return nil, fmt.Errorf("embedded nats-server: export events: %w", err)
		}
		if err := prod.AddServiceImport(gacc, EventsSubjects, ""); err != nil {
			return nil, fmt.Errorf("embedded nats-server: import events: %w", err)
		}
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats-server on %s did not start within 10s", listen)
	}
	if len(opts.Accounts) > 0 {
		// With accounts configured, JetStream is on only where asked: the
		// global account, which holds the store.
		if err := s.GlobalAccount().EnableJetStream(map[string]server.JetStreamAccountLimits{"": {
			MaxMemory: -1, MaxStore: -1, MaxStreams: -1, MaxConsumers: -1, MaxAckPending: -1,
			MemoryMaxStreamBytes: -1, StoreMaxStreamBytes: -1}}, nil); err != nil {
			s.Shutdown()
			return nil, fmt.Errorf("embedded nats-server: JetStream: %w", err)
		}
	}
	return s, nil
}

// serverLog sends nats-server's log lines to slog. Failed logins are
// logged at most once per authLogEvery with the number since, so a
// client trying passwords in a loop cannot flood the log.
type serverLog struct {
	l *slog.Logger

	mu         sync.Mutex
	authLogged time.Time
	authQuiet  int
}

// authLogEvery bounds the log lines about refused clients.
const authLogEvery = 10 * time.Second

func (s *serverLog) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLog) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s *serverLog) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLog) Errorf(format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if strings.Contains(line, "Authorization Violation") || strings.Contains(line, "authentication error") {
		s.mu.Lock()
		if time.Since(s.authLogged) < authLogEvery {
			s.authQuiet++
			s.mu.Unlock()
			return
		}
		quiet := s.authQuiet
		s.authLogged, s.authQuiet = time.Now(), 0
		s.mu.Unlock()
		s.l.Warn("nats client refused: wrong or missing credentials", "detail", line, "refused_since_last_line", quiet)
		return
	}
	s.l.Error(line)
}
func (s *serverLog) Debugf(format string, v ...any) {}
func (s *serverLog) Tracef(format string, v ...any) {}

// producerAccount is the embedded server's account of event producers.
const producerAccount = "PRODUCER"

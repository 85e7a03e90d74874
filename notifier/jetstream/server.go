// Package jetstream is Varsel's NATS layer: the embedded server, the
// streams and KeyValue buckets, the stores built on them, and the consumers
// that drive intake and dispatch.
package jetstream

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
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
	// Users may connect; none means anyone may.
	Users []*server.User
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
		Users:      cfg.Users,
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
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats-server on %s did not start within 10s", listen)
	}
	return s, nil
}

// serverLog sends nats-server's log lines to slog.
type serverLog struct{ l *slog.Logger }

func (s *serverLog) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLog) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s *serverLog) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLog) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLog) Debugf(format string, v ...any)  {}
func (s *serverLog) Tracef(format string, v ...any)  {}

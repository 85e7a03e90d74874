package main

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/varsel/varsel/notifier/jetstream"
)

// TestSecondServeOnADataDirInUseExitsAtOnce: a second service on the same
// data directory is refused before it touches the store, naming the
// directory and the holder's PID.
func TestSecondServeOnADataDirInUseExitsAtOnce(t *testing.T) {
	_, dir := testService(t, nil)
	cfg := testConfig(dir)
	_, err := start(context.Background(), cfg, newLogger(io.Discard))
	if !errors.Is(err, jetstream.ErrDataDirInUse) || !strings.Contains(err.Error(), "process ") {
		t.Fatalf("second serve on %s: %v, want it refused naming the holder", dir, err)
	}
}

// TestTakenPortsAreReportedAtOnce: an HTTP or NATS address in use is an
// error naming the address and the setting, not a wait.
func TestTakenPortsAreReportedAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().String()
	for _, tc := range []struct {
		name, setting string
		edit          func(*Config)
	}{
		{"http", "VARSEL_HTTP_ADDR", func(c *Config) { c.HTTPAddr = taken }},
		{"nats", "VARSEL_NATS_LISTEN", func(c *Config) { c.NATSListen = taken }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			tc.edit(&cfg)
			_, err := start(context.Background(), cfg, newLogger(io.Discard))
			if err == nil || !strings.Contains(err.Error(), tc.setting+" "+taken) {
				t.Fatalf("start on a taken %s address: %v", tc.name, err)
			}
			// The directory lock went with the failed start.
			lock, err := jetstream.LockDataDir(cfg.DataDir)
			if err != nil {
				t.Fatalf("data directory still locked after a failed start: %v", err)
			}
			_ = lock.Unlock()
		})
	}
}

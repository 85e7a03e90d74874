package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// ownNATSURL applies the rule that lets one exported VARSEL_NATS_URL serve
// both serve and the CLI: when VARSEL_NATS_LISTEN (or --nats-listen) is
// set and VARSEL_NATS_URL names that very address on this machine, serve
// runs its embedded server there instead of looking for an external one.
// It clears cfg.NATSURL then and returns the URL it ignored ("" when the
// rule does not apply). Without an explicit listen address the URL stays
// an external NATS (one may run on 127.0.0.1:4222), and a failed connect
// says what to change (explainExternalNATS).
func ownNATSURL(fs *flag.FlagSet, cfg *Config) string {
	listenSet := os.Getenv("VARSEL_NATS_LISTEN") != ""
	fs.Visit(func(f *flag.Flag) { listenSet = listenSet || f.Name == "nats-listen" })
	if cfg.NATSURL == "" || !listenSet || !namesListen(cfg.NATSURL, cfg.NATSListen) {
		return ""
	}
	own := cfg.NATSURL
	cfg.NATSURL = ""
	return own
}

// namesListen reports whether natsURL (one NATS URL) names the address
// listen (host:port) on this machine: the same port, a loopback host, and
// a listen host that is loopback or every interface.
func namesListen(natsURL, listen string) bool {
	if strings.Contains(natsURL, ",") {
		return false
	}
	if !strings.Contains(natsURL, "://") {
		natsURL = "nats://" + natsURL
	}
	u, err := url.Parse(strings.TrimSpace(natsURL))
	if err != nil || u.Port() == "" || !isLoopbackHost(u.Hostname()) {
		return false
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port != u.Port() {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || isLoopbackHost(host) || ip != nil && ip.IsUnspecified()
}

// explainExternalNATS adds the fix to serve's failure to reach the
// external NATS that VARSEL_NATS_URL names.
func explainExternalNATS(err error, natsURL string) error {
	if natsURL == "" || !errors.Is(err, nats.ErrNoServers) {
		return err
	}
	return fmt.Errorf("%w: nothing answers at VARSEL_NATS_URL %s, which serve takes for an external NATS. "+
		"For serve's embedded NATS, unset VARSEL_NATS_URL for serve (the CLI on this machine finds serve by itself), "+
		"or set VARSEL_NATS_LISTEN to the address it names", err, redactURL(natsURL))
}

// warnLinks warns when VARSEL_PUBLIC_URL is on this machine but not on
// the port serve listens on: every link in messages and pages would
// point at the wrong place.
func warnLinks(logger *slog.Logger, publicURL string, listening net.Addr) {
	u, err := url.Parse(publicURL)
	tcp, ok := listening.(*net.TCPAddr)
	if err != nil || !ok || !isLoopbackHost(u.Hostname()) {
		return
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	if port == strconv.Itoa(tcp.Port) {
		return
	}
	fix := *u
	fix.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(tcp.Port))
	logger.Warn("VARSEL_PUBLIC_URL is on this machine but not on the port serve listens on (VARSEL_HTTP_ADDR): links in messages and pages would point at the wrong place; set VARSEL_PUBLIC_URL="+strings.TrimSuffix(fix.String(), "/"),
		"public_url", publicURL, "http", tcp.String())
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// cmdVersion prints the version (set with -ldflags "-X main.version=…"),
// the commit it was built from, the Go version and the NATS server it embeds.
func cmdVersion(args []string, stdout io.Writer) error {
	fs := newFlags("varsel version", "varsel version", "Print Varsel's version, the commit it was built from, and the Go and embedded NATS server versions.", stdout)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: varsel version takes no arguments", errUsage)
	}
	commit := "unknown (built outside a git checkout)"
	natsVersion := "v" + server.VERSION
	if info, ok := debug.ReadBuildInfo(); ok {
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			commit = rev
			if t := settings["vcs.time"]; t != "" {
				commit += " (" + t + ")"
			}
			if settings["vcs.modified"] == "true" {
				commit += ", with uncommitted changes"
			}
		}
		for _, dep := range info.Deps {
			if dep.Path == "github.com/nats-io/nats-server/v2" && dep.Version != "" && dep.Version != "(devel)" {
				natsVersion = dep.Version
			}
		}
	}
	fmt.Fprintf(stdout, "varsel %s\ncommit       %s\ngo           %s %s/%s\nnats-server  %s (embedded)\n",
		version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, natsVersion)
	return nil
}

// healthcheckTimeout bounds `varsel healthcheck`.
const healthcheckTimeout = 2 * time.Second

// cmdHealthcheck asks the local serve's /readyz: exit 0 when it answers
// 200, 1 otherwise, with the reason. It is the container health check of
// a distroless image, where there is no shell and no curl.
func cmdHealthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("varsel healthcheck", "varsel healthcheck [--url URL]",
		"Exit 0 when the local serve answers /readyz with 200 within 2 s, 1 otherwise with the reason.\n"+
			"For container health checks (the distroless image has no shell and no curl).", stdout)
	addr := envOr("VARSEL_HTTP_ADDR", ":8080")
	target := fs.String("url", readyzURL(addr), "the readiness URL to ask (default from VARSEL_HTTP_ADDR)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: varsel healthcheck [--url URL] takes no arguments", errUsage)
	}
	if *target == "" {
		return fmt.Errorf("not checked: VARSEL_HTTP_ADDR %q names no port to ask; give --url http://HOST:PORT/readyz", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
	if err != nil {
		return fmt.Errorf("%w: --url %q: %v", errUsage, *target, err)
	}
	// Straight to the local serve: no proxy from the environment.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	res, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s", healthcheckTimeout)
		}
		return fmt.Errorf("not ready: %s: %w", *target, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %s: %s", *target, res.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "ready: %s\n", *target)
	return nil
}

// readyzURL is the /readyz URL of a serve listening on addr (host:port or
// :port): an unspecified host is asked on 127.0.0.1. It is empty when addr
// names no port.
func readyzURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz"
}

// Command composecheck validates compose.yaml against the Compose
// specification with compose-go, the loader Docker Compose itself uses, so
// CI can check the file on machines without a Docker engine. It is its own
// module so compose-go stays out of Varsel's dependencies.
//
//	go run . ../../compose.yaml
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck compose.yaml")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithOsEnv, cli.WithResolvedPaths(true))
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	names := project.ServiceNames()
	for _, want := range []string{"nats", "mailpit", "varsel"} {
		if !slices.Contains(names, want) {
			fail(fmt.Errorf("service %q missing (have %v)", want, names))
		}
	}
	v := project.Services["varsel"]
	if v.Build == nil {
		fail(fmt.Errorf("service varsel must be built from the Dockerfile"))
	}
	if _, err := os.Stat(v.Build.Context + "/" + v.Build.Dockerfile); err != nil {
		fail(fmt.Errorf("service varsel: %w", err))
	}
	for _, env := range []string{"VARSEL_NATS_URL", "VARSEL_SMTP_URL", "VARSEL_PUBLIC_URL"} {
		if v.Environment[env] == nil {
			fail(fmt.Errorf("service varsel: %s not set", env))
		}
	}
	if tok := v.Environment["VARSEL_ADMIN_TOKEN"]; tok != nil && *tok != "" && os.Getenv("VARSEL_ADMIN_TOKEN") == "" {
		fail(fmt.Errorf("service varsel: VARSEL_ADMIN_TOKEN has a default (%d characters); leave it empty so the admin API is refused until one is set", len(*tok)))
	}
	checkCluster(os.Args[1])
	checkPackaging(os.Args[1])
	fmt.Printf("compose.yaml ok: services %v, profile cluster; NATS images, healthchecks, Dockerfile and .dockerignore\n", names)
}

// checkPackaging checks what the file and its neighbours promise: every
// NATS image runs the nats-server version go.mod embeds and tests with;
// every Varsel service has a healthcheck by `varsel healthcheck`, and so
// has the Dockerfile; .dockerignore keeps data, history and build output
// out of the context and what the build needs in.
func checkPackaging(file string) {
	root := filepath.Dir(file)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		fail(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/nats-io/nats-server/v2 v(\d+\.\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		fail(fmt.Errorf("go.mod does not require github.com/nats-io/nats-server/v2"))
	}
	tested := string(m[1])
	opts, err := cli.NewProjectOptions([]string{file}, cli.WithOsEnv, cli.WithResolvedPaths(true), cli.WithProfiles([]string{"*"}))
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	for name, s := range project.Services {
		if strings.HasPrefix(s.Image, "nats:") {
			tag := strings.TrimPrefix(s.Image, "nats:")
			version, _, _ := strings.Cut(tag, "-")
			if version == "" || tested != version && !strings.HasPrefix(tested, version+".") {
				fail(fmt.Errorf("service %s: image %s, but go.mod tests nats-server %s (want nats:%s-alpine)", name, s.Image, tested, tested))
			}
		}
		if s.Build != nil {
			if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Test, []string{"CMD", "/usr/local/bin/varsel", "healthcheck"}) {
				fail(fmt.Errorf("service %s: want healthcheck test [CMD /usr/local/bin/varsel healthcheck]", name))
			}
		}
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		fail(err)
	}
	if !regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/varsel", "healthcheck"\]`).Match(dockerfile) {
		fail(fmt.Errorf("Dockerfile: no HEALTHCHECK by varsel healthcheck"))
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		fail(fmt.Errorf(".dockerignore: %w", err))
	}
	patterns := map[string]bool{}
	for _, line := range strings.Split(string(ignore), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns[strings.TrimPrefix(line, "/")] = true
		}
	}
	for _, want := range []string{"data", ".git", "test-artifacts", "varsel", "**/*.prof"} {
		if !patterns[want] {
			fail(fmt.Errorf(".dockerignore: %q missing", want))
		}
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd", "channels", "notifier", "internal", "locales", "templates", "examples", "*", "*.go", "**/*.go"} {
		if patterns[need] {
			fail(fmt.Errorf(".dockerignore: %q is needed by the build", need))
		}
	}
}

// checkCluster loads the "cluster" profile: three NATS nodes, each routing
// to the other two, and two Varsel instances on all three with R3.
func checkCluster(file string) {
	opts, err := cli.NewProjectOptions([]string{file}, cli.WithOsEnv, cli.WithResolvedPaths(true), cli.WithProfiles([]string{"cluster"}))
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	nodes := []string{"nats-1", "nats-2", "nats-3"}
	for _, n := range nodes {
		s, ok := project.Services[n]
		if !ok {
			fail(fmt.Errorf("profile cluster: service %q missing", n))
		}
		cmd := strings.Join(s.Command, " ")
		for _, other := range nodes {
			if other != n && !strings.Contains(cmd, "nats://"+other+":6222") {
				fail(fmt.Errorf("profile cluster: %s does not route to %s: %s", n, other, cmd))
			}
		}
		if !strings.Contains(cmd, "--jetstream") || !strings.Contains(cmd, "--server_name "+n) {
			fail(fmt.Errorf("profile cluster: %s needs --jetstream and --server_name %s", n, n))
		}
	}
	for _, name := range []string{"varsel-1", "varsel-2"} {
		v, ok := project.Services[name]
		if !ok {
			fail(fmt.Errorf("profile cluster: service %q missing", name))
		}
		url := v.Environment["VARSEL_NATS_URL"]
		for _, n := range nodes {
			if url == nil || !strings.Contains(*url, "nats://"+n+":4222") {
				fail(fmt.Errorf("profile cluster: %s: VARSEL_NATS_URL must name %s", name, n))
			}
		}
		if r := v.Environment["VARSEL_NATS_REPLICAS"]; r == nil || *r != "3" {
			fail(fmt.Errorf("profile cluster: %s: VARSEL_NATS_REPLICAS must be 3", name))
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose.yaml:", err)
	os.Exit(1)
}

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
	fmt.Printf("compose.yaml ok: services %v, profile cluster\n", names)
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

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
	fmt.Printf("compose.yaml ok: services %v\n", names)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose.yaml:", err)
	os.Exit(1)
}

// Command check loads a compose file the way `docker compose config` does, with compose-go (the
// library Docker Compose itself uses): JSON-schema validation against the compose specification,
// variable interpolation, merge keys and cross-references (depends_on, volumes, networks). It
// prints the normalized project as JSON, or the first error and exits 1.
//
//	go run ./docker/compose/check docker/compose/compose.yaml docker/compose/.env.example
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: check COMPOSE_FILE ENV_FILE")
		os.Exit(2)
	}
	composeFile, envFile := os.Args[1], os.Args[2]
	options, err := cli.NewProjectOptions(
		[]string{composeFile},
		cli.WithWorkingDirectory(filepath.Dir(composeFile)),
		cli.WithEnvFiles(envFile),
		cli.WithDotEnv,
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "options:", err)
		os.Exit(1)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "invalid compose file:", err)
		os.Exit(1)
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "marshal:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}

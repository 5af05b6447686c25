// Command infrapilot-agent runs on a customer's server and connects it to
// the InfraPilot control plane. Enrollment and the leaf node arrive with the
// agent issue; this build answers version and --help.
package main

import (
	"flag"
	"fmt"
	"os"
)

var version = "dev"

func main() {
	fs := flag.NewFlagSet("infrapilot-agent", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: infrapilot-agent <command>\n\nCommands:\n  version   print the agent version\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return
		}
		os.Exit(2)
	}
	switch fs.Arg(0) {
	case "version":
		fmt.Println("infrapilot-agent", version)
	default:
		fs.Usage()
		os.Exit(2)
	}
}

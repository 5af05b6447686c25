// Command infrapilot-loadtest drives simulated fleets and API clients
// against InfraPilot. Scenarios arrive with the load-harness issue; this
// build answers --help.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	fs := flag.NewFlagSet("infrapilot-loadtest", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: infrapilot-loadtest <scenario> [flags]\n\nNo scenarios are built yet.\n")
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return
		}
		os.Exit(2)
	}
	fs.Usage()
	os.Exit(2)
}

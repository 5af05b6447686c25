// Command eventsdoc prints the events catalogue (docs/events.md) generated
// from the events module's registry and stream definitions.
//
//	go run ./events/cmd/eventsdoc > docs/events.md
package main

import (
	"fmt"

	"github.com/infrapilot/infrapilot/events"
)

func main() { fmt.Print(events.Markdown(events.Catalogue)) }

package main

import (
	"fmt"
	"strings"

	"github.com/infrapilot/infrapilot/services/internal/platform/app"
)

// modules lists every service this binary can run, in start order. Each
// domain issue adds its service here.
func modules() []app.Module {
	return []app.Module{}
}

func serviceNames() string {
	var names []string
	for _, m := range modules() {
		names = append(names, m.Name)
	}
	if len(names) == 0 {
		return "(none registered yet); gateway"
	}
	return strings.Join(names, ", ") + "; gateway"
}

// pick returns the modules named, in registry order, or an error naming
// the unknown ones.
func pick(names []string) ([]app.Module, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []app.Module
	for _, m := range modules() {
		if want[m.Name] {
			out = append(out, m)
			delete(want, m.Name)
		}
	}
	delete(want, "gateway")
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		return nil, fmt.Errorf("unknown service(s) %s; known: %s", strings.Join(unknown, ", "), serviceNames())
	}
	return out, nil
}

func names(ms []app.Module) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func has(ms []app.Module, name string) bool {
	for _, m := range ms {
		if m.Name == name {
			return true
		}
	}
	return false
}

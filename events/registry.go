package events

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Payload is implemented by every event payload struct. The wire name and
// version are explicit methods, never derived from Go type names, so renaming
// a Go type never changes the contract.
type Payload interface {
	EventType() string
	EventVersion() int
}

// Unknown is what Decode returns for an event whose (type, version) is not
// registered: the envelope is kept whole so it can be logged, forwarded or
// stored, and nothing crashes.
type Unknown struct {
	Type    string
	Version int
	Raw     json.RawMessage
}

// EventType implements Payload.
func (u *Unknown) EventType() string { return u.Type }

// EventVersion implements Payload.
func (u *Unknown) EventVersion() int { return u.Version }

// Entry describes one registered payload type for the catalogue.
type Entry struct {
	Type        string
	Version     int
	Stream      string
	Description string
	goType      reflect.Type
}

// Fields lists the JSON fields of the payload in declaration order, with
// their Go types, for the catalogue.
func (e Entry) Fields() []Field { return fieldsOf(e.goType) }

// Field is one JSON field of a payload.
type Field struct {
	Name     string
	Type     string
	Optional bool
}

type key struct {
	typ     string
	version int
}

// Registry maps wire names and versions to payload types. It is safe for
// concurrent use.
type Registry struct {
	mu      sync.RWMutex
	entries map[key]Entry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{entries: map[key]Entry{}} }

// Register adds a payload type. The prototype's EventType/EventVersion give
// the wire name; registering the same (type, version) twice is an error.
func (r *Registry) Register(proto Payload, description string) error {
	t := reflect.TypeOf(proto)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("events: %s: payload must be a struct, got %s", proto.EventType(), t.Kind())
	}
	k := key{proto.EventType(), proto.EventVersion()}
	if k.typ == "" || k.version < 1 {
		return fmt.Errorf("events: payload %s needs a type name and a version >= 1", t)
	}
	stream, ok := StreamForEventType(k.typ)
	if !ok {
		return fmt.Errorf("events: %s: no stream owns this event type's service", k.typ)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.entries[k]; dup {
		return fmt.Errorf("events: %s v%d registered twice", k.typ, k.version)
	}
	r.entries[k] = Entry{Type: k.typ, Version: k.version, Stream: stream, Description: description, goType: t}
	return nil
}

// MustRegister is Register for package initialisation of the built-in
// catalogue, where a mistake is a programming error caught by the tests.
func (r *Registry) MustRegister(proto Payload, description string) {
	if err := r.Register(proto, description); err != nil {
		panic(err)
	}
}

// Entries lists every registered type sorted by type then version.
func (r *Registry) Entries() []Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Entry, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// Known reports whether (type, version) is registered.
func (r *Registry) Known(typ string, version int) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.entries[key{typ, version}]
	return ok
}

// Decode returns the typed payload of env as a pointer to the registered
// struct, or an *Unknown holding the raw data when the type or version is not
// registered. Only malformed data of a known type is an error.
func (r *Registry) Decode(env Envelope) (Payload, error) {
	r.mu.RLock()
	e, ok := r.entries[key{env.Type, env.Version}]
	r.mu.RUnlock()
	if !ok {
		return &Unknown{Type: env.Type, Version: env.Version, Raw: env.Data}, nil
	}
	v := reflect.New(e.goType)
	if err := json.Unmarshal(env.Data, v.Interface()); err != nil {
		return nil, Invalid("event %s v%d (%s): malformed data: %v", env.Type, env.Version, env.ID, err)
	}
	return v.Interface().(Payload), nil
}

func fieldsOf(t reflect.Type) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts := f.Name, ""
		if tag, ok := f.Tag.Lookup("json"); ok {
			if tag == "-" {
				continue
			}
			name, opts, _ = strings.Cut(tag, ",")
			if name == "" {
				name = f.Name
			}
		}
		out = append(out, Field{Name: name, Type: f.Type.String(), Optional: opts == "omitempty"})
	}
	return out
}

package collect

import (
	"errors"
	"io/fs"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/agent/internal/state"
	"github.com/infrapilot/infrapilot/events"
)

// positions is the log followers' record of what they have stored in the
// outbox, per container, persisted in the state directory (logs.json).
//
// A batch goes through two writes: first its end is recorded as Pending
// (the intent), then it is stored in the outbox, then it becomes
// Committed. A crash after the intent and before the commit leaves
// Pending set, and the next follower re-reads from Committed and cuts its
// first batch exactly at Pending: the same lines, hence the same message
// id, which the outbox or the hub de-duplicates if the batch had been
// stored after all. So a restart at any point neither loses nor repeats a
// line.
type positions struct {
	dir state.Dir
	mu  sync.Mutex
	doc positionsDoc
}

type positionsDoc struct {
	// Since is when the agent first ran on this host: a container first
	// seen is read from here (or from its start, if later), so an
	// install does not ship years of old logs, and nothing written after
	// it is missed.
	Since      time.Time                 `json:"since"`
	Containers map[string]*containerMark `json:"containers"`
}

type containerMark struct {
	Name      string              `json:"name,omitempty"`
	Committed events.LogPosition  `json:"committed"`
	Pending   *events.LogPosition `json:"pending,omitempty"`
}

func loadPositions(dir state.Dir, now time.Time) (*positions, error) {
	p := &positions{dir: dir}
	err := dir.ReadJSON(state.LogsFile, &p.doc)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.doc = positionsDoc{Since: now.UTC().Truncate(time.Second)}
		if err := p.saveLocked(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	if p.doc.Containers == nil {
		p.doc.Containers = map[string]*containerMark{}
	}
	return p, nil
}

// get returns a container's mark, or a fresh one starting at Since.
func (p *positions) get(id string) containerMark {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.doc.Containers[id]; ok {
		c := *m
		if m.Pending != nil {
			pend := *m.Pending
			c.Pending = &pend
		}
		return c
	}
	return containerMark{Committed: events.LogPosition{Time: p.doc.Since}}
}

func (p *positions) intend(id, name string, from, to events.LogPosition) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doc.Containers[id] = &containerMark{Name: name, Committed: from, Pending: &to}
	return p.saveLocked()
}

func (p *positions) commit(id, name string, to events.LogPosition) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doc.Containers[id] = &containerMark{Name: name, Committed: to}
	return p.saveLocked()
}

// forget drops the marks of containers that no longer exist.
func (p *positions) forget(exists func(id string) bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for id := range p.doc.Containers {
		if !exists(id) {
			delete(p.doc.Containers, id)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return p.saveLocked()
}

func (p *positions) saveLocked() error { return p.dir.WriteJSON(state.LogsFile, p.doc) }

// after reports whether position a is after b. Counts only compare at
// the same timestamp.
func after(a, b events.LogPosition) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	return a.Stdout > b.Stdout || a.Stderr > b.Stderr
}

// advance is the position after line l, read at position p.
func advance(p events.LogPosition, l events.LogLine) events.LogPosition {
	t := l.Time
	if t.IsZero() {
		t = p.Time // a line without a stamp belongs to the instant before it
	}
	if !t.Equal(p.Time) {
		p = events.LogPosition{Time: t}
	}
	if l.Stream == events.StreamStderr {
		p.Stderr++
	} else {
		p.Stdout++
	}
	return p
}

func samePos(a, b events.LogPosition) bool {
	return a.Time.Equal(b.Time) && a.Stdout == b.Stdout && a.Stderr == b.Stderr
}

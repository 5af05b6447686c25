// Package objects keeps the audit service's files — exports, retention
// archives, reports — in JetStream object store buckets.
//
// A NATS message cannot carry a file of any size (the server's max payload
// is a few MiB), and a file kept on one instance's disk is not there for
// the others. An object store bucket is a stream of chunks any instance
// (and the gateway) can read back in order, a chunk at a time. Files are
// written here through a pipe as they are encoded, so no export is ever
// held in memory or on local disk; the object store hashes them and
// publishes their metadata only once every chunk is stored, so a reader
// never sees half a file under a name.
//
// Every object of an org is named "<org>/<kind>/<id>.<ext>": whoever
// serves one checks the prefix against the caller's org.
package objects

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures the buckets.
type Config struct {
	// Replicas of the buckets' streams (default 1; 3 on a cluster).
	Replicas int
	// ExportTTL is how long an export's file is kept (default 7 days).
	// Archives and reports never expire.
	ExportTTL time.Duration
}

func (c *Config) setDefaults() {
	if c.Replicas < 1 {
		c.Replicas = 1
	}
	if c.ExportTTL <= 0 {
		c.ExportTTL = 7 * 24 * time.Hour
	}
}

// Buckets are the audit service's object stores.
type Buckets struct {
	cfg     Config
	js      jetstream.JetStream
	exports jetstream.ObjectStore
	archive jetstream.ObjectStore
}

// New returns the buckets; Ensure creates them.
func New(js jetstream.JetStream, cfg Config) *Buckets {
	cfg.setDefaults()
	return &Buckets{cfg: cfg, js: js}
}

// ExportTTL is how long export files are kept.
func (b *Buckets) ExportTTL() time.Duration { return b.cfg.ExportTTL }

// Ensure creates or updates both buckets. It is idempotent and safe to run
// from every instance.
func (b *Buckets) Ensure(ctx context.Context) error {
	var err error
	b.exports, err = b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      events.AuditBucketExports,
		Description: "audit exports of every org, named <org>/exports/<id>.<ext>; they expire",
		TTL:         b.cfg.ExportTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("audit objects: bucket %s: %w", events.AuditBucketExports, err)
	}
	b.archive, err = b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      events.AuditBucketArchive,
		Description: "audit retention archives and compliance reports of every org, named <org>/<kind>/<id>.<ext>; kept",
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("audit objects: bucket %s: %w", events.AuditBucketArchive, err)
	}
	return nil
}

// Store returns the bucket named name (one of the two).
func (b *Buckets) Store(name string) (jetstream.ObjectStore, error) {
	var s jetstream.ObjectStore
	switch name {
	case events.AuditBucketExports:
		s = b.exports
	case events.AuditBucketArchive:
		s = b.archive
	default:
		return nil, fmt.Errorf("audit objects: unknown bucket %q", name)
	}
	if s == nil {
		return nil, errors.New("audit objects: buckets not set up yet")
	}
	return s, nil
}

// Name is the object name of one file of org: "<org>/<kind>/<id>.<ext>".
func Name(org, kind, id, ext string) string {
	return events.AuditObjectPrefix(org) + kind + "/" + id + "." + ext
}

// Written describes a stored object.
type Written struct {
	Bytes  int64
	SHA256 string // hex
}

// chunk is the size of the pieces written into the pipe, and so of the
// object's chunks: the object store stores whatever one Read returns as a
// chunk, and a pipe's Read returns one Write.
const chunk = 128 << 10

// Put stores under name in bucket whatever write writes, streaming: write
// runs in its own goroutine and its output goes through a pipe to the
// object store a chunk at a time. An error from write (or from the store)
// leaves no object behind: the object store only publishes an object's
// metadata once all its chunks are stored, and purges them otherwise.
func (b *Buckets) Put(ctx context.Context, bucket, name, description string, write func(w io.Writer) error) (Written, error) {
	st, err := b.Store(bucket)
	if err != nil {
		return Written{}, err
	}
	pr, pw := io.Pipe()
	h := sha256.New()
	cw := &counter{}
	done := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, chunk)
		err := write(io.MultiWriter(bw, h, cw))
		if err == nil {
			err = bw.Flush()
		}
		// A nil error closes the pipe with io.EOF: the end of the object.
		pw.CloseWithError(err)
		done <- err
	}()
	_, perr := st.Put(ctx, jetstream.ObjectMeta{Name: name, Description: description}, pr)
	// Unblock the writer if the store stopped reading early.
	_ = pr.CloseWithError(errors.Join(perr, errors.New("object store stopped reading")))
	werr := <-done
	if werr != nil {
		return Written{}, werr
	}
	if perr != nil {
		return Written{}, fmt.Errorf("audit objects: put %s: %w", name, perr)
	}
	return Written{Bytes: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Get opens a stored object for reading; the caller closes it. ctx bounds
// the whole read.
func (b *Buckets) Get(ctx context.Context, bucket, name string) (jetstream.ObjectResult, error) {
	st, err := b.Store(bucket)
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, name)
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// Package migrations holds the log-ingest service's Postgres migrations,
// applied to its own schema ("logingest") at start.
package migrations

import "embed"

// FS holds the *.sql migrations.
//
//go:embed *.sql
var FS embed.FS

// Package pg wires PostgreSQL for InfraPilot services: a connection pool
// bound to the service's own schema, embedded SQL migrations serialised
// across replicas, and a health ping.
//
// Every service lives in its own schema of a shared database (ARCHITECTURE
// §7). A pool from Open has search_path set to that one schema, so service
// SQL uses unqualified names and cannot reach another service's tables by
// accident.
package pg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool defaults, used unless the URL sets the matching pool_* or
// connect_timeout parameter. In `infrapilot dev` every service opens its
// own pool against one server with max_connections = 100, so the per-pool
// ceiling stays well below that.
const (
	defaultMaxConns          = 8
	defaultMaxConnIdleTime   = 5 * time.Minute
	defaultMaxConnLifetime   = 30 * time.Minute // rotate connections after a failover or DNS change
	defaultLifetimeJitter    = time.Minute      // avoid reconnecting every connection at once
	defaultHealthCheckPeriod = 30 * time.Second
	defaultConnectTimeout    = 5 * time.Second
	defaultPingTimeout       = 5 * time.Second
)

// SQLSTATE codes this package reacts to.
const (
	codeUniqueViolation = "23505"
	codeDuplicateSchema = "42P06"
)

var schemaNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ValidateSchema reports whether name is an acceptable service schema name:
// lowercase [a-z_][a-z0-9_]*, at most 63 bytes (Postgres truncates longer
// identifiers silently), and not in the reserved pg_ namespace. Names are
// still quoted wherever they reach SQL; validation keeps them boring.
func ValidateSchema(name string) error {
	switch {
	case !schemaNameRE.MatchString(name):
		return fmt.Errorf("pg: invalid schema name %q: want lowercase [a-z_][a-z0-9_]*", name)
	case len(name) > 63:
		return fmt.Errorf("pg: invalid schema name %q: longer than 63 bytes", name)
	case strings.HasPrefix(name, "pg_"):
		return fmt.Errorf("pg: invalid schema name %q: the pg_ prefix is reserved", name)
	}
	return nil
}

// Open connects to the database at url and returns a pool whose
// connections use search_path = schema, creating the schema if it is
// missing. It connects once before returning, so a wrong URL, a down
// server or missing privileges fail here with an error that names the
// host, port, database and user (never the password).
//
// The pool uses bounded defaults (8 connections, 5 s connect timeout,
// connections recycled after 30 min); pool_max_conns and the other pool_*
// URL parameters, and connect_timeout, override them.
func Open(ctx context.Context, url, schema string, log *slog.Logger) (*pgxpool.Pool, error) {
	if err := ValidateSchema(schema); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, parseError(url, err)
	}
	applyDefaults(cfg, url, schema)
	target := describe(cfg.ConnConfig)

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pg: open %s: %w", target, err)
	}
	if err := ensureSchema(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pg: open %s (schema %s): %w", target, schema, err)
	}
	log.Info("postgres pool open", "target", target, "schema", schema, "max_conns", cfg.MaxConns)
	return pool, nil
}

// applyDefaults sets the pool limits the URL left unset and pins the
// session's search_path to schema. pgxpool.ParseConfig fills its own
// defaults in, so "unset" is judged from the raw URL text.
func applyDefaults(cfg *pgxpool.Config, raw, schema string) {
	set := func(key string) bool { return hasParam(raw, key) }
	if !set("pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	if !set("pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = defaultMaxConnIdleTime
	}
	if !set("pool_max_conn_lifetime") {
		cfg.MaxConnLifetime = defaultMaxConnLifetime
	}
	if !set("pool_max_conn_lifetime_jitter") {
		cfg.MaxConnLifetimeJitter = defaultLifetimeJitter
	}
	if !set("pool_health_check_period") {
		cfg.HealthCheckPeriod = defaultHealthCheckPeriod
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	// A startup parameter rather than a SET after connect: it costs no round
	// trip and a pooled connection can never be handed out without it.
	cfg.ConnConfig.RuntimeParams["search_path"] = quoteIdent(schema)
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "infrapilot/" + schema
	}
}

// querier is the part of a pool or connection ensureSchema needs.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ensureSchema creates schema unless it exists. The existence check comes
// first so a role without CREATE on the database can still use a schema an
// administrator made. Two replicas creating the same schema at once can
// both pass IF NOT EXISTS and one then hits a unique violation on
// pg_namespace; that loser's goal is met, so the error is dropped.
func ensureSchema(ctx context.Context, q querier, schema string) error {
	var exists bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)`, schema).Scan(&exists)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = q.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(schema))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == codeUniqueViolation || pgErr.Code == codeDuplicateSchema) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	return nil
}

// Ping checks that the pool can reach the server, for health endpoints.
// Without a deadline on ctx it gives up after 5 s, so a health check never
// hangs on a black-holed connection.
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPingTimeout)
		defer cancel()
	}
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("pg: ping %s: %w", describe(pool.Config().ConnConfig), err)
	}
	return nil
}

// quoteIdent quotes an identifier for SQL text.
func quoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// describe names a connection target for logs and errors: host:port/db as
// user. It never includes the password.
func describe(c *pgx.ConnConfig) string {
	host := c.Host
	if !strings.HasPrefix(host, "/") { // a unix socket directory stays a path
		host = net.JoinHostPort(host, strconv.Itoa(int(c.Port)))
	}
	return fmt.Sprintf("%s/%s as %s", host, c.Database, c.User)
}

// parseError reports an unparsable URL without its password. pgconn masks
// passwords in its parse errors only on a best-effort basis (its own doc
// says so), and the wrapped url.Error can quote the raw URL, so the error
// text is rebuilt here and the original is deliberately not wrapped.
func parseError(raw string, err error) error {
	msg := err.Error()
	u, uerr := url.Parse(raw)
	if uerr != nil {
		var ue *url.Error
		if errors.As(uerr, &ue) {
			return fmt.Errorf("pg: invalid database URL (not shown, it may hold a password): %v", ue.Err)
		}
		return errors.New("pg: invalid database URL (not shown, it may hold a password)")
	}
	secrets := []string{}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	for _, pw := range u.Query()["password"] {
		secrets = append(secrets, pw, url.QueryEscape(pw))
	}
	for _, m := range kvPasswordRE.FindAllStringSubmatch(raw, -1) {
		secrets = append(secrets, m[1])
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return fmt.Errorf("pg: invalid database URL: %s", msg)
}

// hasParam reports whether the connection string sets key, in either the
// URL or the key=value form.
func hasParam(raw, key string) bool {
	if u, err := url.Parse(raw); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Query().Has(key)
	}
	return regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(key) + `\s*=`).MatchString(raw)
}

// kvPasswordRE finds password values in key=value connection strings.
var kvPasswordRE = regexp.MustCompile(`password\s*=\s*'?([^'\s]+)`)

package natsx

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnConfig configures a client connection.
type ConnConfig struct {
	// URL of the server(s), comma separated.
	URL string
	// CredsFile is a NATS .creds file (JWT + nkey seed); empty for none.
	CredsFile string
	// Name identifies the connection in server monitoring.
	Name string
	// Options are appended last (for example natsauth.ConnectOption with
	// in-memory credentials).
	Options []nats.Option
}

// Connect opens a client connection that reconnects forever and logs
// connection state changes. Secrets in the creds file are never logged.
func Connect(cfg ConnConfig, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats async error", "subject", subject, "err", err)
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	opts = append(opts, cfg.Options...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsx: connect: %w", err)
	}
	return nc, nil
}

// JetStream returns a JetStream context on nc with a bounded number of
// in-flight async publishes, so a stalled server applies back-pressure
// instead of growing memory without bound.
func JetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("natsx: jetstream: %w", err)
	}
	return js, nil
}

// WaitPublishes waits until every async publish on js is acknowledged or
// ctx ends; part of the shutdown order (after consumers drain, before the
// connection closes).
func WaitPublishes(ctx context.Context, js jetstream.JetStream) error {
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsx: %d publishes still pending: %w", js.PublishAsyncPending(), ctx.Err())
	}
}

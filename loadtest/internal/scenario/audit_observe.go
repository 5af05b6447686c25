package scenario

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/infrapilot/infrapilot/events"
	"github.com/infrapilot/infrapilot/loadtest/internal/harness"
	"github.com/infrapilot/infrapilot/loadtest/internal/target"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// chainObserver counts the chain entries of the run's orgs as they are
// stored on stream AUDIT.
type chainObserver struct {
	nc   *nats.Conn
	cc   jetstream.ConsumeContext
	once sync.Once

	mu   sync.Mutex
	n    int64
	last time.Time
}

// observeChains starts an ordered consumer on the chains of orgs, new
// entries only. An entry counts when its event happened at or after from
// (setup entries are left out): it is an item of chained at its stream
// time, and its stream time − event time a sample of lag.
func observeChains(ctx context.Context, t *target.Target, orgs []auditOrg, from time.Time, chained, lag *harness.Recorder) (*chainObserver, error) {
	nc, err := t.NATS(ctx)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	subjects := make([]string, len(orgs))
	for i, o := range orgs {
		subjects[i] = events.AuditChain(o.id)
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamAudit, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		nc.Close()
		return nil, err
	}
	o := &chainObserver{nc: nc}
	// Event times are RFC 3339 with microseconds; compare at that grain.
	from = from.Truncate(time.Microsecond)
	o.cc, err = cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			chained.Error(err)
			return
		}
		var e events.AuditEntry
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			chained.Error(err)
			return
		}
		at, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			chained.Error(err)
			return
		}
		if at.Before(from) {
			return
		}
		chained.Items(meta.Timestamp, 1)
		lag.LatencyOnly(meta.Timestamp.Sub(at))
		o.mu.Lock()
		o.n++
		if meta.Timestamp.After(o.last) {
			o.last = meta.Timestamp
		}
		o.mu.Unlock()
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return o, nil
}

func (o *chainObserver) count() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// result is the number of entries counted and the stream time of the
// latest.
func (o *chainObserver) result() (int64, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n, o.last
}

func (o *chainObserver) stop() {
	o.once.Do(func() {
		o.cc.Stop()
		o.nc.Close()
	})
}

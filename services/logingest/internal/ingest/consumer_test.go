package ingest

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestDecodingOverlapsTheStoreWrite: the next batch is fetched and decoded
// while the previous one is being written. The first Write returns only
// once a message of the second batch has been decoded, so a consumer that
// decodes and writes in turns never gets past it (the test times out);
// every row is then stored exactly once and Write never runs twice at once.
func TestDecodingOverlapsTheStoreWrite(t *testing.T) {
	srv := natstest.Run(t)
	_, js := srv.JetStream()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := 0; i < n; i++ {
		if _, err := js.Publish(ctx, "t.x", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	stored := map[int]int{}
	writing := 0
	secondDecoded := make(chan struct{})
	var once sync.Once
	firstWrite := true
	done := make(chan struct{})
	sink := Sink[int]{
		Decode: func(_ string, data []byte) ([]int, int, error) {
			v, err := strconv.Atoi(string(data))
			if v >= n/2 {
				once.Do(func() { close(secondDecoded) })
			}
			return []int{v}, len(data), err
		},
		Write: func(ctx context.Context, rows []int) error {
			mu.Lock()
			writing++
			if writing > 1 {
				mu.Unlock()
				t.Error("Write called concurrently")
				return nil
			}
			first := firstWrite
			firstWrite = false
			mu.Unlock()
			if first {
				select {
				case <-secondDecoded:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			writing--
			for _, r := range rows {
				stored[r]++
			}
			if len(stored) == n {
				select {
				case <-done:
				default:
					close(done)
				}
			}
			return nil
		},
	}
	// Batches of n/2 rows: the first write holds the first half.
	c := NewConsumer(Config{Name: "overlap", Stream: "T", Subject: "t.>", MaxRows: n / 2, FetchBatch: n / 2, FlushInterval: 2 * time.Second},
		"test", js, sink, slog.New(slog.DiscardHandler), func() {})
	runCtx, stop := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = c.Run(runCtx)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the first write never saw the second batch decoded: decoding and writing take turns")
	}
	stop()
	<-finished
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		if stored[i] != 1 {
			t.Fatalf("row %d stored %d times", i, stored[i])
		}
	}
}

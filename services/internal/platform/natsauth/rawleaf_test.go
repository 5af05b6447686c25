package natsauth_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infrapilot/infrapilot/services/internal/platform/natstest"
	"github.com/nats-io/jwt/v2"
)

// rawLeaf speaks the leafnode protocol by hand with a user JWT and seed,
// as a malicious agent could without running nats-server: it sends
// whatever it likes, ignoring the permissions the hub tells it.
type rawLeaf struct {
	c     net.Conn
	mu    sync.Mutex
	lines []string
}

func dialRawLeaf(t *testing.T, port int, creds []byte) *rawLeaf {
	t.Helper()
	tok, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "INFO ")), &info); err != nil {
		t.Fatal(err)
	}
	sig, err := kp.Sign([]byte(info.Nonce))
	if err != nil {
		t.Fatal(err)
	}
	connect, _ := json.Marshal(map[string]any{"jwt": tok, "sig": base64.RawURLEncoding.EncodeToString(sig), "name": "raw", "headers": true})
	if _, err := fmt.Fprintf(c, "CONNECT %s\r\nPING\r\n", connect); err != nil {
		t.Fatal(err)
	}
	r := &rawLeaf{c: c}
	go func() {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			r.mu.Lock()
			r.lines = append(r.lines, l)
			r.mu.Unlock()
		}
	}()
	return r
}

// waitLine waits until the server sent a line containing s.
func (r *rawLeaf) waitLine(t *testing.T, s string) {
	t.Helper()
	checkLines(t, r, func(lines []string) error {
		for _, l := range lines {
			if strings.Contains(l, s) {
				return nil
			}
		}
		return fmt.Errorf("no %q from the server; got %q", s, lines)
	})
}

// checkLines polls fn over the lines the server sent so far.
func checkLines(t *testing.T, r *rawLeaf, fn func([]string) error) {
	t.Helper()
	natstest.CheckFor(t, wait, 10*time.Millisecond, func() error {
		r.mu.Lock()
		lines := slices.Clone(r.lines)
		r.mu.Unlock()
		return fn(lines)
	})
}

// pub sends one message, then a PING so that waitLine("PONG") proves the
// server processed it.
func (r *rawLeaf) pub(t *testing.T, subject, reply, data string) {
	t.Helper()
	var err error
	if reply == "" {
		_, err = fmt.Fprintf(r.c, "LMSG %s %d\r\n%s\r\nPING\r\n", subject, len(data), data)
	} else {
		_, err = fmt.Fprintf(r.c, "LMSG %s %s %d\r\n%s\r\nPING\r\n", subject, reply, len(data), data)
	}
	if err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// apiClient drives the REST API of a running `infrapilot dev` the way a
// user's tool would.
type apiClient struct {
	t    testing.TB
	base string
	http *http.Client
}

func newAPIClient(t testing.TB, httpPort int) *apiClient {
	return &apiClient{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), http: &http.Client{Timeout: 30 * time.Second}}
}

// response is a decoded reply: status, headers and the JSON body.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// str returns a string field of the body ("" when absent).
func (r response) str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// call sends one request. body may be nil, a string (sent verbatim) or any
// value (JSON-encoded). token and org may be empty.
func (c *apiClient) call(method, path, token, org string, body any) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if org != "" {
		req.Header.Set("X-Org-ID", org)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &out.Body)
	}
	return out
}

// must fails the test unless the reply has status want.
func (c *apiClient) must(want int, method, path, token, org string, body any) response {
	c.t.Helper()
	r := c.call(method, path, token, org, body)
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Raw)
	}
	return r
}

package forward

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
)

// newHTTPClient builds the client of one webhook or HEC destination: the
// guarded dialer, the destination's trust roots, no proxy from the
// environment (a proxy would connect on our behalf and bypass the address
// check) and no redirects (a redirect could point anywhere; a 3xx is a
// failed delivery).
func newHTTPClient(d Destination, cfg Config) (*http.Client, error) {
	u, err := url.Parse(d.URL)
	if err != nil {
		return nil, err
	}
	tc, err := tlsConfig(d, u.Hostname())
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			DialContext:         dialContext(cfg),
			TLSClientConfig:     tc,
			TLSHandshakeTimeout: cfg.Timeout,
			MaxIdleConnsPerHost: 2,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// post sends body and returns the response status and (at most 1 KiB of)
// the response body.
func post(ctx context.Context, c *http.Client, url string, body []byte, header http.Header) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	return resp.StatusCode, msg, nil
}

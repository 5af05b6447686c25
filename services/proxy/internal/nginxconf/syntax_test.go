package nginxconf

import (
	"fmt"
	"strings"
	"testing"
)

// directive is one parsed nginx directive: its name, arguments (quotes
// removed) and block.
type directive struct {
	name  string
	args  []string
	block []directive
	// hasBlock distinguishes "name {}" from "name;".
	hasBlock bool
}

// parseNginx parses nginx configuration text the way ngx_conf_read_token
// splits it (whitespace, ';', '{', '}', '#' comments at a token start,
// quoted strings at a token start), refusing backslashes (the renderer
// never writes one) and text after a closing quote.
func parseNginx(s string) ([]directive, error) {
	toks, err := tokens(s)
	if err != nil {
		return nil, err
	}
	ds, rest, err := parseBlock(toks, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("unexpected %q at top level", rest[0].text)
	}
	return ds, nil
}

type token struct {
	text  string
	punct bool // ';', '{' or '}'
}

func tokens(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			out = append(out, token{text: string(c), punct: true})
			i++
		case c == '"' || c == '\'':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote at %d", i)
			}
			q := s[i+1 : i+1+end]
			if strings.ContainsAny(q, "\\\n\r") {
				return nil, fmt.Errorf("escape or line break in quoted string %q", q)
			}
			out = append(out, token{text: q})
			i += end + 2
			if i < len(s) && !strings.ContainsRune(" \t\n\r;{}", rune(s[i])) {
				return nil, fmt.Errorf("unexpected %q after quoted string", s[i])
			}
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r;{}", rune(s[j])) {
				if s[j] == '\\' || s[j] < ' ' || s[j] >= 0x7f {
					return nil, fmt.Errorf("byte %q in token", s[j])
				}
				j++
			}
			out = append(out, token{text: s[i:j]})
			i = j
		}
	}
	return out, nil
}

func parseBlock(toks []token, depth int) ([]directive, []token, error) {
	var ds []directive
	for len(toks) > 0 {
		if toks[0].punct {
			if toks[0].text == "}" && depth > 0 {
				return ds, toks[1:], nil
			}
			return nil, nil, fmt.Errorf("unexpected %q", toks[0].text)
		}
		d := directive{name: toks[0].text}
		toks = toks[1:]
		for len(toks) > 0 && !toks[0].punct {
			d.args = append(d.args, toks[0].text)
			toks = toks[1:]
		}
		if len(toks) == 0 {
			return nil, nil, fmt.Errorf("directive %q not terminated", d.name)
		}
		switch toks[0].text {
		case ";":
			toks = toks[1:]
		case "{":
			var err error
			d.hasBlock = true
			if d.block, toks, err = parseBlock(toks[1:], depth+1); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, fmt.Errorf("unexpected '}' after %q", d.name)
		}
		ds = append(ds, d)
	}
	if depth > 0 {
		return nil, nil, fmt.Errorf("unterminated block")
	}
	return ds, nil, nil
}

// hostDirectives are all directives a host file may contain, with the
// contexts they may appear in.
var hostDirectives = map[string]string{
	"limit_req_zone": "top", "server": "top",
	"listen": "server", "server_name": "server", "ssl_certificate": "server", "ssl_certificate_key": "server",
	"proxy_set_header": "server", "proxy_http_version": "server", "proxy_ssl_server_name": "server",
	"add_header": "server", "location": "server",
	"root": "location", "default_type": "location", "return": "location", "limit_req": "location", "proxy_pass": "location",
}

// knownVars are the only variables a host file may use.
var knownVars = []string{
	"$binary_remote_addr", "$proxy_add_x_forwarded_for", "$remote_addr", "$request_uri",
	"$http_upgrade", "$connection_upgrade", "$scheme", "$host",
}

// checkHostSyntax asserts the structure of a rendered host file: only
// known directives in their contexts, no variables but the renderer's
// own, one or two servers, and the server names exactly the domains —
// so that no input changed the directive structure.
func checkHostSyntax(t testing.TB, conf string, domains []string, csp string) {
	t.Helper()
	ds, err := parseNginx(conf)
	if err != nil {
		t.Fatalf("rendered config does not parse: %v\n%s", err, conf)
	}
	servers := 0
	var walk func(ds []directive, ctx string)
	walk = func(ds []directive, ctx string) {
		for _, d := range ds {
			if want, ok := hostDirectives[d.name]; !ok || want != ctx {
				t.Fatalf("directive %q in %s context:\n%s", d.name, ctx, conf)
			}
			if d.hasBlock != (d.name == "server" || d.name == "location") {
				t.Fatalf("directive %q block %v:\n%s", d.name, d.hasBlock, conf)
			}
			for _, a := range d.args {
				rest := a
				for _, v := range knownVars {
					rest = strings.ReplaceAll(rest, v, "")
				}
				if strings.Contains(rest, "$") {
					t.Fatalf("unexpected variable in %q of %s:\n%s", a, d.name, conf)
				}
			}
			switch d.name {
			case "server":
				servers++
				walk(d.block, "server")
			case "location":
				walk(d.block, "location")
			case "server_name":
				if strings.Join(d.args, " ") != strings.Join(domains, " ") {
					t.Fatalf("server_name %q, want %q", d.args, domains)
				}
			case "add_header":
				if len(d.args) != 3 || d.args[2] != "always" {
					t.Fatalf("add_header %q", d.args)
				}
				if d.args[0] == "Content-Security-Policy" && d.args[1] != csp {
					t.Fatalf("CSP rendered as %q, want %q", d.args[1], csp)
				}
			}
		}
	}
	walk(ds, "top")
	if servers < 1 || servers > 2 {
		t.Fatalf("%d servers:\n%s", servers, conf)
	}
}

// TestParseNginxRejects shows the checker notices broken structure.
func TestParseNginxRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"server { listen 80; ", "a \"b", "a \"b\"c;", "a b\\;", "}", "a {", "a",
	} {
		if _, err := parseNginx(s); err == nil {
			t.Errorf("parseNginx(%q) accepted", s)
		}
	}
	ds, err := parseNginx("a 'b c' \"d;\" # x;\n{ e; }")
	if err != nil || len(ds) != 1 || len(ds[0].args) != 2 || ds[0].args[1] != "d;" || len(ds[0].block) != 1 {
		t.Errorf("parse: %+v %v", ds, err)
	}
}

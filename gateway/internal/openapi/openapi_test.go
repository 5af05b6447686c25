package openapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/infrapilot/infrapilot/gateway/internal/openapi"
)

var methods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}

func document(t *testing.T) map[string]any {
	t.Helper()
	rec := httptest.NewRecorder()
	openapi.Handler(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", doc["openapi"])
	}
	return doc
}

// resolve follows a local $ref ("#/components/…") in doc.
func resolve(doc map[string]any, ref string) (any, bool) {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var node any = doc
	for _, part := range strings.Split(path, "/") {
		m, ok := node.(map[string]any)
		if !ok {
			return nil, false
		}
		if node, ok = m[part]; !ok {
			return nil, false
		}
	}
	return node, true
}

// TestDocumentRefsResolve: every $ref in the document names something the
// document has.
func TestDocumentRefsResolve(t *testing.T) {
	doc := document(t)
	var walk func(at string, node any)
	walk = func(at string, node any) {
		switch v := node.(type) {
		case map[string]any:
			for k, child := range v {
				if k == "$ref" {
					if ref, _ := child.(string); ref == "" {
						t.Errorf("%s: $ref %v", at, child)
					} else if _, ok := resolve(doc, ref); !ok {
						t.Errorf("%s: $ref %s does not resolve", at, ref)
					}
					continue
				}
				walk(at+"/"+k, child)
			}
		case []any:
			for _, child := range v {
				walk(at, child)
			}
		}
	}
	walk("#", doc)
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// TestDocumentOperations: every operation has a summary and responses,
// and every {param} of its path is declared as a path parameter (on the
// path or the operation, directly or through a $ref), and nothing else
// claims to be one.
func TestDocumentOperations(t *testing.T) {
	doc := document(t)
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Fatal("no paths")
	}
	declared := func(list any) map[string]bool {
		out := map[string]bool{}
		items, _ := list.([]any)
		for _, it := range items {
			p, _ := it.(map[string]any)
			if ref, ok := p["$ref"].(string); ok {
				r, _ := resolve(doc, ref)
				p, _ = r.(map[string]any)
			}
			if p["in"] == "path" {
				name, _ := p["name"].(string)
				out[name] = true
				if p["required"] != true {
					t.Errorf("path parameter %s is not required", name)
				}
			}
		}
		return out
	}
	ops := 0
	for path, item := range paths {
		pi, _ := item.(map[string]any)
		onPath := declared(pi["parameters"])
		for method, op := range pi {
			if !methods[method] {
				continue
			}
			ops++
			o, _ := op.(map[string]any)
			if s, _ := o["summary"].(string); s == "" {
				t.Errorf("%s %s: no summary", method, path)
			}
			if r, _ := o["responses"].(map[string]any); len(r) == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
			params := declared(o["parameters"])
			for k := range onPath {
				params[k] = true
			}
			want := map[string]bool{}
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				want[m[1]] = true
				if !params[m[1]] {
					t.Errorf("%s %s: {%s} is not declared", method, path, m[1])
				}
			}
			for p := range params {
				if !want[p] {
					t.Errorf("%s %s: declares path parameter %s it does not have", method, path, p)
				}
			}
		}
	}
	t.Logf("%d paths, %d operations", len(paths), ops)
}

package openapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type inner struct {
	N int `json:"n"`
}

type Embedded struct {
	E string `json:"e"`
}

type sample struct {
	Embedded
	Name    string            `json:"name" doc:"the name"`
	Opt     int               `json:"opt,omitempty"`
	Skip    string            `json:"-"`
	hidden  string            // unexported: not in the schema
	When    time.Time         `json:"when"`
	Tags    []string          `json:"tags"`
	Meta    map[string]string `json:"meta,omitempty"`
	Bytes   []byte            `json:"bytes,omitempty"`
	Ptr     *inner            `json:"ptr,omitempty"`
	Kind    string            `json:"kind,omitempty" enum:"a,b"`
	Count   uint64            `json:"count"`
	Ratio   float64           `json:"ratio"`
	Flag    bool              `json:"flag"`
	Untyped any               `json:"untyped,omitempty"`
}

func schemaOf(t *testing.T, v any) map[string]any {
	t.Helper()
	doc, err := Document(Info{Title: "t", Version: "1"}, []Route{{
		Method: "PUT", Path: "/x/{id}", ID: "put", Params: []Param{{Name: "id", In: "path"}},
		Body: v, Responses: []Response{{Status: 204, Description: "done"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	return d.Components.Schemas["sample"]
}

// TestSchema_FollowsEncodingJSON: names from json tags, omitempty fields
// optional, "-" and unexported fields left out, embedded structs promoted,
// every kind of field its JSON type, named structs by reference.
func TestSchema_FollowsEncodingJSON(t *testing.T) {
	s := schemaOf(t, sample{})
	props := s["properties"].(map[string]any)
	for _, gone := range []string{"Skip", "hidden", "Embedded", "-"} {
		if _, ok := props[gone]; ok {
			t.Errorf("property %q should not be there", gone)
		}
	}
	want := map[string]string{
		"e": `{"type":"string"}`, "name": `{"description":"the name","type":"string"}`, "opt": `{"type":"integer"}`,
		"when": `{"format":"date-time","type":"string"}`, "tags": `{"items":{"type":"string"},"type":"array"}`,
		"meta": `{"additionalProperties":{"type":"string"},"type":"object"}`, "bytes": `{"contentEncoding":"base64","type":"string"}`,
		"ptr": `{"$ref":"#/components/schemas/inner"}`, "kind": `{"enum":["a","b"],"type":"string"}`,
		"count": `{"minimum":0,"type":"integer"}`, "ratio": `{"type":"number"}`, "flag": `{"type":"boolean"}`, "untyped": `{}`,
	}
	for name, w := range want {
		got, _ := json.Marshal(props[name])
		if string(got) != w {
			t.Errorf("%s: %s, want %s", name, got, w)
		}
	}
	req, _ := json.Marshal(s["required"])
	if string(req) != `["count","e","flag","name","ratio","tags","when"]` {
		t.Errorf("required: %s", req)
	}
}

// TestDocument_RefusesMalformedRoutes: a path parameter without its Param
// (or a Param not in the path), a route twice, an id twice, no responses,
// a type with no JSON form: each refused, naming the route.
func TestDocument_RefusesMalformedRoutes(t *testing.T) {
	ok := []Response{{Status: 200, Description: "ok"}}
	for name, tc := range map[string]struct {
		routes []Route
		says   string
	}{
		"undeclared path parameter": {[]Route{{Method: "GET", Path: "/a/{id}", ID: "a", Responses: ok}}, "{id} has no Param"},
		"parameter not in the path": {[]Route{{Method: "GET", Path: "/a", ID: "a", Params: []Param{{Name: "id", In: "path"}}, Responses: ok}}, "not in the path"},
		"unknown location":          {[]Route{{Method: "GET", Path: "/a", ID: "a", Params: []Param{{Name: "c", In: "cookie"}}, Responses: ok}}, "unknown location"},
		"route twice":               {[]Route{{Method: "GET", Path: "/a", ID: "a", Responses: ok}, {Method: "GET", Path: "/a", ID: "b", Responses: ok}}, "twice"},
		"id twice":                  {[]Route{{Method: "GET", Path: "/a", ID: "a", Responses: ok}, {Method: "PUT", Path: "/a", ID: "a", Responses: ok}}, `id "a" twice`},
		"no responses":              {[]Route{{Method: "GET", Path: "/a", ID: "a"}}, "no responses"},
		"no JSON form":              {[]Route{{Method: "GET", Path: "/a", ID: "a", Body: map[int]string{}, Responses: ok}}, "only string keys"},
	} {
		_, err := Document(Info{}, tc.routes)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.says)
		}
	}
}

// TestOperations_ListsEveryMethodAndPath: what a route-coverage test
// compares.
func TestOperations_ListsEveryMethodAndPath(t *testing.T) {
	ok := []Response{{Status: 200, Description: "ok"}}
	doc, err := Document(Info{}, []Route{
		{Method: "GET", Path: "/b", ID: "b", Responses: ok},
		{Method: "PUT", Path: "/a/{id}", ID: "a", Params: []Param{{Name: "id", In: "path"}}, Responses: ok},
		{Method: "DELETE", Path: "/a/{id}", ID: "c", Params: []Param{{Name: "id", In: "path"}}, Responses: ok},
	})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := Operations(doc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ops, ";") != "DELETE /a/{id};GET /b;PUT /a/{id}" {
		t.Fatalf("operations %v", ops)
	}
}

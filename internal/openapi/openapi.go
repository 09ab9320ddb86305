// Package openapi builds an OpenAPI 3.1 document from a route table: the
// routes an HTTP API serves, each with the Go types of its request and
// responses, turned into JSON Schema by reflection. The document is
// generated from the same definitions the handlers use, so it cannot
// drift from them by hand; a golden test in the API's package keeps the
// committed copy in step.
//
// Schemas follow encoding/json: a struct's exported fields under their
// json tag names (a field tagged "-" is left out, omitempty makes it
// optional), a field's `doc` tag its description and its `enum` tag (comma
// separated) the values it may take. Named struct types go to
// components/schemas and are referred to by $ref. Pure: no I/O, no state.
package openapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Route is one operation: a method and a ServeMux path pattern
// ("/v1/services/{service}").
type Route struct {
	Method, Path string
	// ID is the operation's unique name (operationId).
	ID          string
	Summary     string
	Description string
	// Params are the path, query and header parameters. Every {name} of
	// Path must have one (In "path"); Document refuses a route without.
	Params []Param
	// Body is a value of the request body's type (JSON), nil for none.
	Body any
	// Responses by status code.
	Responses []Response
}

// Param is one parameter.
type Param struct {
	Name string
	// In is "path", "query" or "header".
	In          string
	Description string
	Required    bool
	// Example is a value of the parameter's type (string when nil).
	Example any
}

// Response is one possible answer.
type Response struct {
	Status      int
	Description string
	// Body is a value of the answer's type; nil for none.
	Body any
	// ContentType of Body; "" is application/json.
	ContentType string
	// Headers the answer carries, name -> description.
	Headers map[string]string
}

// Info is the document's title, version and description.
type Info struct {
	Title, Version, Description string
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// Document returns the OpenAPI 3.1 document of routes as JSON (indented,
// keys sorted: stable from run to run). It fails on a route that is not
// well-formed (a path parameter without its Param, two routes of one
// method and path, two operations of one ID).
func Document(info Info, routes []Route) ([]byte, error) {
	g := &generator{schemas: map[string]any{}, names: map[string]reflect.Type{}}
	paths := map[string]map[string]any{}
	ids := map[string]bool{}
	for _, r := range routes {
		op, err := g.operation(r)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s %s: %w", r.Method, r.Path, err)
		}
		if ids[r.ID] {
			return nil, fmt.Errorf("openapi: operation id %q twice", r.ID)
		}
		ids[r.ID] = true
		m := strings.ToLower(r.Method)
		if paths[r.Path] == nil {
			paths[r.Path] = map[string]any{}
		}
		if _, dup := paths[r.Path][m]; dup {
			return nil, fmt.Errorf("openapi: %s %s twice", r.Method, r.Path)
		}
		paths[r.Path][m] = op
	}
	doc := map[string]any{
		"openapi":    "3.1.0",
		"info":       map[string]any{"title": info.Title, "version": info.Version, "description": info.Description},
		"paths":      paths,
		"components": map[string]any{"schemas": g.schemas},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Operations returns "METHOD path" of every operation doc holds, sorted:
// what a test compares with the routes a server registered.
func Operations(doc []byte) ([]string, error) {
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	var out []string
	for p, ops := range d.Paths {
		for m := range ops {
			out = append(out, strings.ToUpper(m)+" "+p)
		}
	}
	slices.Sort(out)
	return out, nil
}

type generator struct {
	schemas map[string]any
	names   map[string]reflect.Type // schema name -> the type it was made from
}

func (g *generator) operation(r Route) (map[string]any, error) {
	if r.ID == "" || r.Method == "" || !strings.HasPrefix(r.Path, "/") {
		return nil, fmt.Errorf("a route needs a method, an id and a path starting with /")
	}
	declared := map[string]bool{}
	var params []any
	for _, p := range r.Params {
		switch p.In {
		case "path", "query", "header":
		default:
			return nil, fmt.Errorf("parameter %q: unknown location %q", p.Name, p.In)
		}
		if p.In == "path" {
			declared[p.Name] = true
		}
		ex := p.Example
		if ex == nil {
			ex = ""
		}
		s, err := g.schema(reflect.TypeOf(ex))
		if err != nil {
			return nil, err
		}
		params = append(params, map[string]any{
			"name": p.Name, "in": p.In, "description": p.Description,
			"required": p.Required || p.In == "path", "schema": s,
		})
	}
	for _, m := range pathParam.FindAllStringSubmatch(r.Path, -1) {
		if !declared[m[1]] {
			return nil, fmt.Errorf("path parameter {%s} has no Param", m[1])
		}
		delete(declared, m[1])
	}
	for name := range declared {
		return nil, fmt.Errorf("path parameter %q is not in the path", name)
	}
	op := map[string]any{"operationId": r.ID, "summary": r.Summary}
	if r.Description != "" {
		op["description"] = r.Description
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if r.Body != nil {
		s, err := g.schema(reflect.TypeOf(r.Body))
		if err != nil {
			return nil, err
		}
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": s}}}
	}
	if len(r.Responses) == 0 {
		return nil, fmt.Errorf("no responses")
	}
	responses := map[string]any{}
	for _, resp := range r.Responses {
		out := map[string]any{"description": resp.Description}
		if resp.Body != nil {
			s, err := g.schema(reflect.TypeOf(resp.Body))
			if err != nil {
				return nil, err
			}
			ct := resp.ContentType
			if ct == "" {
				ct = "application/json"
			}
			out["content"] = map[string]any{ct: map[string]any{"schema": s}}
		}
		if len(resp.Headers) > 0 {
			hs := map[string]any{}
			for name, desc := range resp.Headers {
				hs[name] = map[string]any{"description": desc, "schema": map[string]any{"type": "string"}}
			}
			out["headers"] = hs
		}
		code := strconv.Itoa(resp.Status)
		if _, dup := responses[code]; dup {
			return nil, fmt.Errorf("response %s twice", code)
		}
		responses[code] = out
	}
	op["responses"] = responses
	return op, nil
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	rawType      = reflect.TypeFor[json.RawMessage]()
)

// schema returns the JSON Schema of t, as encoding/json writes it.
func (g *generator) schema(t reflect.Type) (map[string]any, error) {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}, nil
	case durationType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}, nil
	case rawType:
		return map[string]any{}, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}, nil
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}, nil
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}, nil
		}
		items, err := g.schema(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key %s: only string keys have a JSON form", t.Key())
		}
		vals, err := g.schema(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": vals}, nil
	case reflect.Struct:
		return g.object(t)
	case reflect.Interface:
		return map[string]any{}, nil
	}
	return nil, fmt.Errorf("type %s has no JSON schema here", t)
}

// object returns a $ref to t's schema in components, making it on first
// use (anonymous structs are inlined).
func (g *generator) object(t reflect.Type) (map[string]any, error) {
	name := t.Name()
	if name != "" {
		if prev, ok := g.names[name]; ok {
			if prev != t {
				return nil, fmt.Errorf("two types named %s (%s and %s)", name, prev, t)
			}
			return ref(name), nil
		}
		g.names[name] = t // before the fields: a type may refer to itself
	}
	props := map[string]any{}
	var required []string
	if err := g.fields(t, props, &required); err != nil {
		return nil, err
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		slices.Sort(required)
		s["required"] = required
	}
	if name == "" {
		return s, nil
	}
	g.schemas[name] = s
	return ref(name), nil
}

// fields adds t's JSON fields (those of embedded structs promoted, as
// encoding/json does) to props.
func (g *generator) fields(t reflect.Type, props map[string]any, required *[]string) error {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			if err := g.fields(f.Type, props, required); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		s, err := g.schema(f.Type)
		if err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
		if enum := f.Tag.Get("enum"); enum != "" {
			s["enum"] = strings.Split(enum, ",")
		}
		if doc := f.Tag.Get("doc"); doc != "" {
			if _, isRef := s["$ref"]; isRef {
				s = map[string]any{"allOf": []any{s}, "description": doc}
			} else {
				s["description"] = doc
			}
		}
		props[name] = s
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
	return nil
}

func ref(name string) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"
)

// formats are the values of --output, the first the default.
var formats = []string{"table", "json", "yaml"}

// formatList names them for help and errors.
const formatList = "table, json or yaml"

// view is what a command prints: a plain struct with snake_case json and
// yaml tags (its JSON and YAML form, stable for scripts) that also knows
// its table form. Commands build views from what they fetched, so
// rendering is pure and tested on fixed input.
type view interface {
	writeTable(w io.Writer) error
}

// render writes v in format.
func render(w io.Writer, format string, v view) error {
	switch format {
	case "table":
		return v.writeTable(w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		// Data IDs may hold <, > and &; scripts want them as they are.
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	case "yaml":
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return err
		}
		return enc.Close()
	}
	return fmt.Errorf("unknown output format %q (want %s)", format, formatList)
}

// emit writes one event of a command that prints as things happen (pub,
// sub): its table form, one line of JSON (JSON Lines, so a script can read
// events as they come), or one YAML document.
func emit(w io.Writer, format string, v view) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	case "yaml":
		if _, err := io.WriteString(w, "---\n"); err != nil {
			return err
		}
	}
	return render(w, format, v)
}

// table writes aligned columns. Empty cells print as "-" so that columns
// stay aligned and splittable on whitespace.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		if i > 0 {
			_, _ = io.WriteString(t.tw, "\t")
		}
		_, _ = io.WriteString(t.tw, c)
	}
	_, _ = io.WriteString(t.tw, "\n")
}

// flush writes the table out; write errors surface here.
func (t *table) flush() error { return t.tw.Flush() }

// list joins IDs for a table cell.
func list(ids []string) string { return strings.Join(ids, ",") }

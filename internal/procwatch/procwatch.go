// Package procwatch is for programs that run Strata's binaries as child
// processes (the end-to-end tests, make chaos): BuildServers builds them
// as make build does, and Writer copies a child's output to its log and
// finds the JSON log line that says the node is up ("<role> node
// started", which carries every bound address).
package procwatch

import (
	"bytes"
	"encoding/json"
	"io"
)

// Writer copies everything written to it to Log and decodes, into a
// value of type T, the first JSON line whose "msg" is Want; that value
// is then sent on Found (buffered: one). exec.Cmd writes a child's output
// from one goroutine, so Writer needs no lock.
type Writer[T any] struct {
	log     io.Writer
	want    string
	found   chan T
	partial []byte
	seen    bool
}

// New returns a Writer copying to log and watching for msg want.
func New[T any](log io.Writer, want string) *Writer[T] {
	return &Writer[T]{log: log, want: want, found: make(chan T, 1)}
}

// Found receives the decoded line once it was written.
func (w *Writer[T]) Found() <-chan T { return w.found }

// Want is the msg watched for.
func (w *Writer[T]) Want() string { return w.want }

// Write implements io.Writer.
func (w *Writer[T]) Write(p []byte) (int, error) {
	n, err := w.log.Write(p)
	if w.seen {
		return n, err
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		var line struct {
			Msg string `json:"msg"`
		}
		var v T
		if json.Unmarshal(w.partial[:i], &line) == nil && line.Msg == w.want && json.Unmarshal(w.partial[:i], &v) == nil {
			w.seen, w.partial = true, nil
			w.found <- v
			break
		}
		w.partial = w.partial[i+1:]
	}
	return n, err
}

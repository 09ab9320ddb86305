package procwatch

import (
	"bytes"
	"testing"
)

func TestWriter_CopiesEverything_DecodesTheFirstWantedLineAcrossWrites(t *testing.T) {
	var log bytes.Buffer
	type started struct {
		Msg  string `json:"msg"`
		GRPC string `json:"grpc"`
	}
	w := New[started](&log, "data node started")
	in := "not json\n{\"msg\":\"other\"}\n{\"msg\":\"data node st" + "arted\",\"grpc\":\"127.0.0.1:1\"}\n{\"msg\":\"data node started\",\"grpc\":\"again\"}\n"
	for _, part := range []string{in[:7], in[7:40], in[40:]} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if log.String() != in {
		t.Fatalf("log got %q", log.String())
	}
	select {
	case s := <-w.Found():
		if s.GRPC != "127.0.0.1:1" {
			t.Fatalf("found %+v, want the first matching line", s)
		}
	default:
		t.Fatal("the started line was not found")
	}
	select {
	case s := <-w.Found():
		t.Fatalf("found twice: %+v", s)
	default:
	}
}

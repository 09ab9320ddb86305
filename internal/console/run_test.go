package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strata-registry/strata/internal/clock"
	"github.com/strata-registry/strata/internal/console"
	"github.com/strata-registry/strata/internal/testcluster"
)

func TestCollector_Run_ScrapesAtOnceThenEveryInterval_StopsWithItsContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE strata_session_connections gauge\nstrata_session_connections 2")
	}))
	defer srv.Close()
	fc := clock.NewFake(time.Unix(1000, 0))
	c, err := console.New(console.Config{Interval: time.Second, History: time.Minute, Window: time.Minute}, console.Deps{
		Clock: fc,
		Targets: func() []console.Target {
			return []console.Target{{ID: "s", Role: "session", Addr: strings.TrimPrefix(srv.URL, "http://")}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	points := func(n int) func() error {
		return func() error {
			s := c.Series()
			if len(s.Points) != n || len(s.Nodes) != 1 || s.Nodes[0].Gauges["connections"] != 2 {
				return fmt.Errorf("%d points, nodes %+v; want %d points and s with 2 connections", len(s.Points), s.Nodes, n)
			}
			return nil
		}
	}
	testcluster.Eventually(t, 10*time.Second, points(1)) // at once, before any tick
	fc.Advance(time.Second)
	testcluster.Eventually(t, 10*time.Second, points(2))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := c.Series(); s.Points[1].T.Sub(s.Points[0].T) != time.Second {
		t.Fatalf("points at %v and %v, want one interval apart", s.Points[0].T, s.Points[1].T)
	}
}

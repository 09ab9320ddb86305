package node

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// RunUntilSignal runs run with a context that ends at SIGINT or SIGTERM,
// and calls reload at every SIGHUP meanwhile (its error is the reloader's
// to report), for the node commands. A run that ends because of the signal
// is not an error.
func RunUntilSignal(run func(context.Context) error, reload func() error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-hup:
				_ = reload()
			case <-done:
				return
			}
		}
	}()
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

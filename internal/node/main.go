package node

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// RunUntilSignal runs run with a context that ends at SIGINT or SIGTERM,
// for the node commands. A run that ends because of the signal is not an
// error.
func RunUntilSignal(run func(context.Context) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

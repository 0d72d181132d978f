// Command agent runs the OpenTelemetry Go auto-instrumentation
// (go.opentelemetry.io/auto) against one process, configured like the
// upstream agent: exporter, service name and sampler from OTEL_* variables.
//
// Usage: agent PID. It logs JSON to stderr and prints "instrumentation
// loaded" once every probe is attached; SIGTERM stops it after the
// exporter has flushed.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"go.opentelemetry.io/auto"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if len(os.Args) != 2 {
		logger.Error("usage: agent PID")
		os.Exit(2)
	}
	pid, err := strconv.Atoi(os.Args[1])
	if err != nil {
		logger.Error("invalid pid", "error", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger, pid); err != nil {
		logger.Error("agent failed", "error", err)
		os.Exit(1)
	}
	logger.Info("agent stopped")
}

func run(ctx context.Context, logger *slog.Logger, pid int) error {
	inst, err := auto.NewInstrumentation(ctx, auto.WithPID(pid), auto.WithEnv(), auto.WithLogger(logger))
	if err != nil {
		return err
	}
	if err := inst.Load(ctx); err != nil {
		return err
	}
	logger.Info("instrumentation loaded", "pid", pid)
	// Run returns once ctx is cancelled, after the default OTLP exporter
	// was shut down (which flushes the spans still batched).
	return inst.Run(ctx)
}

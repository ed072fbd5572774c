package e2e

import "log/slog"

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

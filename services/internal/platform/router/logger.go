package router

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// watermillLogger adapts watermill's logging onto slog. watermill and
// watermill-nats log routine chatter at Info (one "got msg" per message),
// so Info becomes Debug; Trace stays below Debug.
type watermillLogger struct{ watermill.LoggerAdapter }

func newWatermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	return watermillLogger{watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug,
	})}
}

// handlerErrorMsg is what watermill's router logs, at Error, for every
// handler error, including each attempt that will be retried. The router
// logs those itself with the delivery's fields (a retry at Warn, a dead
// letter at Error), so this one is demoted to Debug. Should watermill
// change the text, the only effect is a duplicate Error line.
const handlerErrorMsg = "Handler returned error"

// Error implements watermill.LoggerAdapter.
func (w watermillLogger) Error(msg string, err error, fields watermill.LogFields) {
	if msg == handlerErrorMsg {
		w.Debug(msg, fields.Add(watermill.LogFields{"err": err}))
		return
	}
	w.LoggerAdapter.Error(msg, err, fields)
}

// With implements watermill.LoggerAdapter.
func (w watermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return watermillLogger{w.LoggerAdapter.With(fields)}
}

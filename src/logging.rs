//! Logging: tracing to a file in the data dir (never the terminal the TUI draws on).

//! Logging: slog to stderr through an async drain, filtered by level ([`logger`], with the
//! `cli` feature), or nowhere ([`discard`], the builder's default).

use slog::{o, Level, Logger};

/// Parse a RUST_LOG-style level (`off`, `error`, `warn`, `info`, `debug`, `trace`).
pub fn parse_level(s: &str) -> Option<Option<Level>> {
    Some(Some(match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" => return Some(None),
        "crit" | "critical" => Level::Critical,
        "error" => Level::Error,
        "warn" | "warning" => Level::Warning,
        "info" => Level::Info,
        "debug" => Level::Debug,
        "trace" => Level::Trace,
        _ => return None,
    }))
}

/// A logger at `level` (from `--log`), else from `RUST_LOG`, else `info`.
#[cfg(feature = "cli")]
pub fn logger(level: Option<&str>) -> Logger {
    let env = std::env::var("RUST_LOG").ok();
    let lvl = level.or(env.as_deref()).and_then(parse_level).unwrap_or(Some(Level::Info));
    let Some(lvl) = lvl else {
        return Logger::root(slog::Discard, o!());
    };
    use slog::Drain;
    let decorator = slog_term::TermDecorator::new().stderr().build();
    let drain = slog_term::CompactFormat::new(decorator).build().fuse();
    let drain = slog_async::Async::new(drain).chan_size(4096).build().fuse();
    Logger::root(drain.filter_level(lvl).fuse(), o!())
}

/// A logger that prints nothing (for tests).
pub fn discard() -> Logger {
    Logger::root(slog::Discard, o!())
}

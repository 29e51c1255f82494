//! Logging (R-1, I-1): structured JSON by default, with a redaction pass over every line, for
//! `sluice serve` and for every Lambda function alike.
//!
//! Redaction works on the rendered line, after `tracing` has formatted it, so it catches a
//! sensitive field wherever it appears: a top-level field, a span field, a nested JSON object, or
//! a `password=...` fragment inside a message. The sink is injectable so tests can capture lines.
//!
//! The two hosts differ only in where lines go: `sluice serve` writes through a background thread
//! ([`init`]), a Lambda function writes each line to standard output before its invocation returns
//! ([`init_lambda`]), because Lambda freezes the process between invocations and a line still
//! queued for a background thread would reach CloudWatch late or, at shutdown, never.

use crate::env::{self, Lookup, vars};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use std::io::{self, Write};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The field names masked when none are configured.
pub const DEFAULT_REDACT: &[&str] = &["password", "secret", "token", "authorization", "api_key", "ssn", "card"];

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (the default: machines read logs).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            other => Err(format!("unknown log format {other:?}: expected json or pretty")),
        }
    }
}

/// Logging settings (`[log]` of `sluice serve`; the environment on Lambda).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `sluice=debug,info`.
    pub level: String,
    /// Field names whose values are masked wherever they appear (case-insensitive substring).
    pub redact: Vec<String>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
            redact: DEFAULT_REDACT.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl LogSettings {
    /// A Lambda function's settings, read as the runtime's own subscriber reads them:
    /// `AWS_LAMBDA_LOG_LEVEL` (`TRACE` to `FATAL`, default `INFO`) and `AWS_LAMBDA_LOG_FORMAT`
    /// (`JSON`, the template's setting, or `Text`), plus `SLUICE_LOG_REDACT`, a comma-separated
    /// list of field names that replaces [`DEFAULT_REDACT`] as `[log] redact` does locally.
    pub fn from_lambda_env(env: Lookup<'_>) -> Self {
        let level = match env::optional(env, vars::LAMBDA_LOG_LEVEL)
            .map(|l| l.to_ascii_lowercase())
            .as_deref()
        {
            // Lambda's level names: FATAL has no tracing level of its own.
            Some("fatal") => "error".to_owned(),
            Some(l @ ("trace" | "debug" | "warn" | "error")) => l.to_owned(),
            // API Gateway's access log records every request, and the stored event is the record of
            // its processing (request id, tenant, key, times): at INFO, a function logs only the
            // requests and records that failed, in full (WARN), not a second line per event, which
            // was most of the log bill. DEBUG shows every line.
            _ => LAMBDA_INFO.to_owned(),
        };
        let format = match env::optional(env, vars::LAMBDA_LOG_FORMAT) {
            Some(f) if !f.eq_ignore_ascii_case("json") => LogFormat::Pretty,
            _ => LogFormat::Json,
        };
        let redact = env::list(env, vars::LOG_REDACT).unwrap_or_else(|| Self::default().redact);
        Self { format, level, redact }
    }
}

/// A Lambda function's filter at `INFO`: successful requests and records are not logged again.
pub const LAMBDA_INFO: &str = "info,sluice::access=warn,sluice::record=warn";

/// What a masked value is replaced with.
pub const MASK: &str = "[REDACTED]";

/// Masks configured field names in rendered log lines.
#[derive(Debug, Clone)]
pub struct Redactor {
    names: Vec<String>,
    inline: Option<Regex>,
    /// Any configured name anywhere in a line: most lines have none and skip the JSON round trip.
    any_name: Option<Regex>,
}

impl Redactor {
    /// A redactor for these field names (matched case-insensitively, as substrings).
    pub fn new(names: &[String]) -> Self {
        let names: Vec<String> = names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        let any_name = if names.is_empty() {
            None
        } else {
            let alt = names.iter().map(|n| regex::escape(n)).collect::<Vec<_>>().join("|");
            Regex::new(&format!("(?i){alt}")).ok()
        };
        let inline = if names.is_empty() {
            None
        } else {
            let alt = names.iter().map(|n| regex::escape(n)).collect::<Vec<_>>().join("|");
            // `name=value`, `name: value`, `"name":"value"` inside free text.
            Regex::new(&format!(
                r#"(?i)([A-Za-z0-9_-]*(?:{alt})[A-Za-z0-9_-]*\\?"?\s*[=:]\s*\\?"?)([^\s,;&"\\}}]+)"#
            ))
            .ok()
        };
        Self {
            names,
            inline,
            any_name,
        }
    }

    fn is_sensitive(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        self.names.iter().any(|n| key.contains(n.as_str()))
    }

    fn scrub_text(&self, s: &str) -> Option<String> {
        let re = self.inline.as_ref()?;
        if re.is_match(s) {
            Some(re.replace_all(s, format!("${{1}}{MASK}")).into_owned())
        } else {
            None
        }
    }

    fn scrub(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, val) in map.iter_mut() {
                    if self.is_sensitive(k) {
                        *val = Value::String(MASK.into());
                    } else {
                        self.scrub(val);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.scrub(i)),
            Value::String(s) => {
                if let Some(clean) = self.scrub_text(s) {
                    *s = clean;
                }
            }
            _ => {}
        }
    }

    /// Redacts one rendered line (JSON or plain text).
    pub fn redact_line(&self, line: &str) -> String {
        let trimmed = line.trim_end_matches('\n');
        // A JSON record (the formatter escapes every control character) that mentions no configured
        // name anywhere has nothing to mask: keep it as rendered. Keys and values are written
        // literally by the formatter, so a name cannot hide behind a `\u` escape. A failed name
        // regex means "may contain a name" and takes the full path.
        let plain_json = trimmed.starts_with('{') && trimmed.ends_with('}') && !trimmed.bytes().any(|b| b < 0x20);
        if plain_json && self.any_name.as_ref().is_some_and(|re| !re.is_match(trimmed)) {
            let mut out = escape_separators(trimmed);
            out.push('\n');
            return out;
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(mut v) => {
                self.scrub(&mut v);
                let mut out = escape_separators(&serde_json::to_string(&v).unwrap_or_default());
                out.push('\n');
                out
            }
            Err(_) => {
                let out = self.scrub_text(trimmed).unwrap_or_else(|| trimmed.to_owned());
                // Plain-text lines must stay one line each: a newline inside a field is log injection.
                let mut out = escape_controls(&out.replace(['\n', '\r'], "\\n"));
                out.push('\n');
                out
            }
        }
    }
}

/// Characters that some log viewers and JavaScript-based tools treat as line breaks or that
/// terminals act on, although JSON allows them raw inside strings (R-3, log injection).
fn is_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}' | '\u{7f}')
}

/// Escapes [`is_separator`] characters in rendered JSON. They can only occur inside strings (JSON
/// syntax is ASCII), where `\uXXXX` means the same character, so the record's content is unchanged.
fn escape_separators(json: &str) -> String {
    if !json.chars().any(is_separator) {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 12);
    for c in json.chars() {
        if is_separator(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes every control character and separator in a plain-text line.
fn escape_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() || is_separator(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A [`MakeWriter`] that redacts each event before it reaches the inner writer.
#[derive(Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
    redactor: Arc<Redactor>,
}

impl<M> RedactingMakeWriter<M> {
    /// Wraps `inner`.
    pub fn new(inner: M, redactor: Redactor) -> Self {
        Self {
            inner,
            redactor: Arc::new(redactor),
        }
    }
}

/// Buffers one event and writes it redacted when dropped.
pub struct RedactingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    redactor: Arc<Redactor>,
}

impl<W: Write> RedactingWriter<W> {
    fn drain(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // One writer is made per event, so the buffer is exactly one event: redact it as a whole.
        let out = self.redactor.redact_line(&String::from_utf8_lossy(&self.buf));
        self.buf.clear();
        self.inner.write_all(out.as_bytes())
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.drain();
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.inner.make_writer(),
            buf: Vec::new(),
            redactor: self.redactor.clone(),
        }
    }
}

/// Builds the subscriber for `settings`, writing through `sink`.
pub fn subscriber<M>(
    settings: &LogSettings,
    sink: M,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, TelemetryError>
where
    M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.level).map_err(|e| TelemetryError::Filter {
        level: settings.level.clone(),
        reason: e.to_string(),
    })?;
    let writer = RedactingMakeWriter::new(sink, Redactor::new(&settings.redact));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    Ok(match settings.format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(true)
                .finish(),
        ),
        LogFormat::Pretty => Box::new(builder.with_ansi(false).finish()),
    })
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `level` is not a valid `tracing` filter.
    #[error("log level {level:?} is not a valid filter: {reason}")]
    Filter {
        /// The configured filter.
        level: String,
        /// What the parser said.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("a log subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the global subscriber writing to standard output through a background thread
/// (`sluice serve`). Keep the returned guard alive: dropping it flushes what is buffered.
pub fn init(settings: &LogSettings) -> Result<tracing_appender::non_blocking::WorkerGuard, TelemetryError> {
    // Not lossy: an audit log (R-1) that drops lines under load is no audit log.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(io::stdout());
    install(subscriber(settings, writer)?)?;
    Ok(guard)
}

/// Installs the global subscriber of a Lambda function: the same redacting formatter, writing
/// each line to standard output at once (see the module docs), with the settings of
/// [`LogSettings::from_lambda_env`] (read with the function's configuration, so the manifest check
/// sees them).
pub fn init_lambda(settings: &LogSettings) -> Result<(), TelemetryError> {
    install(subscriber(settings, io::stdout)?)
}

fn install(subscriber: Box<dyn tracing::Subscriber + Send + Sync>) -> Result<(), TelemetryError> {
    tracing::subscriber::set_global_default(subscriber).map_err(|_| TelemetryError::AlreadyInstalled)
}

/// A sink that keeps every line in memory, for tests that read what a host would have logged
/// (pass a clone to [`subscriber`], read [`MemorySink::text`]).
#[derive(Debug, Clone, Default)]
pub struct MemorySink(Arc<std::sync::Mutex<Vec<u8>>>);

impl MemorySink {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = match self.0.lock() {
            Ok(b) => b.clone(),
            Err(p) => p.into_inner().clone(),
        };
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut b) => b.extend_from_slice(buf),
            Err(p) => p.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for MemorySink {
    type Writer = MemorySink;

    fn make_writer(&'a self) -> MemorySink {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(settings: &LogSettings, f: impl FnOnce()) -> String {
        let sink = MemorySink::default();
        let sub = subscriber(settings, sink.clone()).unwrap();
        tracing::subscriber::with_default(sub, f);
        sink.text()
    }

    #[test]
    fn i1_lines_without_a_configured_name_skip_the_round_trip_but_not_the_escapes() {
        let r = Redactor::new(&["token".to_owned()]);
        let clean = r#"{"msg":"ok","path":"/v1/events","note":"a\u2028b"}"#.replace("\\u2028", "\u{2028}");
        let out = r.redact_line(&clean);
        assert!(out.ends_with('\n') && !out.contains('\u{2028}'), "{out:?}");
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["note"], "a\u{2028}b");
        // A name anywhere, even only inside a value, takes the masking path.
        let out = r.redact_line(r#"{"msg":"call with token=abc123","TOKEN":"x"}"#);
        assert!(!out.contains("abc123") && !out.contains(r#""x""#), "{out}");
    }

    #[test]
    fn r3_unicode_line_separators_and_controls_are_escaped() {
        let hostile = "a\u{2028}b\u{2029}c\u{85}d\u{7f}e\nf\u{1b}[2Jg";
        let out = capture(&LogSettings::default(), || {
            tracing::info!(field = hostile, "got {}", hostile);
        });
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        assert!(
            !out.chars().any(|c| c != '\n' && (c.is_control() || is_separator(c))),
            "{out:?}"
        );
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["field"], hostile, "the escapes decode to the same text");

        let plain = LogSettings {
            format: LogFormat::Pretty,
            ..LogSettings::default()
        };
        let out = capture(&plain, || tracing::info!("got {}", hostile));
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        assert!(
            !out.chars().any(|c| c != '\n' && (c.is_control() || is_separator(c))),
            "{out:?}"
        );
    }

    #[test]
    fn i1_secret_fields_are_masked_wherever_they_appear() {
        let out = capture(&LogSettings::default(), || {
            let span = tracing::info_span!("req", api_key = "sk-live-1");
            let _g = span.enter();
            tracing::info!(
                password = "hunter2",
                user_token = "tok-9",
                tenant = "acme",
                "login password=hunter3 ok"
            );
            tracing::info!(payload = r#"{"card":"4111111111111111","ok":1}"#, "nested");
        });
        for secret in ["hunter2", "hunter3", "tok-9", "4111111111111111", "sk-live-1"] {
            assert!(!out.contains(secret), "{secret} leaked into {out}");
        }
        assert!(out.contains("acme"), "non-sensitive fields stay: {out}");
        assert!(out.contains(MASK));
        for line in out.lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }

    #[test]
    fn log_injection_cannot_forge_a_line() {
        let out = capture(&LogSettings::default(), || {
            tracing::info!(event_type = "a\n{\"level\":\"ERROR\",\"forged\":true}", "received");
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        let pretty = LogSettings {
            format: LogFormat::Pretty,
            ..LogSettings::default()
        };
        let out = capture(&pretty, || tracing::info!("two\nlines"));
        assert_eq!(out.lines().count(), 1, "{out}");
    }

    #[test]
    fn lambda_settings_follow_the_lambda_services_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        let none = LogSettings::from_lambda_env(&env(&[]));
        assert_eq!(
            none,
            LogSettings {
                level: LAMBDA_INFO.into(),
                ..LogSettings::default()
            },
            "JSON, info without the successes' lines, and the default names"
        );
        let s = LogSettings::from_lambda_env(&env(&[
            (vars::LAMBDA_LOG_FORMAT, "Text"),
            (vars::LAMBDA_LOG_LEVEL, "FATAL"),
            (vars::LOG_REDACT, "iban, pin"),
        ]));
        assert_eq!(s.format, LogFormat::Pretty);
        assert_eq!(s.level, "error");
        assert_eq!(s.redact, ["iban", "pin"]);
        let s = LogSettings::from_lambda_env(&env(&[
            (vars::LAMBDA_LOG_FORMAT, "json"),
            (vars::LAMBDA_LOG_LEVEL, "debug"),
        ]));
        assert_eq!((s.format, s.level.as_str()), (LogFormat::Json, "debug"));
    }

    /// The log bill (issue 20): at a Lambda function's INFO, a successful request or record
    /// writes no line (API Gateway's access log and the stored event record it), and every
    /// failure is still logged in full.
    #[test]
    fn at_lambda_info_only_failed_requests_and_records_are_logged() {
        let lambda = LogSettings {
            level: LAMBDA_INFO.into(),
            ..LogSettings::default()
        };
        let out = capture(&lambda, || {
            tracing::info!(target: "sluice::access", status = 202, "request");
            tracing::warn!(target: "sluice::access", status = 401, "request");
            tracing::info!(target: "sluice::record", event_id = "evt_ok", "record processed");
            tracing::warn!(target: "sluice::record", event_id = "evt_bad", reason = "x", "record failed");
            tracing::info!(target: "sluice::worker", "started");
        });
        assert!(!out.contains(r#""status":202"#) && !out.contains("evt_ok"), "{out}");
        assert!(
            out.contains(r#""status":401"#) && out.contains("evt_bad") && out.contains("started"),
            "{out}"
        );
    }

    #[test]
    fn configured_names_replace_the_defaults() {
        let settings = LogSettings {
            redact: vec!["iban".into()],
            ..LogSettings::default()
        };
        let out = capture(&settings, || {
            tracing::info!(customer_iban = "DE89", password = "visible", "x")
        });
        assert!(!out.contains("DE89"));
        assert!(out.contains("visible"));
    }
}

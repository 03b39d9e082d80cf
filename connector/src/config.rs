//! The connector's TOML file: upstream hftbacktest's Bybit keys plus our own, with defaults,
//! checked once at start so a bad value is one clear line, not a failure later.

use std::{path::Path, time::Duration};

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Bybit linear/inverse order-book depths the public stream offers.
pub const DEPTHS: [u32; 5] = [1, 50, 200, 500, 1000];

/// The file as written. Upstream's keys are all accepted (so its `bybit.toml` works as is);
/// the private ones are ignored because this connector does not trade.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    // Upstream hftbacktest connector keys.
    public_url: String,
    #[serde(default)]
    private_url: Option<String>,
    #[serde(default)]
    trade_url: Option<String>,
    #[serde(default)]
    rest_url: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default = "default_category")]
    category: String,
    #[serde(default)]
    order_prefix: Option<String>,
    // Ours.
    #[serde(default = "default_depth")]
    depth: u32,
    #[serde(default = "default_ping")]
    ping_interval_s: f64,
    #[serde(default = "default_stale")]
    stale_after_s: f64,
    #[serde(default = "default_backoff_min")]
    reconnect_min_s: f64,
    #[serde(default = "default_backoff_max")]
    reconnect_max_s: f64,
    #[serde(default = "default_resync")]
    resync_timeout_s: f64,
    #[serde(default = "default_rest_timeout")]
    rest_timeout_s: f64,
    #[serde(default = "default_stats")]
    stats_interval_s: f64,
}

macro_rules! defaults {
    ($($name:ident: $ty:ty = $value:expr;)*) => {
        $(fn $name() -> $ty { $value })*
    };
}

defaults! {
    default_category: String = "linear".to_string();
    default_depth: u32 = 50;
    default_ping: f64 = 20.0;
    default_stale: f64 = 30.0;
    default_backoff_min: f64 = 0.5;
    default_backoff_max: f64 = 30.0;
    default_resync: f64 = 10.0;
    default_rest_timeout: f64 = 10.0;
    default_stats: f64 = 60.0;
}

/// The validated configuration the connector runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub public_url: String,
    /// `None` disables the tick/lot check against REST (logged at start).
    pub rest_url: Option<String>,
    pub category: String,
    pub depth: u32,
    pub ping_interval: Duration,
    pub stale_after: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub resync_timeout: Duration,
    pub rest_timeout: Duration,
    pub stats_interval: Duration,
    /// Upstream keys present in the file that this connector ignores (for one log line).
    pub ignored_keys: Vec<&'static str>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: String::new(),
            message: one_line(text, &error),
        })?;
        raw.validate()
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let public_url = self.public_url.trim().to_string();
        if !(public_url.starts_with("ws://") || public_url.starts_with("wss://")) {
            return Err(invalid(
                "public_url",
                format!("{public_url:?} must start with ws:// or wss://"),
            ));
        }
        let rest_url = match self.rest_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_string())
            }
            Some(url) => {
                return Err(invalid(
                    "rest_url",
                    format!("{url:?} must start with http:// or https://"),
                ));
            }
        };
        let category = match self.category.as_str() {
            "linear" | "inverse" => self.category,
            other => {
                return Err(invalid(
                    "category",
                    format!("{other:?} is not supported (use \"linear\" or \"inverse\")"),
                ));
            }
        };
        if !DEPTHS.contains(&self.depth) {
            return Err(invalid(
                "depth",
                format!("{} is not one of {DEPTHS:?}", self.depth),
            ));
        }
        let ping_interval = seconds("ping_interval_s", self.ping_interval_s)?;
        let stale_after = seconds("stale_after_s", self.stale_after_s)?;
        if stale_after <= ping_interval {
            return Err(invalid(
                "stale_after_s",
                format!(
                    "{} must be greater than ping_interval_s ({}): pongs are what keep a quiet stream fresh",
                    self.stale_after_s, self.ping_interval_s
                ),
            ));
        }
        let reconnect_min = seconds("reconnect_min_s", self.reconnect_min_s)?;
        let reconnect_max = seconds("reconnect_max_s", self.reconnect_max_s)?;
        if reconnect_max < reconnect_min {
            return Err(invalid(
                "reconnect_max_s",
                format!(
                    "{} is below reconnect_min_s ({})",
                    self.reconnect_max_s, self.reconnect_min_s
                ),
            ));
        }
        let mut ignored_keys = Vec::new();
        for (key, value) in [
            ("private_url", &self.private_url),
            ("trade_url", &self.trade_url),
            ("api_key", &self.api_key),
            ("secret", &self.secret),
            ("order_prefix", &self.order_prefix),
        ] {
            if value.as_deref().is_some_and(|v| !v.is_empty()) {
                ignored_keys.push(key);
            }
        }
        Ok(Config {
            public_url,
            rest_url,
            category,
            depth: self.depth,
            ping_interval,
            stale_after,
            reconnect_min,
            reconnect_max,
            resync_timeout: seconds("resync_timeout_s", self.resync_timeout_s)?,
            rest_timeout: seconds("rest_timeout_s", self.rest_timeout_s)?,
            stats_interval: seconds("stats_interval_s", self.stats_interval_s)?,
            ignored_keys,
        })
    }
}

/// toml's own message spans lines (it quotes the source); logs want one line naming the spot.
fn one_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    let Some(span) = error.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_no = text.get(..start).unwrap_or(text).matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
    format!(
        "{message} at line {line_no}: `{}`",
        line.chars().take(80).collect::<String>()
    )
}

fn invalid(key: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { key, reason }
}

/// A positive, finite number of seconds up to a day.
fn seconds(key: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(invalid(
            key,
            format!("{value} must be a number of seconds in (0, 86400]"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's example `bybit.toml`, key for key.
    const UPSTREAM: &str = r#"
public_url = "wss://stream-testnet.bybit.com/v5/public/linear"
private_url = "wss://stream-testnet.bybit.com/v5/private"
trade_url = "wss://stream-testnet.bybit.com/v5/trade"
rest_url = "https://api-testnet.bybit.com"
category = "linear"
order_prefix = ""
api_key = ""
secret = ""
"#;

    #[test]
    fn upstream_file_parses_with_our_defaults() {
        let c = Config::parse(UPSTREAM).expect("upstream config");
        assert_eq!(
            c.public_url,
            "wss://stream-testnet.bybit.com/v5/public/linear"
        );
        assert_eq!(c.rest_url.as_deref(), Some("https://api-testnet.bybit.com"));
        assert_eq!(c.category, "linear");
        assert_eq!(c.depth, 50);
        assert_eq!(c.ping_interval, Duration::from_secs(20));
        assert_eq!(c.stale_after, Duration::from_secs(30));
        assert_eq!(c.reconnect_min, Duration::from_millis(500));
        assert_eq!(c.reconnect_max, Duration::from_secs(30));
        assert!(c.ignored_keys.contains(&"private_url"));
        assert!(
            !c.ignored_keys.contains(&"api_key"),
            "empty keys are not reported"
        );
    }

    #[test]
    fn our_keys_override_defaults() {
        let c = Config::parse(
            r#"public_url = "ws://127.0.0.1:9000/v5/public/linear"
rest_url = "http://127.0.0.1:9001/"
depth = 200
ping_interval_s = 5
stale_after_s = 12.5
reconnect_min_s = 0.1
reconnect_max_s = 2
"#,
        )
        .expect("config");
        assert_eq!(c.depth, 200);
        assert_eq!(c.rest_url.as_deref(), Some("http://127.0.0.1:9001"));
        assert_eq!(c.ping_interval, Duration::from_secs(5));
        assert_eq!(c.stale_after, Duration::from_millis(12_500));
        assert_eq!(c.reconnect_max, Duration::from_secs(2));
    }

    #[test]
    fn minimal_file_needs_only_public_url() {
        let c = Config::parse(r#"public_url = "wss://stream.bybit.com/v5/public/linear""#)
            .expect("config");
        assert_eq!(c.rest_url, None);
        assert!(c.ignored_keys.is_empty());
    }

    fn error_of(text: &str) -> String {
        match Config::parse(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_values_give_clear_errors() {
        let with_url = |rest: &str| format!("public_url = \"wss://x\"\n{rest}");
        let cases = [
            (String::new(), "public_url"),
            (r#"public_url = "https://x""#.into(), "ws:// or wss://"),
            (with_url("depth = 25"), "`depth`"),
            (with_url("depth = \"50\""), "depth"),
            (with_url("category = \"option\""), "`category`"),
            (with_url("rest_url = \"ftp://x\""), "`rest_url`"),
            (with_url("ping_interval_s = 0"), "`ping_interval_s`"),
            (with_url("ping_interval_s = -3"), "`ping_interval_s`"),
            (with_url("stale_after_s = 10"), "`stale_after_s`"),
            (
                with_url("reconnect_min_s = 5\nreconnect_max_s = 1"),
                "`reconnect_max_s`",
            ),
            // Typos are caught.
            (with_url("deph = 50"), "deph"),
            ("public_url = ".into(), "config file"),
            ("public_url = [".into(), "config file"),
        ];
        for (text, needle) in cases {
            let e = error_of(&text);
            assert!(e.contains(needle) && !e.contains('\n'), "{text:?}: {e}");
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Config::load(Path::new("/nonexistent/connector.toml")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/connector.toml"), "{e}");
    }
}

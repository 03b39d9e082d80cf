//! The connector's TOML file: upstream hftbacktest's Bybit keys plus our own, with defaults,
//! checked once at start so a bad value is one clear line, not a failure later.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;
use thiserror::Error;

use crate::trading::desk::Limits;

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

/// The file as written. Upstream's keys are all accepted (so its `bybit.toml` works as is).
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
    #[serde(default)]
    api_key_file: Option<String>,
    #[serde(default)]
    secret_file: Option<String>,
    #[serde(default)]
    trade_on_mainnet: bool,
    #[serde(default = "default_max_order_qty")]
    max_order_qty: f64,
    #[serde(default = "default_max_position")]
    max_position: f64,
    #[serde(default = "default_max_open_orders")]
    max_open_orders: usize,
    #[serde(default = "default_max_orders_per_s")]
    max_orders_per_s: f64,
    #[serde(default)]
    control_listen: Option<String>,
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
    default_max_order_qty: f64 = 0.01;
    default_max_position: f64 = 0.05;
    default_max_open_orders: usize = 10;
    default_max_orders_per_s: f64 = 5.0;
}

/// Hosts of Bybit's real-money endpoints: trading there needs `trade_on_mainnet = true`.
/// Bybit's domains: any host under them trades real money unless it is a testnet or demo host.
const BYBIT_DOMAINS: [&str; 3] = ["bybit.com", "bytick.com", "bybit.nl"];

/// Order routing, when keys are configured.
#[derive(Clone, Debug, PartialEq)]
pub struct Trading {
    pub private_url: String,
    pub trade_url: String,
    /// Signed REST reads (reconcile); required with keys.
    pub rest_url: String,
    pub api_key: String,
    /// Never logged: `Debug` of the config hides it.
    pub secret: Secret,
}

#[derive(Clone, PartialEq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
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
    /// Order routing; None: market data only, orders refused with `trading_off` as the reason.
    pub trading: Option<Trading>,
    pub trading_off: String,
    pub order_prefix: String,
    pub limits: Limits,
    /// The control API (GET /trading, POST /kill); None: off.
    pub control_listen: Option<SocketAddr>,
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
            "linear" | "inverse" => self.category.clone(),
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
        let limits = self.limits()?;
        let order_prefix = self
            .order_prefix
            .clone()
            .unwrap_or_else(|| "hl".to_string());
        if order_prefix.len() > 16
            || !order_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "order_prefix",
                format!("{order_prefix:?}: up to 16 of letters, digits, '-' and '_'"),
            ));
        }
        let control_listen = match self.control_listen.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid("control_listen", format!("{text:?} is not an address:port"))
            })?),
        };
        let (trading, trading_off) = self.trading(rest_url.as_deref(), &category)?;
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
            trading,
            trading_off,
            order_prefix,
            limits,
            control_listen,
        })
    }

    fn limits(&self) -> Result<Limits, ConfigError> {
        for (key, value) in [
            ("max_order_qty", self.max_order_qty),
            ("max_position", self.max_position),
            ("max_orders_per_s", self.max_orders_per_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid(key, format!("{value} must be a positive number")));
            }
        }
        if self.max_open_orders == 0 {
            return Err(invalid("max_open_orders", "must be at least 1".into()));
        }
        Ok(Limits {
            max_order_qty: self.max_order_qty,
            max_position: self.max_position,
            max_open_orders: self.max_open_orders,
            max_orders_per_s: self.max_orders_per_s,
        })
    }

    /// Keys (inline, as upstream, or from files) and the private endpoints; none → market data only.
    fn trading(
        &self,
        rest_url: Option<&str>,
        category: &str,
    ) -> Result<(Option<Trading>, String), ConfigError> {
        let api_key = key_value("api_key", &self.api_key, "api_key_file", &self.api_key_file)?;
        let secret = key_value("secret", &self.secret, "secret_file", &self.secret_file)?;
        let (api_key, secret) = match (api_key, secret) {
            (None, None) => {
                let why = "no API keys configured: market data only".to_string();
                return Ok((None, why));
            }
            (Some(key), Some(secret)) => (key, secret),
            (Some(_), None) => {
                return Err(invalid(
                    "secret",
                    "an API key needs its secret (secret_file)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "api_key",
                    "a secret needs its API key (api_key_file)".into(),
                ));
            }
        };
        let ws = |key: &'static str, value: &Option<String>| -> Result<String, ConfigError> {
            let url = value.as_deref().map(str::trim).unwrap_or_default();
            if url.starts_with("ws://") || url.starts_with("wss://") {
                Ok(url.to_string())
            } else {
                Err(invalid(
                    key,
                    format!("{url:?}: trading needs a ws:// or wss:// URL"),
                ))
            }
        };
        let private_url = ws("private_url", &self.private_url)?;
        let trade_url = ws("trade_url", &self.trade_url)?;
        let Some(rest_url) = rest_url else {
            return Err(invalid(
                "rest_url",
                "trading needs it (open orders and position at start)".into(),
            ));
        };
        if category != "linear" {
            return Err(invalid(
                "category",
                format!("{category:?}: trading supports linear only"),
            ));
        }
        let mainnet = [&private_url, &trade_url, rest_url]
            .iter()
            .any(|url| is_mainnet(&host_of(url).to_ascii_lowercase()));
        if mainnet && !self.trade_on_mainnet {
            return Err(invalid(
                "trade_on_mainnet",
                "keys with Bybit mainnet endpoints trade real money: set trade_on_mainnet = true to allow it".into(),
            ));
        }
        let trading = Trading {
            private_url,
            trade_url,
            rest_url: rest_url.to_string(),
            api_key,
            secret: Secret(secret),
        };
        Ok((Some(trading), String::new()))
    }
}

/// A key given inline or as a file (whose content, trimmed, is the key); never both.
fn key_value(
    key: &'static str,
    inline: &Option<String>,
    file_key: &'static str,
    file: &Option<String>,
) -> Result<Option<String>, ConfigError> {
    let inline = inline.as_deref().map(str::trim).filter(|v| !v.is_empty());
    let file = file.as_deref().map(str::trim).filter(|v| !v.is_empty());
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(
            file_key,
            format!("give {key} or {file_key}, not both"),
        )),
        (Some(value), None) => Ok(Some(value.to_string())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(file_key, format!("cannot read {path}: {e}")))?;
            let value = text.trim();
            if value.is_empty() {
                return Err(invalid(file_key, format!("{path} is empty")));
            }
            Ok(Some(value.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// A Bybit host that is neither testnet nor demo trading (both play money).
fn is_mainnet(host: &str) -> bool {
    let bybit = BYBIT_DOMAINS
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")));
    bybit && !host.contains("testnet") && !host.contains("demo")
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
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
    // Upstream's file may hold the key and secret inline: never quote those lines.
    if ["api_key", "secret"]
        .iter()
        .any(|key| line.starts_with(key))
    {
        return format!("{message} at line {line_no} (a key line: not shown)");
    }
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
        assert!(c.trading.is_none(), "empty keys: market data only");
        assert_eq!(c.trading_off, "no API keys configured: market data only");
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
        assert!(c.trading.is_none() && c.control_listen.is_none());
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

    fn with_keys(extra: &str) -> String {
        // One folder per call: tests run in parallel and rewrite the files.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hftlive-keys-{}-{call}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("key"), "k3y\n").expect("key");
        std::fs::write(dir.join("secret"), "s3cret-value\n").expect("secret");
        std::fs::write(dir.join("empty"), "\n").expect("empty");
        format!(
            "public_url = \"ws://sim/v5/public/linear\"\nrest_url = \"http://sim\"\n\
             private_url = \"ws://sim/v5/private\"\ntrade_url = \"ws://sim/v5/trade\"\n\
             api_key_file = \"{0}/key\"\nsecret_file = \"{0}/secret\"\n{extra}",
            dir.display()
        )
    }

    #[test]
    fn keys_from_files_turn_trading_on_and_stay_hidden() {
        let c = Config::parse(&with_keys("control_listen = \"0.0.0.0:8092\"")).expect("config");
        let t = c.trading.as_ref().expect("trading on");
        assert_eq!(
            (t.api_key.as_str(), t.secret.0.as_str()),
            ("k3y", "s3cret-value")
        );
        assert!(
            !format!("{c:?}").contains("s3cret-value"),
            "Debug hides the secret"
        );
        assert_eq!(c.order_prefix, "hl");
        assert_eq!(c.limits.max_open_orders, 10);
        assert_eq!(
            c.control_listen,
            Some("0.0.0.0:8092".parse().expect("addr"))
        );
    }

    #[test]
    fn trading_settings_are_checked() {
        let mainnet = "private_url = \"wss://stream.bybit.com/v5/private\"";
        let cases = [
            (with_keys("api_key = \"inline\""), "not both"),
            (with_keys("max_position = 0"), "`max_position`"),
            (with_keys("max_open_orders = 0"), "`max_open_orders`"),
            (with_keys("order_prefix = \"bad prefix\""), "`order_prefix`"),
            (
                with_keys("control_listen = \"nowhere\""),
                "`control_listen`",
            ),
            (with_keys("category = \"inverse\""), "linear only"),
            (with_keys("").replace("/secret\"", "/empty\""), "is empty"),
            (
                with_keys("").replace("/secret\"", "/missing\""),
                "cannot read",
            ),
            (
                with_keys("").replace("private_url = \"ws://sim/v5/private\"", mainnet),
                "trade_on_mainnet",
            ),
            (
                with_keys("").replace("rest_url = \"http://sim\"\n", ""),
                "`rest_url`",
            ),
            (
                with_keys("").replace("trade_url = \"ws://sim/v5/trade\"\n", ""),
                "`trade_url`",
            ),
            (
                "public_url = \"ws://x\"\nsecret = \"s\"".to_string(),
                "`api_key`",
            ),
        ];
        for (text, needle) in cases {
            let e = error_of(&text);
            assert!(e.contains(needle) && !e.contains('\n'), "{needle}: {e}");
            assert!(!e.contains("s3cret-value"), "{e}");
        }
        for host in ["API.BYBIT.COM", "api.bytick.com", "stream.bybit.com"] {
            let text = with_keys("").replace("http://sim", &format!("https://{host}"));
            assert!(error_of(&text).contains("trade_on_mainnet"), "{host}");
        }
        for host in ["api-testnet.bybit.com", "api-demo.bybit.com", "simulator"] {
            let text = with_keys("").replace("http://sim", &format!("https://{host}"));
            assert!(Config::parse(&text).is_ok(), "{host}");
        }
        let leaky = "public_url = \"ws://x\"\nsecret = \"s3cret-value";
        assert!(
            !error_of(leaky).contains("s3cret-value"),
            "a broken key line is not quoted"
        );
        let allowed = with_keys("trade_on_mainnet = true")
            .replace("private_url = \"ws://sim/v5/private\"", mainnet);
        assert!(
            Config::parse(&allowed)
                .expect("mainnet allowed")
                .trading
                .is_some()
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Config::load(Path::new("/nonexistent/connector.toml")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/connector.toml"), "{e}");
    }
}

//! Command line, compatible with upstream's connector: `connector NAME bybit FILE` (its
//! positional form) or `connector --name NAME --connector bybit --config FILE`.

use std::path::PathBuf;

use thiserror::Error;

pub const USAGE: &str = "\
usage: connector --name NAME --connector bybit --config FILE
       connector NAME bybit FILE

  NAME     channel name bots connect to (iceoryx2 services NAME/ToBot, NAME/FromBot)
  bybit    the only exchange this binary speaks (Bybit v5 public market data)
  FILE     TOML config (upstream's bybit keys: public_url, rest_url, category, ...)

env: HFTBACKTEST_CHANNEL_CONFIG  TOML with buffer_size and max_bots (read by hftbacktest)
     RUST_LOG                    log filter, e.g. info or debug,iceoryx2=warn";

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub name: String,
    pub config: PathBuf,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Args),
    Help,
    Version,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CliError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{0} needs a value")]
    NoValue(String),
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
    #[error("connector {0:?} is not supported: this binary speaks only \"bybit\"")]
    Connector(String),
    #[error("invalid name {0:?}: use 1-64 letters, digits, '-', '_' or '.'")]
    Name(String),
}

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let mut name = None;
    let mut connector = None;
    let mut config = None;
    let mut positional = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--name" => &mut name,
            "--connector" => &mut connector,
            "--config" => &mut config,
            _ if arg.starts_with('-') && arg.len() > 1 => return Err(CliError::Unexpected(arg)),
            _ => {
                positional.push(arg);
                continue;
            }
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| CliError::NoValue(flag.clone()))?,
        };
        *slot = Some(value);
    }
    let mut positional = positional.into_iter();
    for slot in [&mut name, &mut connector, &mut config] {
        if slot.is_none() {
            *slot = positional.next();
        }
    }
    if let Some(extra) = positional.next() {
        return Err(CliError::Unexpected(extra));
    }
    let name = name.ok_or(CliError::Missing("--name"))?;
    let connector = connector.ok_or(CliError::Missing("--connector"))?;
    let config = config.ok_or(CliError::Missing("--config"))?;
    if connector != "bybit" {
        return Err(CliError::Connector(connector));
    }
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(CliError::Name(name));
    }
    Ok(Command::Run(Args {
        name,
        config: PathBuf::from(config),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    fn ok(name: &str, config: &str) -> Result<Command, CliError> {
        Ok(Command::Run(Args {
            name: name.into(),
            config: PathBuf::from(config),
        }))
    }

    #[test]
    fn flags_positional_and_mixed() {
        assert_eq!(
            run(&[
                "--name",
                "bybit1",
                "--connector",
                "bybit",
                "--config",
                "c.toml"
            ]),
            ok("bybit1", "c.toml")
        );
        assert_eq!(
            run(&["--config=c.toml", "--name=n", "--connector=bybit"]),
            ok("n", "c.toml")
        );
        assert_eq!(run(&["n", "bybit", "c.toml"]), ok("n", "c.toml"));
        assert_eq!(run(&["--name", "n", "bybit", "c.toml"]), ok("n", "c.toml"));
    }

    #[test]
    fn errors_are_clear() {
        assert_eq!(
            run(&["--name", "n", "--connector", "bybit"]),
            Err(CliError::Missing("--config"))
        );
        assert_eq!(run(&["--name"]), Err(CliError::NoValue("--name".into())));
        assert_eq!(
            run(&["n", "binancefutures", "c.toml"]),
            Err(CliError::Connector("binancefutures".into()))
        );
        assert_eq!(
            run(&["n", "bybit", "c.toml", "x"]),
            Err(CliError::Unexpected("x".into()))
        );
        assert_eq!(
            run(&["--bogus", "1"]),
            Err(CliError::Unexpected("--bogus".into()))
        );
        assert_eq!(
            run(&["a/b", "bybit", "c.toml"]),
            Err(CliError::Name("a/b".into()))
        );
        assert_eq!(run(&["--help"]), Ok(Command::Help));
        assert_eq!(run(&["-V"]), Ok(Command::Version));
    }
}

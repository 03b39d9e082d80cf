//! A file whose modification time says "the exchange stream is alive", for container healthchecks.
//! Enabled by `CONNECTOR_HEARTBEAT_FILE`; touched at most once a second while frames arrive.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use tracing::warn;

const EVERY: Duration = Duration::from_secs(1);

pub struct Heartbeat {
    path: Option<PathBuf>,
    last: Option<Instant>,
    warned: bool,
}

impl Heartbeat {
    pub fn from_env() -> Self {
        let path = std::env::var_os("CONNECTOR_HEARTBEAT_FILE")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        Self::new(path)
    }

    fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            last: None,
            warned: false,
        }
    }

    /// Marks the stream alive now (rewrites the file once a second at most).
    pub fn beat(&mut self) {
        let Some(path) = &self.path else { return };
        if self.last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        if let Err(error) = std::fs::write(path, b"")
            && !self.warned
        {
            self.warned = true;
            warn!(%error, path = %path.display(), "cannot write the heartbeat file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_at_most_once_a_second_and_only_when_configured() {
        let dir = std::env::temp_dir().join(format!("hftlive-heartbeat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("beat");
        let mut beat = Heartbeat::new(Some(path.clone()));
        beat.beat();
        let first = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("written");
        std::fs::remove_file(&path).expect("removed");
        beat.beat(); // within the second: not rewritten
        assert!(!path.exists());
        assert!(first.elapsed().expect("clock") < Duration::from_secs(5));
        Heartbeat::new(None).beat();
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

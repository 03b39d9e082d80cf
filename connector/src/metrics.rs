//! The connector's own hops as Prometheus histograms, for the control API's `GET /metrics`:
//! exchange → connector (Bybit's millisecond stamps) and connector receive → handed to iceoryx2
//! (this host's clock, nanoseconds), per live market event sent to every bot.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
};

/// Upper bounds in nanoseconds: the service's HOP_BUCKETS (service/metrics.py), so the two read alike.
pub const BOUNDS_NS: [u64; 21] = [
    25_000,
    50_000,
    100_000,
    150_000,
    200_000,
    250_000,
    300_000,
    400_000,
    500_000,
    750_000,
    1_000_000,
    1_500_000,
    2_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// Lock-free: the publishing task observes, the control API renders.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One per bound, then the overflow (+Inf); not cumulative.
    counts: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// A negative span (another host's clock ahead of ours) counts as zero.
    pub fn observe_ns(&self, ns: i64) {
        let ns = u64::try_from(ns).unwrap_or(0);
        let slot = BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut total = 0;
        for (i, count) in self.counts.iter().enumerate() {
            total += count.load(Ordering::Relaxed);
            let le = BOUNDS_NS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |&ns| seconds(ns));
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {total}");
        }
        let sum = seconds(self.sum_ns.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
}

fn seconds(ns: u64) -> String {
    format!("{}", ns as f64 / 1e9)
}

/// Which live market events a span belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Trade,
    Depth,
}

/// The connector's two hops, per kind of event.
#[derive(Debug, Default)]
pub struct Hops {
    exchange: [Histogram; 2],
    publish: [Histogram; 2],
}

impl Hops {
    /// One event handed to iceoryx2 at `now_ns`, received at `local_ts`, stamped `exch_ts` by the exchange.
    pub fn observe(&self, kind: Kind, exch_ts: i64, local_ts: i64, now_ns: i64) {
        let i = kind as usize;
        self.exchange[i].observe_ns(local_ts.saturating_sub(exch_ts));
        self.publish[i].observe_ns(now_ns.saturating_sub(local_ts));
    }

    pub fn render(&self, out: &mut String) {
        const NAME: &str = "hftlive_connector_hop_seconds";
        let _ = writeln!(
            out,
            "# HELP {NAME} Per live market event sent to every bot: exchange_to_connector = receive time minus \
             the exchange's stamp (milliseconds from Bybit); receive_to_publish = receive time to the event \
             handed to iceoryx2 (this host's clock)."
        );
        let _ = writeln!(out, "# TYPE {NAME} histogram");
        for (kind, label) in [(Kind::Trade, "trade"), (Kind::Depth, "depth")] {
            let i = kind as usize;
            let hop = |h: &str| format!("hop=\"{h}\",kind=\"{label}\"");
            self.exchange[i].render(out, NAME, &hop("exchange_to_connector"));
            self.publish[i].render(out, NAME, &hop("receive_to_publish"));
        }
    }
}

/// Prometheus text for a counter.
pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Histogram {
        fn count(&self) -> u64 {
            self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
        }
    }

    fn line<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in\n{text}"))
    }

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::default();
        for ns in [0, 25_000, 25_001, 900_000, 2_000_000_000, -5] {
            h.observe_ns(ns);
        }
        let mut text = String::new();
        h.render(&mut text, "x", "a=\"b\"");
        // 0, 25 µs and the negative span are within 25 µs; 25.001 µs is not.
        assert!(
            line(&text, "x_bucket{a=\"b\",le=\"0.000025\"}").ends_with(" 3"),
            "{text}"
        );
        assert!(
            line(&text, "x_bucket{a=\"b\",le=\"0.00005\"}").ends_with(" 4"),
            "{text}"
        );
        assert!(
            line(&text, "x_bucket{a=\"b\",le=\"0.001\"}").ends_with(" 5"),
            "{text}"
        );
        assert!(
            line(&text, "x_bucket{a=\"b\",le=\"1\"}").ends_with(" 5"),
            "{text}"
        );
        assert!(
            line(&text, "x_bucket{a=\"b\",le=\"+Inf\"}").ends_with(" 6"),
            "{text}"
        );
        assert_eq!(line(&text, "x_count{a=\"b\"}"), "x_count{a=\"b\"} 6");
        assert_eq!(line(&text, "x_sum{a=\"b\"}"), "x_sum{a=\"b\"} 2.000950001");
        assert_eq!(h.count(), 6);
    }

    #[test]
    fn hops_split_at_the_receive_time_per_kind() {
        let hops = Hops::default();
        // Stamped at 1 ms, received at 3 ms, published 40 µs later.
        hops.observe(Kind::Trade, 1_000_000, 3_000_000, 3_040_000);
        let mut text = String::new();
        hops.render(&mut text);
        let t = "hftlive_connector_hop_seconds";
        let ex = "hop=\"exchange_to_connector\",kind=\"trade\"";
        let pb = "hop=\"receive_to_publish\",kind=\"trade\"";
        assert!(line(&text, &format!("{t}_bucket{{{ex},le=\"0.0015\"}}")).ends_with(" 0"));
        assert!(line(&text, &format!("{t}_bucket{{{ex},le=\"0.002\"}}")).ends_with(" 1"));
        assert!(line(&text, &format!("{t}_bucket{{{pb},le=\"0.000025\"}}")).ends_with(" 0"));
        assert!(line(&text, &format!("{t}_bucket{{{pb},le=\"0.00005\"}}")).ends_with(" 1"));
        let depth = "hop=\"receive_to_publish\",kind=\"depth\"";
        assert_eq!(
            line(&text, &format!("{t}_count{{{depth}}}")),
            format!("{t}_count{{{depth}}} 0")
        );
        assert_eq!(hops.publish[Kind::Trade as usize].count(), 1);
    }
}

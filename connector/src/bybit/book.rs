//! One symbol's order book as Bybit sends it, and the level changes bots must apply to stay
//! equal to it (bots never clear their book, so a reset is expressed as qty=0 deletions).

use std::{cmp::Ordering, collections::BTreeMap};

use crate::bybit::msg::{BookKind, Level, OrderbookMsg};

/// Which side of the book a level is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Bid,
    Ask,
}

/// A level as a bot must set it: qty 0 deletes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LevelChange {
    pub side: Side,
    pub px: f64,
    pub qty: f64,
}

/// Price key ordered by value (prices parsed from the same decimal compare equal).
#[derive(Clone, Copy, Debug)]
struct Px(f64);

impl PartialEq for Px {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Px {}
impl PartialOrd for Px {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Px {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Why the book was replaced wholesale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetCause {
    /// A `type: snapshot` frame.
    Snapshot,
    /// A delta with `u == 1`: Bybit restarted the stream, the delta is a full book.
    StreamRestart,
}

/// What applying one orderbook frame did.
#[derive(Debug, PartialEq)]
pub enum BookUpdate {
    /// A delta was applied; these are the levels it touched.
    Delta(Vec<LevelChange>),
    /// The book was replaced: deletions of vanished levels first, then every level it now has.
    Reset {
        cause: ResetCause,
        changes: Vec<LevelChange>,
    },
    /// `u` did not follow on: the book is stale until the next snapshot.
    Gap { expected: u64, got: u64 },
    /// A delta while waiting for a snapshot; dropped.
    Ignored,
}

#[derive(Debug, Default)]
pub struct Book {
    bids: BTreeMap<Px, f64>,
    asks: BTreeMap<Px, f64>,
    last_u: Option<u64>,
    synced: bool,
}

impl Book {
    /// True once a snapshot has arrived and no gap has been seen since.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Marks the book stale (connection lost, resubscribing). The levels stay, so the next
    /// snapshot can delete from bots whatever is no longer there.
    pub fn invalidate(&mut self) {
        self.synced = false;
        self.last_u = None;
    }

    pub fn apply(&mut self, msg: &OrderbookMsg) -> BookUpdate {
        let cause = match (msg.kind, self.last_u) {
            (BookKind::Snapshot, _) => ResetCause::Snapshot,
            (BookKind::Delta, _) if msg.u == 1 => ResetCause::StreamRestart,
            (BookKind::Delta, _) if !self.synced => return BookUpdate::Ignored,
            (BookKind::Delta, Some(last)) if msg.u != last.wrapping_add(1) => {
                self.invalidate();
                let (expected, got) = (last.wrapping_add(1), msg.u);
                return BookUpdate::Gap { expected, got };
            }
            (BookKind::Delta, _) => {
                self.last_u = Some(msg.u);
                return BookUpdate::Delta(self.apply_delta(msg));
            }
        };
        let changes = self.reset(msg);
        BookUpdate::Reset { cause, changes }
    }

    fn apply_delta(&mut self, msg: &OrderbookMsg) -> Vec<LevelChange> {
        let mut changes = Vec::with_capacity(msg.bids.len() + msg.asks.len());
        for (side, levels) in [(Side::Bid, &msg.bids), (Side::Ask, &msg.asks)] {
            let map = match side {
                Side::Bid => &mut self.bids,
                Side::Ask => &mut self.asks,
            };
            for level in levels {
                if level.qty == 0.0 {
                    map.remove(&Px(level.px));
                } else {
                    map.insert(Px(level.px), level.qty);
                }
                changes.push(LevelChange {
                    side,
                    px: level.px,
                    qty: level.qty,
                });
            }
        }
        changes
    }

    fn reset(&mut self, msg: &OrderbookMsg) -> Vec<LevelChange> {
        let bids = to_map(&msg.bids);
        let asks = to_map(&msg.asks);
        let mut changes = Vec::new();
        for (side, old, new) in [
            (Side::Bid, &self.bids, &bids),
            (Side::Ask, &self.asks, &asks),
        ] {
            changes.extend(
                old.keys()
                    .filter(|px| !new.contains_key(px))
                    .map(|px| LevelChange {
                        side,
                        px: px.0,
                        qty: 0.0,
                    }),
            );
        }
        self.bids = bids;
        self.asks = asks;
        self.last_u = Some(msg.u);
        self.synced = true;
        changes.extend(self.levels());
        changes
    }

    /// Every level now in the book, bids best-first then asks best-first.
    pub fn levels(&self) -> impl Iterator<Item = LevelChange> + '_ {
        let bids = self.bids.iter().rev().map(|(px, qty)| LevelChange {
            side: Side::Bid,
            px: px.0,
            qty: *qty,
        });
        let asks = self.asks.iter().map(|(px, qty)| LevelChange {
            side: Side::Ask,
            px: px.0,
            qty: *qty,
        });
        bids.chain(asks)
    }

    pub fn best_bid(&self) -> Option<f64> {
        self.bids.keys().next_back().map(|px| px.0)
    }

    pub fn best_ask(&self) -> Option<f64> {
        self.asks.keys().next().map(|px| px.0)
    }

    pub fn len(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }
}

/// Snapshots should not carry zero sizes; if one does, it is simply not a level.
fn to_map(levels: &[Level]) -> BTreeMap<Px, f64> {
    levels
        .iter()
        .filter(|l| l.qty > 0.0)
        .map(|l| (Px(l.px), l.qty))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: BookKind, u: u64, bids: &[(f64, f64)], asks: &[(f64, f64)]) -> OrderbookMsg {
        let lv = |v: &[(f64, f64)]| v.iter().map(|&(px, qty)| Level { px, qty }).collect();
        OrderbookMsg {
            symbol: "BTCUSDT".into(),
            depth: 50,
            kind,
            bids: lv(bids),
            asks: lv(asks),
            u,
            seq: None,
            exch_ts_ms: Some(1),
            cts_missing: false,
        }
    }

    fn snap(u: u64, bids: &[(f64, f64)], asks: &[(f64, f64)]) -> OrderbookMsg {
        msg(BookKind::Snapshot, u, bids, asks)
    }

    fn delta(u: u64, bids: &[(f64, f64)], asks: &[(f64, f64)]) -> OrderbookMsg {
        msg(BookKind::Delta, u, bids, asks)
    }

    /// A book that has applied one snapshot.
    fn synced(u: u64, bids: &[(f64, f64)], asks: &[(f64, f64)]) -> Book {
        let mut book = Book::default();
        book.apply(&snap(u, bids, asks));
        book
    }

    fn ch(side: Side, px: f64, qty: f64) -> LevelChange {
        LevelChange { side, px, qty }
    }

    fn bid(px: f64, qty: f64) -> LevelChange {
        ch(Side::Bid, px, qty)
    }

    fn ask(px: f64, qty: f64) -> LevelChange {
        ch(Side::Ask, px, qty)
    }

    fn gap(expected: u64, got: u64) -> BookUpdate {
        BookUpdate::Gap { expected, got }
    }

    fn reset(cause: ResetCause, changes: Vec<LevelChange>) -> BookUpdate {
        BookUpdate::Reset { cause, changes }
    }

    #[test]
    fn first_snapshot_sets_every_level() {
        let mut book = Book::default();
        assert!(!book.is_synced());
        let up = book.apply(&snap(10, &[(99.0, 1.0), (100.0, 2.0)], &[(101.0, 3.0)]));
        let levels = vec![bid(100.0, 2.0), bid(99.0, 1.0), ask(101.0, 3.0)];
        assert_eq!(up, reset(ResetCause::Snapshot, levels));
        assert!(book.is_synced());
        assert_eq!(book.best_bid(), Some(100.0));
        assert_eq!(book.best_ask(), Some(101.0));
    }

    #[test]
    fn snapshot_reset_deletes_vanished_levels_first() {
        let mut book = synced(
            10,
            &[(99.0, 1.0), (100.0, 2.0)],
            &[(101.0, 3.0), (102.0, 1.0)],
        );
        let up = book.apply(&snap(500, &[(100.0, 5.0)], &[(102.0, 1.0), (103.0, 4.0)]));
        let gone = vec![bid(99.0, 0.0), ask(101.0, 0.0)];
        let now = vec![bid(100.0, 5.0), ask(102.0, 1.0), ask(103.0, 4.0)];
        assert_eq!(up, reset(ResetCause::Snapshot, [gone, now].concat()));
        assert_eq!(book.len(), (1, 2));
    }

    #[test]
    fn delta_updates_inserts_and_deletes() {
        let mut book = synced(10, &[(99.0, 1.0), (100.0, 2.0)], &[(101.0, 3.0)]);
        let up = book.apply(&delta(11, &[(100.0, 0.0), (98.0, 7.0)], &[(101.0, 0.5)]));
        let touched = vec![bid(100.0, 0.0), bid(98.0, 7.0), ask(101.0, 0.5)];
        assert_eq!(up, BookUpdate::Delta(touched));
        assert_eq!(book.best_bid(), Some(99.0));
        let levels = vec![bid(99.0, 1.0), bid(98.0, 7.0), ask(101.0, 0.5)];
        assert_eq!(book.levels().collect::<Vec<_>>(), levels);
    }

    #[test]
    fn gap_in_u_invalidates_until_next_snapshot() {
        let mut book = synced(10, &[(100.0, 2.0)], &[(101.0, 3.0)]);
        assert_eq!(book.apply(&delta(11, &[], &[])), BookUpdate::Delta(vec![]));
        assert_eq!(book.apply(&delta(13, &[(100.0, 9.0)], &[])), gap(12, 13));
        assert!(!book.is_synced());
        // Deltas after the gap are dropped, not applied.
        let up = book.apply(&delta(14, &[(100.0, 9.0)], &[]));
        assert_eq!(up, BookUpdate::Ignored);
        assert_eq!(book.levels().next(), Some(bid(100.0, 2.0)));
        // The fresh snapshot deletes what is gone and restores sync.
        let up = book.apply(&snap(40, &[(100.5, 1.0)], &[(101.0, 3.0)]));
        let BookUpdate::Reset { changes, .. } = up else {
            panic!("no reset")
        };
        assert_eq!(changes[0], bid(100.0, 0.0));
        assert!(book.is_synced());
        assert_eq!(book.apply(&delta(41, &[], &[])), BookUpdate::Delta(vec![]));
    }

    #[test]
    fn duplicate_or_old_u_is_a_gap() {
        let mut book = synced(10, &[(100.0, 2.0)], &[]);
        assert_eq!(book.apply(&delta(10, &[], &[])), gap(11, 10));
    }

    #[test]
    fn delta_with_u_1_is_a_stream_restart_overwrite() {
        let mut book = synced(700, &[(100.0, 2.0), (99.0, 1.0)], &[(101.0, 3.0)]);
        let up = book.apply(&delta(1, &[(99.5, 4.0)], &[(101.0, 1.0)]));
        // 101.0 is still there after the restart, so it is set, not deleted.
        let gone = vec![bid(99.0, 0.0), bid(100.0, 0.0)];
        let now = vec![bid(99.5, 4.0), ask(101.0, 1.0)];
        assert_eq!(up, reset(ResetCause::StreamRestart, [gone, now].concat()));
        // The restarted stream continues from u=1.
        assert_eq!(book.apply(&delta(2, &[], &[])), BookUpdate::Delta(vec![]));
    }

    #[test]
    fn delta_before_any_snapshot_is_ignored() {
        let mut book = Book::default();
        assert_eq!(
            book.apply(&delta(5, &[(1.0, 1.0)], &[])),
            BookUpdate::Ignored
        );
        assert_eq!(book.len(), (0, 0));
    }

    #[test]
    fn invalidate_keeps_levels_for_the_next_reset() {
        let mut book = synced(3, &[(100.0, 2.0)], &[]);
        book.invalidate();
        assert!(!book.is_synced());
        let BookUpdate::Reset { changes, .. } = book.apply(&snap(1, &[], &[(5.0, 1.0)])) else {
            panic!("no reset")
        };
        assert_eq!(changes, vec![bid(100.0, 0.0), ask(5.0, 1.0)]);
    }
}

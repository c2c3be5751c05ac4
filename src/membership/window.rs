//! The sliding replay window over one peer incarnation's sequence numbers
//! (as IPsec's, RFC 4303 3.4.3): the highest sequence seen plus a bitmap of
//! the [`WINDOW`] sequences below it. A sequence is new if it is above the
//! highest, or inside the window and not marked; anything below the window
//! is refused because it can no longer be told apart from a replay.

/// How many sequences below the highest are remembered. Both links share
/// one sequence space, so this bounds how far one link may run behind the
/// other: 128 packets is 6.4 s at the default rate of two links x 10/s.
pub const WINDOW: u64 = 128;

/// What the window says about a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen before. `newest`: above everything seen so far.
    New {
        /// Higher than every sequence seen so far.
        newest: bool,
    },
    /// Seen before.
    Replay,
    /// Below the window: cannot tell, so refused.
    TooOld,
}

/// The replay window of one incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest sequence seen; 0 before the first.
    highest: u64,
    /// Bit i set: sequence `highest - i` seen.
    seen: u128,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> ReplayWindow {
        ReplayWindow {
            highest: 0,
            seen: 0,
        }
    }

    /// Highest sequence accepted so far (0: none).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Judges `seq` without recording it.
    pub fn check(&self, seq: u64) -> Verdict {
        if seq > self.highest {
            return Verdict::New { newest: true };
        }
        let back = self.highest - seq;
        if back >= WINDOW {
            Verdict::TooOld
        } else if self.seen & (1u128 << back) != 0 {
            Verdict::Replay
        } else {
            Verdict::New { newest: false }
        }
    }

    /// Judges `seq` and records it when new.
    pub fn accept(&mut self, seq: u64) -> Verdict {
        let v = self.check(seq);
        match v {
            Verdict::New { newest: true } => {
                let shift = seq - self.highest;
                self.seen = if shift >= WINDOW {
                    0
                } else {
                    self.seen << shift
                };
                self.seen |= 1;
                self.highest = seq;
            }
            Verdict::New { newest: false } => self.seen |= 1u128 << (self.highest - seq),
            Verdict::Replay | Verdict::TooOld => {}
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn basics() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(5), Verdict::New { newest: true });
        assert_eq!(w.accept(5), Verdict::Replay);
        assert_eq!(w.accept(3), Verdict::New { newest: false });
        assert_eq!(w.accept(3), Verdict::Replay);
        assert_eq!(w.accept(4), Verdict::New { newest: false });
        assert_eq!(w.accept(200), Verdict::New { newest: true });
        assert_eq!(w.accept(5), Verdict::TooOld);
        assert_eq!(w.accept(200 - 127), Verdict::New { newest: false });
        assert_eq!(w.accept(200 - 128), Verdict::TooOld);
        assert_eq!(w.accept(u64::MAX), Verdict::New { newest: true });
        assert_eq!(w.accept(u64::MAX), Verdict::Replay);
        assert_eq!(w.highest(), u64::MAX);
    }

    /// The window against a model that remembers every sequence: it accepts
    /// exactly the unseen sequences within WINDOW of the highest, and never
    /// accepts one twice.
    fn run_model(seqs: &[u64]) -> Result<(), TestCaseError> {
        let mut w = ReplayWindow::new();
        let mut seen = BTreeSet::new();
        let mut highest = 0u64;
        for &s in seqs {
            let expect = if s > highest {
                Verdict::New { newest: true }
            } else if highest - s >= WINDOW {
                Verdict::TooOld
            } else if seen.contains(&s) {
                Verdict::Replay
            } else {
                Verdict::New { newest: false }
            };
            let got = w.accept(s);
            prop_assert_eq!(got, expect, "seq {} after {:?}", s, seen);
            if let Verdict::New { .. } = got {
                prop_assert!(seen.insert(s), "accepted {} twice", s);
                highest = highest.max(s);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn matches_model_small_steps(seqs in proptest::collection::vec(1u64..400, 0..300)) {
            run_model(&seqs)?;
        }

        /// Reordered, duplicated streams: mostly increasing with jumps back.
        #[test]
        fn matches_model_reordered(steps in proptest::collection::vec((-140i64..20, any::<bool>()), 0..400)) {
            let mut cur: i64 = 1;
            let mut seqs = Vec::new();
            for (d, dup) in steps {
                cur = (cur + d).max(1);
                seqs.push(u64::try_from(cur).unwrap());
                if dup { seqs.push(u64::try_from(cur).unwrap()); }
            }
            run_model(&seqs)?;
        }

        #[test]
        fn matches_model_huge(seqs in proptest::collection::vec(1u64.., 0..50)) {
            run_model(&seqs)?;
        }
    }
}

//! The run's seed: everything random in a run is drawn from it, so `rig run --seed N` (and
//! `rig reproduce`) replays the same choices. Today that is `parallel`'s `stagger` delays.
//!
//! Each repetition draws from its own stream of a ChaCha8 generator keyed by the seed, so
//! repetition 3 of a replay sees what repetition 3 of the original saw, whatever came before.

pub use crate::steps::stagger_delays;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A seed for a run that was not given one.
pub fn fresh_seed() -> u64 {
    // Kept below 2^53 so every JSON reader (and a browser) reads it back exactly.
    rand::random::<u64>() >> 11
}

/// The generator repetition `index` (1-based) of a run with `seed` draws from.
pub fn repetition_rng(seed: u64, index: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(index));
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::Stagger;
    use std::time::Duration;

    fn delays(seed: u64, index: u32) -> Vec<Duration> {
        let st = Stagger {
            min: Duration::ZERO,
            max: Duration::from_millis(50),
        };
        let mut rng = repetition_rng(seed, index);
        // Two `parallel` steps in a row draw from the same stream.
        let mut v = stagger_delays(&mut rng, 4, &st);
        v.extend(stagger_delays(&mut rng, 3, &st));
        v
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        assert_eq!(delays(42, 1), delays(42, 1));
        assert_eq!(delays(7, 3), delays(7, 3));
        let d = delays(42, 1);
        assert!(d.iter().all(|d| *d <= Duration::from_millis(50)), "{d:?}");
        // Not all the same value: the delays really spread over the range.
        assert!(d.iter().any(|x| *x != d[0]), "{d:?}");
    }

    #[test]
    fn different_seeds_and_repetitions_differ() {
        assert_ne!(delays(42, 1), delays(43, 1));
        assert_ne!(delays(42, 1), delays(42, 2));
        let seeds: std::collections::BTreeSet<Vec<Duration>> =
            (0..20).map(|s| delays(s, 1)).collect();
        assert_eq!(seeds.len(), 20);
    }

    #[test]
    fn a_fixed_range_gives_that_delay() {
        let st = Stagger {
            min: Duration::from_millis(20),
            max: Duration::from_millis(20),
        };
        let d = stagger_delays(&mut repetition_rng(1, 1), 3, &st);
        assert_eq!(d, vec![Duration::from_millis(20); 3]);
    }

    #[test]
    fn fresh_seeds_fit_a_json_number() {
        for _ in 0..100 {
            assert!(fresh_seed() < 1 << 53);
        }
    }
}

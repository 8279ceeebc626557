//! Picks the next compaction job from file sizes and key ranges alone (no I/O).
//!
//! Leveled policy: L0 is compacted into L1 when it holds `l0_trigger` files or more; level
//! n >= 1 when its bytes exceed its target (`l1_bytes_max * ratio^(n-1)`). The level with the
//! highest score (>= 1) wins. An L0 job takes every L0 file (so L0 files left behind are
//! always newer than what went down); a level-n job takes one file, chosen round-robin after
//! the level's compaction pointer, plus every overlapping file of level n+1. A job whose single
//! input overlaps nothing below is a trivial move (re-filed, not rewritten).

use crate::manifest::LEVELS;

/// What the picker needs to know of a file.
#[derive(Clone, Copy, Debug)]
pub struct PickFile<'a> {
    pub number: u64,
    pub size: u64,
    pub smallest: &'a [u8],
    pub largest: &'a [u8],
}

/// Shape of the tree.
#[derive(Clone, Copy, Debug)]
pub struct PickerConfig {
    pub l0_trigger: usize,
    pub l1_bytes_max: u64,
    pub ratio: u64,
}

/// One compaction job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub level: usize,
    pub inputs: Vec<u64>,
    pub next_inputs: Vec<u64>,
    pub output_level: usize,
    /// No level below the output holds keys in the job's range: tombstones may be dropped.
    pub bottommost: bool,
    pub trivial_move: bool,
    /// Largest user key of the inputs (the new compaction pointer of `level`).
    pub largest: Vec<u8>,
}

/// Target bytes of `level` (L0 is counted in files, not bytes).
pub fn level_target(level: usize, cfg: &PickerConfig) -> u64 {
    let mut target = cfg.l1_bytes_max;
    for _ in 1..level {
        target = target.saturating_mul(cfg.ratio);
    }
    target
}

/// Compaction score of each level (>= 1.0 means it needs compacting). The last level never
/// compacts further.
pub fn scores(levels: &[Vec<PickFile<'_>>], cfg: &PickerConfig) -> Vec<f64> {
    levels
        .iter()
        .enumerate()
        .map(|(level, files)| {
            if level + 1 >= LEVELS {
                0.0
            } else if level == 0 {
                files.len() as f64 / cfg.l0_trigger.max(1) as f64
            } else {
                let bytes: u64 = files.iter().map(|f| f.size).sum();
                bytes as f64 / level_target(level, cfg).max(1) as f64
            }
        })
        .collect()
}

/// Bytes that compaction still has to rewrite to bring every level within its target.
pub fn debt_bytes(levels: &[Vec<PickFile<'_>>], cfg: &PickerConfig) -> u64 {
    let mut debt = 0;
    for (level, files) in levels.iter().enumerate().take(LEVELS - 1) {
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        if level == 0 {
            if files.len() >= cfg.l0_trigger {
                debt += bytes;
            }
        } else {
            debt += bytes.saturating_sub(level_target(level, cfg));
        }
    }
    debt
}

fn overlapping(files: &[PickFile<'_>], smallest: &[u8], largest: &[u8]) -> Vec<u64> {
    files
        .iter()
        .filter(|f| f.largest >= smallest && f.smallest <= largest)
        .map(|f| f.number)
        .collect()
}

fn range_of(files: &[PickFile<'_>]) -> Option<(Vec<u8>, Vec<u8>)> {
    let smallest = files.iter().map(|f| f.smallest).min()?;
    let largest = files.iter().map(|f| f.largest).max()?;
    Some((smallest.to_vec(), largest.to_vec()))
}

/// Builds the job that compacts `chosen` files of `level` into `level + 1`.
fn plan_for(levels: &[Vec<PickFile<'_>>], level: usize, chosen: Vec<PickFile<'_>>) -> Option<Plan> {
    let (smallest, largest) = range_of(&chosen)?;
    let output_level = level + 1;
    let next_inputs = overlapping(&levels[output_level], &smallest, &largest);
    // The output covers the next-level inputs too, which may reach past the chosen range:
    // tombstones may only be dropped if nothing below overlaps any of it.
    let mut all: Vec<PickFile<'_>> = chosen.clone();
    all.extend(
        levels[output_level]
            .iter()
            .filter(|f| next_inputs.contains(&f.number))
            .copied(),
    );
    let (out_smallest, out_largest) = range_of(&all)?;
    let bottommost = levels
        .iter()
        .skip(output_level + 1)
        .all(|files| overlapping(files, &out_smallest, &out_largest).is_empty());
    let trivial_move = chosen.len() == 1 && next_inputs.is_empty();
    Some(Plan {
        level,
        inputs: chosen.iter().map(|f| f.number).collect(),
        next_inputs,
        output_level,
        bottommost,
        trivial_move,
        largest,
    })
}

/// The most urgent job, if any level needs one. `pointers[level]` is the largest user key
/// compacted last time at that level (empty: start from the beginning).
pub fn pick(
    levels: &[Vec<PickFile<'_>>],
    cfg: &PickerConfig,
    pointers: &[Vec<u8>],
) -> Option<Plan> {
    let scores = scores(levels, cfg);
    let (level, score) = scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    if *score < 1.0 {
        return None;
    }
    if level == 0 {
        return plan_for(levels, 0, levels[0].clone());
    }
    let files = &levels[level];
    let pointer = pointers.get(level).map(Vec::as_slice).unwrap_or(&[]);
    let chosen = files
        .iter()
        .find(|f| pointer.is_empty() || f.smallest > pointer)
        .or_else(|| files.first())?;
    plan_for(levels, level, vec![*chosen])
}

/// A manual job for `level` covering user keys in [start, end] (None = unbounded).
pub fn plan_range(
    levels: &[Vec<PickFile<'_>>],
    level: usize,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
) -> Option<Plan> {
    if level + 1 >= LEVELS {
        return None;
    }
    let chosen: Vec<PickFile<'_>> = if level == 0 {
        // Every L0 file, or older L0 files could end up shadowing newer data moved down.
        levels[0].clone()
    } else {
        levels[level]
            .iter()
            .filter(|f| start.is_none_or(|s| f.largest >= s) && end.is_none_or(|e| f.smallest <= e))
            .copied()
            .collect()
    };
    let mut plan = plan_for(levels, level, chosen)?;
    plan.trivial_move = plan.trivial_move && level > 0;
    Some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(number: u64, size: u64, s: &'static [u8], l: &'static [u8]) -> PickFile<'static> {
        PickFile {
            number,
            size,
            smallest: s,
            largest: l,
        }
    }

    fn cfg() -> PickerConfig {
        PickerConfig {
            l0_trigger: 4,
            l1_bytes_max: 1000,
            ratio: 10,
        }
    }

    fn empty() -> Vec<Vec<PickFile<'static>>> {
        (0..LEVELS).map(|_| Vec::new()).collect()
    }

    #[test]
    fn l0_trigger_takes_every_l0_file_and_overlapping_l1() {
        let mut levels = empty();
        levels[0] = vec![
            f(9, 10, b"a", b"c"),
            f(8, 10, b"b", b"d"),
            f(7, 10, b"x", b"y"),
        ];
        levels[1] = vec![
            f(1, 10, b"a", b"b"),
            f(2, 10, b"e", b"f"),
            f(3, 10, b"z", b"zz"),
        ];
        assert_eq!(pick(&levels, &cfg(), &[]), None);
        levels[0].push(f(6, 10, b"c", b"c"));
        let plan = pick(&levels, &cfg(), &[]).unwrap();
        assert_eq!(plan.level, 0);
        assert_eq!(plan.inputs, vec![9, 8, 7, 6]);
        assert_eq!(plan.next_inputs, vec![1, 2]);
        assert!(plan.bottommost && !plan.trivial_move);
    }

    #[test]
    fn oversized_level_picks_round_robin_and_moves_trivially() {
        let mut levels = empty();
        levels[1] = vec![f(1, 600, b"a", b"c"), f(2, 600, b"d", b"f")];
        levels[2] = vec![f(3, 10, b"e", b"e")];
        levels[3] = vec![f(4, 10, b"a", b"a")];
        let plan = pick(&levels, &cfg(), &[]).unwrap();
        assert_eq!((plan.level, plan.inputs.clone()), (1, vec![1]));
        assert!(plan.trivial_move && !plan.bottommost);
        let pointers = vec![vec![], plan.largest.clone()];
        let plan = pick(&levels, &cfg(), &pointers).unwrap();
        assert_eq!((plan.inputs, plan.next_inputs), (vec![2], vec![3]));
        assert!(plan.bottommost);
    }

    #[test]
    fn bottommost_considers_the_next_level_inputs_range() {
        // Regression: L1 [c..d] overlaps L2 [a..z], which reaches x, where L3 holds an older
        // version; the job is not bottommost, or a tombstone for x in L2 would be dropped.
        let mut levels = empty();
        levels[1] = vec![f(1, 2000, b"c", b"d")];
        levels[2] = vec![f(2, 10, b"a", b"z")];
        levels[3] = vec![f(3, 10, b"x", b"x")];
        let plan = pick(&levels, &cfg(), &[]).unwrap();
        assert_eq!(
            (plan.inputs.clone(), plan.next_inputs.clone()),
            (vec![1], vec![2])
        );
        assert!(!plan.bottommost);
    }

    #[test]
    fn debt_counts_bytes_over_target() {
        let mut levels = empty();
        levels[1] = vec![f(1, 1500, b"a", b"c")];
        assert_eq!(debt_bytes(&levels, &cfg()), 500);
        assert_eq!(level_target(3, &cfg()), 100_000);
    }

    #[test]
    fn manual_range_plans_only_overlapping_files() {
        let mut levels = empty();
        levels[1] = vec![f(1, 10, b"a", b"c"), f(2, 10, b"d", b"f")];
        let plan = plan_range(&levels, 1, Some(b"e"), None).unwrap();
        assert_eq!(plan.inputs, vec![2]);
        assert!(plan_range(&levels, 0, None, None).is_none());
    }
}

//! Parser throughput: the captured lines repeated to at least 1 M lines, on
//! one core. Prints lines/s and PASS/MISS against 1 M lines/s (no assert).
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Instant;

const CAPTURE: &str = include_str!("../tests/fixtures/drbd-events-captured.txt");
const TARGET: f64 = 1_000_000.0;

fn main() {
    let lines: Vec<&str> = CAPTURE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let reps = 1_000_000usize.div_ceil(lines.len());
    let total = reps * lines.len();
    // warm-up
    for l in &lines {
        black_box(drbd::parse_line(black_box(l)).ok());
    }
    let mut model = drbd::Cluster::new();
    let t = Instant::now();
    let mut ok = 0usize;
    for _ in 0..reps {
        for l in &lines {
            if drbd::parse_line(black_box(l)).is_ok() {
                ok += 1;
            }
        }
    }
    let parse_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..reps {
        for l in &lines {
            if let Ok(ev) = drbd::parse_line(black_box(l)) {
                black_box(model.apply(&ev).ok());
            }
        }
    }
    let both_s = t.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let (p, b) = (total as f64 / parse_s, total as f64 / both_s);
    println!("drbd events2 parse: {total} lines ({ok} ok) in {parse_s:.3} s = {p:.0} lines/s");
    println!("drbd events2 parse+apply: {total} lines in {both_s:.3} s = {b:.0} lines/s");
    let verdict = if p >= TARGET { "PASS" } else { "MISS" };
    println!("{verdict}: parse target >= {TARGET:.0} lines/s on one core");
}

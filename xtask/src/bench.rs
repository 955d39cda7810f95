//! `cargo xtask bench`: every criterion figure beside its floor as a ratio with its target,
//! allocation counts, and instruction counts under callgrind (stable on a noisy machine).

use std::path::Path;
use std::process::Command;

use crate::{cargo, run, workspace_root};

/// What a ratio must satisfy.
#[derive(Clone, Copy)]
enum Target {
    /// Our time over the floor's time at most this (the floor is the least work possible).
    AtMost(f64),
    /// The other's time over ours at least this (we must be this much faster).
    FasterBy(f64),
    /// Reported, no target.
    None,
}

/// One question: a criterion group, our function, the function we compare with, the target.
struct Question {
    group: &'static str,
    ours: &'static str,
    other: &'static str,
    target: Target,
}

const fn question(group: &'static str, target: Target) -> Question {
    Question { group, ours: "msn-http", other: "floor", target }
}

const QUESTIONS: &[Question] = &[
    question("encode/open", Target::AtMost(2.0)),
    question("encode/send", Target::AtMost(2.0)),
    question("encode/poll", Target::AtMost(2.0)),
    question("decode/0B", Target::AtMost(1.2)),
    question("decode/300B", Target::AtMost(1.2)),
    question("decode/4KiB", Target::AtMost(1.2)),
    question("decode/4KiB-reads-of-1", Target::AtMost(1.2)),
    question("decode/4KiB-reads-of-64", Target::AtMost(1.2)),
    question("decode/4KiB-reads-of-1500", Target::AtMost(1.2)),
    question("session-cycle/300B", Target::None),
    Question {
        group: "loopback/round-trip",
        ours: "msn-http-tokio",
        other: "hyper",
        target: Target::FasterBy(1.3),
    },
    Question {
        group: "loopback/round-trip",
        ours: "msn-http-tokio",
        other: "raw-tcp",
        target: Target::AtMost(1.15),
    },
    Question {
        group: "loopback/round-trip",
        ours: "msn-http-async-std",
        other: "raw-tcp",
        target: Target::None,
    },
];

/// Instruction-count cases of the `icount` runner: ours, and its floor where one exists.
const ICOUNT_CASES: &[(&str, bool)] = &[
    ("encode/open", true),
    ("encode/send", true),
    ("encode/poll", true),
    ("decode/0B", true),
    ("decode/300B", true),
    ("decode/4KiB", true),
    ("decode/4KiB-reads-of-64", false),
    ("decode/4KiB-reads-of-1500", false),
    ("session-cycle/300B", true),
];

pub(crate) fn run_bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let benches_dir = workspace_root().join("benches/benches");
    let mut names: Vec<String> = std::fs::read_dir(&benches_dir)
        .map_err(|e| format!("{}: {e}", benches_dir.display()))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .filter(|name| name != "allocations")
        .collect();
    names.sort();
    for name in &names {
        let mut command = cargo();
        if name == "loopback" && Command::new("taskset").arg("--version").output().is_ok() {
            // Client and server threads on one core: the figure is the work of a round trip,
            // not how long an idle (virtual) CPU takes to wake up, which varies tenfold.
            command = Command::new("taskset");
            command
                .args(["-c", "0"])
                .arg(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        }
        command.args(["bench", "-p", "msn-http-benches", "--bench", name, "--"]);
        if quick {
            command.arg("--quick");
        }
        run(&mut command)?;
    }
    println!("\n== allocations (counted)");
    run(cargo().args(["bench", "-q", "-p", "msn-http-benches", "--bench", "allocations"]))?;
    print_ratios();
    instruction_counts()
}

fn print_ratios() {
    let root = workspace_root().join("target/criterion");
    println!("\n== figures (criterion median time per iteration, one run)");
    println!(
        "{:<28} {:<20} {:>12} {:<14} {:>12} {:>7} {:>8}  verdict",
        "group", "figure", "time", "compared with", "time", "ratio", "target"
    );
    for q in QUESTIONS {
        let (Some(ours), Some(other)) =
            (estimate(&root, q.group, q.ours), estimate(&root, q.group, q.other))
        else {
            continue;
        };
        let (ratio, target, holds) = match q.target {
            Target::AtMost(max) => (ours / other, format!("<= {max}"), Some(ours / other <= max)),
            Target::FasterBy(min) => {
                (other / ours, format!(">= {min}x"), Some(other / ours >= min))
            }
            Target::None => (ours / other, "-".to_owned(), None),
        };
        let verdict = match holds {
            Some(true) => "holds",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "{:<28} {:<20} {:>12} {:<14} {:>12} {:>7.2} {:>8}  {verdict}",
            q.group,
            q.ours,
            human(ours),
            q.other,
            human(other),
            ratio,
            target
        );
    }
}

/// Criterion's median estimate, in nanoseconds, for `group/function`.
fn estimate(root: &Path, group: &str, function: &str) -> Option<f64> {
    let path = root.join(group.replace('/', "_")).join(function).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn human(ns: f64) -> String {
    match ns {
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} us", ns / 1e3),
        ns => format!("{ns:.1} ns"),
    }
}

fn instruction_counts() -> Result<(), String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("\n(valgrind not found: no instruction counts)");
        return Ok(());
    }
    run(cargo().args(["build", "--release", "-q", "-p", "msn-http-benches", "--bin", "icount"]))?;
    let icount = workspace_root().join("target/release/icount");
    println!(
        "\n== instructions per iteration (callgrind; 2000 minus 1000 iterations, setup excluded)"
    );
    println!("{:<28} {:>12} {:>12} {:>7}", "case", "msn-http", "floor", "ratio");
    for &(case, has_floor) in ICOUNT_CASES {
        let ours = per_iteration(&icount, case)?;
        if has_floor {
            let floor = per_iteration(&icount, &format!("{case}/floor"))?;
            println!("{case:<28} {ours:>12} {floor:>12} {:>7.2}", ours as f64 / floor as f64);
        } else {
            println!("{case:<28} {ours:>12} {:>12} {:>7}", "-", "-");
        }
    }
    Ok(())
}

/// Instructions of one iteration of `case`: two runs, the difference over the extra iterations.
fn per_iteration(icount: &Path, case: &str) -> Result<u64, String> {
    let total = |iterations: u64| -> Result<u64, String> {
        let output = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(icount)
            .args([case, &iterations.to_string()])
            .output()
            .map_err(|e| format!("valgrind: {e}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        stderr
            .lines()
            .find_map(|line| line.split("Collected : ").nth(1))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("no instruction count for {case}: {stderr}"))
    };
    let (low, high) = (total(1000)?, total(2000)?);
    Ok(high.saturating_sub(low) / 1000)
}

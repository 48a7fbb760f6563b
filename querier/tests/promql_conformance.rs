//! Prometheus's own PromQL engine tests (`../shared/promql-tests/`), run through Muninn's
//! engine. Every case of the core files must pass, none skipped (native histograms included);
//! the other files' counts are printed.

#![allow(clippy::unwrap_used)]

use muninn_querier::promqltest::{FileReport, run_file};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/promql-tests");

/// The core files named in `promql-tests/README.md`, and native_histograms.
const CORE: &[&str] = &[
    "aggregators",
    "at_modifier",
    "collision",
    "functions",
    "histograms",
    "literals",
    "limit",
    "name_label_dropping",
    "operators",
    "range_queries",
    "selectors",
    "staleness",
    "subquery",
    "trig_functions",
    // Native histograms: every case too (Prometheus 3.x semantics, trim operators included).
    "native_histograms",
];

fn run(name: &str) -> FileReport {
    let path = format!("{DIR}/{name}.test");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(run_file(&text))
}

#[test]
fn core_files_pass_every_case() {
    let mut failures = vec![];
    let (mut passed, mut skipped) = (0, 0);
    for name in CORE {
        let r = run(name);
        eprintln!(
            "{name}: {} passed, {} failed, {} skipped",
            r.passed, r.failed, r.skipped
        );
        assert!(r.passed > 0, "{name}: no cases found");
        assert_eq!(r.skipped, 0, "{name}: cases skipped");
        passed += r.passed;
        skipped += r.skipped;
        failures.extend(r.failures.iter().map(|f| format!("{name}.test:{f}")));
    }
    eprintln!(
        "core: {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_other_file_runs_and_reports() {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .expect("promql-tests dir")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".test")
                .map(str::to_owned)
        })
        .filter(|n| !CORE.contains(&n.as_str()))
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n == "start_timestamps"));
    for name in &names {
        let r = run(name);
        // Reported, not required: these files test experimental features.
        eprintln!(
            "{name}: {} passed, {} failed, {} skipped",
            r.passed, r.failed, r.skipped
        );
        for f in &r.failures {
            eprintln!("  {name}.test:{f}");
        }
        assert!(
            r.passed + r.failed + r.skipped > 0,
            "{name}: no cases found"
        );
    }
}

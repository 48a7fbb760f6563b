//! `muninn promql-test [-v] FILE...`: runs Prometheus's PromQL test language against
//! Muninn's engine, printing per-file counts and a closing `N passed, N failed` line.

use std::ffi::OsString;

/// Runs the command; returns the process exit code (0 when nothing failed).
pub fn run(args: &[OsString]) -> i32 {
    let verbose = args.iter().any(|a| a == "-v" || a == "--verbose");
    let files: Vec<&OsString> = args
        .iter()
        .filter(|a| !a.to_string_lossy().starts_with('-'))
        .collect();
    if files.is_empty() {
        eprintln!("usage: muninn promql-test [-v] FILE...");
        return 2;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return 2;
        }
    };
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", f.to_string_lossy());
                failed += 1;
                continue;
            }
        };
        let r = rt.block_on(muninn_querier::promqltest::run_file(&text));
        let skip = if r.skipped > 0 {
            format!(", {} skipped", r.skipped)
        } else {
            String::new()
        };
        println!(
            "{}: {} passed, {} failed{skip}",
            f.to_string_lossy(),
            r.passed,
            r.failed
        );
        if verbose {
            for why in &r.failures {
                println!("  FAIL {why}");
            }
        }
        passed += r.passed;
        failed += r.failed;
        skipped += r.skipped;
    }
    let skip = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    println!("{passed} passed, {failed} failed{skip}");
    i32::from(failed > 0)
}

//! Inputs the `promql` fuzz target (`fuzz/`) found crashing, kept as regression tests: each
//! must now give an error (or an answer), not a panic.

#![allow(clippy::unwrap_used)]

use muninn_querier::promql;

#[test]
fn a_subquery_range_too_large_for_a_duration_is_a_parse_error() {
    // promql-parser converts the range with `Duration::from_secs_f64`, which panics.
    let q = "prpjoprbz[0888888888888888888888888888888888888888888:]@1[5m]";
    let err = promql::parse::parse(q).unwrap_err();
    assert!(err.contains("parse error"), "{err}");
}

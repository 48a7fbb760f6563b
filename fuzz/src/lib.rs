//! Shared by the fuzz targets.

use std::cell::Cell;

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, a call into one of Muninn's panic boundaries (a `catch_unwind` that turns a
/// third-party parser's panic into an error: `querier/src/promql/parse.rs::parse`,
/// `storage/src/block/reader.rs::{select, stream_rows}`), letting panics inside it unwind to
/// that boundary. libfuzzer-sys aborts on every panic, even a caught one; outside `contained`
/// that stays so, and any other panic is a crash the fuzzer reports.
pub fn contained<T>(f: impl FnOnce() -> T) -> T {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                abort_hook(info);
            }
        }));
    });
    CONTAINED.with(|c| c.set(true));
    let out = f();
    CONTAINED.with(|c| c.set(false));
    out
}

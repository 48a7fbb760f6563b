//! Shared by the fuzz targets.

/// libfuzzer-sys aborts on every panic, even one that is caught. Muninn contains the panics of
/// some third-party parsers at its API boundary (`catch_unwind`, turned into errors: see
/// `storage/src/block/reader.rs`, `querier/src/promql/parse.rs`); this hook lets panics raised
/// inside the crates whose source path contains one of `crates` unwind to that boundary, and
/// still aborts (a crash the fuzzer reports) on any other panic.
pub fn contain_panics_from(crates: &'static [&'static str]) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let contained = info
                .location()
                .is_some_and(|l| crates.iter().any(|c| l.file().contains(c)));
            if !contained {
                abort_hook(info);
            }
        }));
    });
}

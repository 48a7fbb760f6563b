//! `muninn import-blocks` with the Prometheus-made blocks of `../shared/reference-blocks/`:
//! every sample of `promtool tsdb dump`'s output is answered back exactly, before and after
//! the compactor merges the imported blocks; a repeated import skips what is in; samples
//! under a tombstone are not imported.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{Muninn, compactor_once, live_blocks};

const BLOCKS: &str = "../shared/reference-blocks";
/// The blocks' range: three 2 h blocks from 2026-11-24T00:00Z.
const MIN_T: i64 = 1_795_478_400_000;
const BLOCK_MS: i64 = 2 * 3600 * 1000;

type Samples = HashMap<String, Vec<(i64, f64)>>;

/// `dump.txt.gz`: `{labels} value timestamp` per sample, keyed by the labels as printed.
fn dump() -> Samples {
    let f = std::fs::File::open(Path::new(BLOCKS).join("dump.txt.gz")).expect("reference dump");
    let mut s = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut s)
        .unwrap();
    let mut m: Samples = HashMap::new();
    for line in s.lines() {
        let close = line.rfind('}').unwrap();
        let (labels, rest) = line.split_at(close + 1);
        let mut it = rest.split_whitespace();
        let v: f64 = it.next().unwrap().parse().unwrap();
        let t: i64 = it.next().unwrap().parse().unwrap();
        m.entry(labels.to_owned()).or_default().push((t, v));
    }
    m
}

fn import(data_dir: &Path, tenant: &str, dir: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_muninn"))
        .arg("import-blocks")
        .arg(format!("--tenant={tenant}"))
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(dir)
        .output()
        .expect("run import-blocks");
    assert!(
        out.status.success(),
        "import-blocks failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Labels as promtool prints them: `{__name__="x", a="b"}`.
fn promtool_labels(metric: &serde_json::Value) -> String {
    let mut pairs: Vec<(String, String)> = metric
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    pairs.sort();
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Every raw sample of `tenant`, one range-vector query per 2 h block.
fn answered(m: &Muninn, tenant: &str) -> Samples {
    let mut got: Samples = HashMap::new();
    for b in 0..3 {
        let t = MIN_T + (b + 1) * BLOCK_MS - 1;
        let (s, v) = m.get(
            Some(tenant),
            "/prometheus/api/v1/query",
            &[
                ("query", "{__name__=~\".+\"}[2h]"),
                ("time", &format!("{:.3}", t as f64 / 1000.0)),
            ],
        );
        assert_eq!(s, 200, "{v}");
        for series in v["data"]["result"].as_array().unwrap() {
            let key = promtool_labels(&series["metric"]);
            let points = got.entry(key).or_default();
            for p in series["values"].as_array().unwrap() {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                let v: f64 = p[1].as_str().unwrap().parse().unwrap();
                points.push((t, v));
            }
        }
    }
    got
}

fn assert_same(got: &mut Samples, want: &mut Samples) {
    assert_eq!(got.len(), want.len(), "series count");
    let mut n = 0;
    for (labels, w) in want.iter_mut() {
        let g = got
            .get_mut(labels)
            .unwrap_or_else(|| panic!("{labels} not answered"));
        g.sort_by_key(|s| s.0);
        w.sort_by_key(|s| s.0);
        assert_eq!(g.len(), w.len(), "{labels}");
        for (a, b) in g.iter().zip(w.iter()) {
            assert_eq!(a.0, b.0, "{labels}");
            assert!(
                a.1 == b.1 || (a.1.is_nan() && b.1.is_nan()),
                "{labels} at {}: {} against {}",
                a.0,
                a.1,
                b.1
            );
            n += 1;
        }
    }
    assert_eq!(n, 187_200);
}

#[test]
fn imported_prometheus_blocks_answer_every_sample_of_the_dump_before_and_after_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = import(&data, "imp", Path::new(BLOCKS));
    let progress = String::from_utf8_lossy(&out.stderr);
    for line in ["[1/3]", "[2/3]", "[3/3]", "imported 3 blocks"] {
        assert!(
            progress.contains(line),
            "no {line:?} progress line in {progress}"
        );
    }
    let bucket = data.join("bucket");
    assert_eq!(
        live_blocks(&bucket, "imp").len(),
        3,
        "in the bucket index at exit"
    );

    assert!(
        bucket.join("imp/markers/results-cache-generation").exists(),
        "the results-cache generation is raised (the frontend drops what it cached before)"
    );

    // Imported again: skipped, nothing doubled; also with the markers lost (a run stopped
    // between the index and the marker), since the index names each block's source.
    let again = import(&data, "imp", Path::new(BLOCKS));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already imported"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    for e in std::fs::read_dir(bucket.join("imp/markers")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("imported-")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let again = import(&data, "imp", Path::new(BLOCKS));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("imported 0 blocks (3 skipped)"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(live_blocks(&bucket, "imp").len(), 3);

    let mut want = dump();
    {
        let m = Muninn::start_in("all", &data, &[]);
        assert_same(&mut answered(&m, "imp"), &mut want);
        let (_, other) = m.get(
            Some("someone-else"),
            "/prometheus/api/v1/query",
            &[("query", "count({__name__=~\".+\"})")],
        );
        assert!(
            other["data"]["result"].as_array().unwrap().is_empty(),
            "tenants are apart"
        );
    }

    // The compactor merges the three 2 h blocks (one complete 6 h range) like any others.
    let out = compactor_once(&[
        "--compactor.block-ranges=2h,6h",
        &format!("--data-dir={}", data.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        live_blocks(&bucket, "imp").len(),
        1,
        "compacted into one block"
    );
    let m = Muninn::start_in("all", &data, &[]);
    assert_same(&mut answered(&m, "imp"), &mut want);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn samples_under_a_tombstone_are_not_imported() {
    use muninn_storage::prom_tsdb::index::Index;
    use muninn_storage::prom_tsdb::tombstones::Tombstones;

    let tmp = tempfile::tempdir().unwrap();
    let first: PathBuf =
        muninn_storage::prom_tsdb::find_blocks(Path::new(BLOCKS)).unwrap()[0].clone();
    let block = tmp.path().join("src").join(first.file_name().unwrap());
    copy_dir(&first, &block);
    let series = Index::open(&block.join("index")).unwrap().series().unwrap();
    let victim = &series[5];
    let name = victim.labels.to_string();
    // Delete the victim's first hour: bounds on its samples' own timestamps, both inclusive
    // (as Prometheus applies them).
    let (from, to) = (MIN_T, MIN_T + 3_600_000 - 15_000);
    std::fs::write(
        block.join("tombstones"),
        Tombstones::encode(&[(victim.reference, from, to)]),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let out = import(&data, "tomb", &block);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("240 deleted by tombstones"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = Muninn::start_in("all", &data, &[]);
    let got = answered(&m, "tomb");
    let want = dump();
    let key = promtool_labels(
        &serde_json::to_value(
            victim
                .labels
                .iter()
                .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
                .collect::<serde_json::Map<_, _>>(),
        )
        .unwrap(),
    );
    let kept: Vec<i64> = got[&key].iter().map(|s| s.0).collect();
    let expected: Vec<i64> = want[&key]
        .iter()
        .map(|s| s.0)
        .filter(|t| *t < MIN_T + BLOCK_MS && (*t < from || *t > to))
        .collect();
    assert_eq!(kept.len(), 240, "{name}");
    let mut kept_sorted = kept.clone();
    kept_sorted.sort();
    assert_eq!(kept_sorted, expected, "{name}");
    // Other series keep their whole first block.
    let other = promtool_labels(
        &serde_json::to_value(
            series[6]
                .labels
                .iter()
                .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
                .collect::<serde_json::Map<_, _>>(),
        )
        .unwrap(),
    );
    assert_eq!(got[&other].len(), 480);
}

#[test]
fn blocks_of_a_thanos_style_bucket_on_s3_are_imported() {
    use object_store::ObjectStoreExt;
    let s3 = crate::harness::Seaweed::start("thanos");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&s3.endpoint)
        .with_bucket_name(&s3.bucket)
        .with_access_key_id(crate::harness::S3_KEY)
        .with_secret_access_key(crate::harness::S3_SECRET)
        .with_region("us-east-1")
        .with_allow_http(true)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let blocks = muninn_storage::prom_tsdb::find_blocks(Path::new(BLOCKS)).unwrap();
    // The reference blocks under `prom/`, and one more copy marked for deletion (skipped).
    let mut uploads: Vec<(String, PathBuf)> = vec![];
    for (i, b) in blocks.iter().enumerate() {
        let name = b.file_name().unwrap().to_str().unwrap().to_string();
        let files = ["meta.json", "index", "chunks/000001", "tombstones"];
        for f in files {
            uploads.push((format!("prom/{name}/{f}"), b.join(f)));
            if i == 0 {
                uploads.push((format!("prom/01M87C997D084YBY1S5EYAFDNZ/{f}"), b.join(f)));
            }
        }
    }
    rt.block_on(async {
        for (key, file) in &uploads {
            let bytes = std::fs::read(file).unwrap();
            store
                .put(&object_store::path::Path::from(key.as_str()), bytes.into())
                .await
                .unwrap();
        }
        store
            .put(
                &object_store::path::Path::from(
                    "prom/01M87C997D084YBY1S5EYAFDNZ/deletion-mark.json",
                ),
                b"{}".to_vec().into(),
            )
            .await
            .unwrap();
    });
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // What an import killed mid-download left behind (nobody holds its lock file) is
    // removed; a running import's files are not (this test holds a lock as one would).
    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let dead = tmp.path().join(format!(
        "muninn-import-src-01KILLED000000000000000000-{dead_pid}"
    ));
    std::fs::create_dir_all(dead.join("chunks")).unwrap();
    std::fs::write(dead.join("chunks/000001"), vec![0u8; 4096]).unwrap();
    let running = tmp.path().join(format!(
        "muninn-import-01RUNNING00000000000000000-{}",
        std::process::id()
    ));
    std::fs::write(&running, b"in use").unwrap();
    let dead_lock = tmp.path().join(format!("muninn-import-{dead_pid}.lock"));
    std::fs::write(&dead_lock, b"").unwrap();
    let running_lock = tmp
        .path()
        .join(format!("muninn-import-{}.lock", std::process::id()));
    let held = std::fs::File::create(&running_lock).unwrap();
    held.lock().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_muninn"))
        .arg("import-blocks")
        .arg("--tenant=thanos-import")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--source.s3.endpoint={}", s3.endpoint))
        .arg("--source.s3.allow-http=true")
        .arg(format!("--tmp-dir={}", tmp.path().display()))
        .arg(format!("s3://{}/prom", s3.bucket))
        .env("AWS_ACCESS_KEY_ID", crate::harness::S3_KEY)
        .env("AWS_SECRET_ACCESS_KEY", crate::harness::S3_SECRET)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("imported 3 blocks"),
        "the marked block is skipped: {log}"
    );
    assert!(log.contains("downloaded"), "{log}");
    assert!(!dead.exists(), "a dead import's download is removed");
    assert!(
        log.contains(&format!("removed {}", dead.display())),
        "and said so: {log}"
    );
    assert!(!dead_lock.exists(), "and its lock file");
    assert!(running.exists(), "a running import's file is kept");
    assert!(running_lock.exists(), "and its lock file");
    drop(held);
    std::fs::remove_file(&running).unwrap();
    std::fs::remove_file(&running_lock).unwrap();
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("muninn-import"))
        .collect();
    assert!(left.is_empty(), "downloads and converted files are removed");
    assert_eq!(live_blocks(&data.join("bucket"), "thanos-import").len(), 3);
    let m = Muninn::start_in("all", &data, &[]);
    assert_same(&mut answered(&m, "thanos-import"), &mut dump());
}

#[test]
fn thanos_external_labels_are_added_and_downsampled_blocks_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks = muninn_storage::prom_tsdb::find_blocks(Path::new(BLOCKS)).unwrap();
    let src = tmp.path().join("bucket-copy");
    for (b, thanos) in [
        (
            &blocks[0],
            r#"{"labels":{"cluster":"eu","replica":"a"},"downsample":{"resolution":0},"source":"sidecar"}"#,
        ),
        (
            &blocks[1],
            r#"{"labels":{"cluster":"eu"},"downsample":{"resolution":300000},"source":"compactor"}"#,
        ),
    ] {
        let dest = src.join(b.file_name().unwrap());
        copy_dir(b, &dest);
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dest.join("meta.json")).unwrap()).unwrap();
        meta["thanos"] = serde_json::from_str(thanos).unwrap();
        std::fs::write(dest.join("meta.json"), meta.to_string()).unwrap();
    }
    // Prometheus's leftovers are not blocks.
    copy_dir(
        &blocks[2],
        &src.join(format!(
            "{}.tmp-for-deletion",
            blocks[2].file_name().unwrap().to_string_lossy()
        )),
    );
    let data = tmp.path().join("data");
    let out = import(&data, "thanos", &src);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("downsampled"), "{log}");
    assert!(log.contains("imported 1 blocks (1 skipped)"), "{log}");
    let m = Muninn::start_in("all", &data, &[]);
    let got = answered(&m, "thanos");
    assert_eq!(got.len(), 130);
    for (labels, samples) in &got {
        assert!(
            labels.contains("cluster=\"eu\"") && labels.contains("replica=\"a\""),
            "{labels}"
        );
        assert_eq!(samples.len(), 480);
    }
}

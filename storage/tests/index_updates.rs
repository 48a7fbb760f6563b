//! Concurrent writers of one tenant's bucket index (ingesters shipping blocks, a compactor
//! relisting) on the filesystem store: conditional writes, retried on conflict, lose no block.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use muninn_proto::tenant::TenantId;
use muninn_storage::block::writer;
use muninn_storage::bucket::Bucket;
use muninn_storage::labels::Labels;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, UpdateVersion};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_shippers_and_a_compactor_lose_no_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(Bucket::filesystem(dir.path()).unwrap());
    let tenant = TenantId::new("t").unwrap();
    let ship = |i: i64| {
        let (bucket, tenant) = (bucket.clone(), tenant.clone());
        tokio::spawn(async move {
            let series = vec![(
                Labels::from_pairs([("__name__", format!("m{i}"))]),
                vec![(i * 1000, i as f64)],
            )];
            let (bytes, meta) = writer::build(series, 0, 7_200_000, 1, vec![]).unwrap();
            bucket.upload_block(&tenant, bytes, &meta).await.unwrap();
            bucket.add_to_index(&tenant, &meta).await.unwrap();
            meta.ulid
        })
    };
    // Shippers racing a compactor-like writer that rewrites the index from listings...
    let relister = {
        let (bucket, tenant) = (bucket.clone(), tenant.clone());
        tokio::spawn(async move {
            for _ in 0..10 {
                bucket.write_index(&tenant).await.unwrap();
            }
        })
    };
    let first: Vec<_> = (0..16).map(ship).collect();
    let mut ulids = Vec::new();
    for t in first {
        ulids.push(t.await.unwrap());
    }
    relister.await.unwrap();
    // ...then shippers racing each other only: no later listing repairs a lost update.
    let second: Vec<_> = (16..48).map(ship).collect();
    for t in second {
        ulids.push(t.await.unwrap());
    }
    let index = bucket.index(&tenant).await.unwrap();
    for u in &ulids {
        assert!(
            index.blocks.iter().any(|b| &b.ulid == u),
            "block {u} dropped out of the index"
        );
    }
    assert_eq!(index.blocks.len(), ulids.len());
}

#[tokio::test]
async fn the_filesystem_store_refuses_a_stale_update() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::filesystem(dir.path()).unwrap();
    let store = bucket.store();
    let path = Path::from("t/x.json");
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let first = store
        .put_opts(&path, "1".into(), create.clone())
        .await
        .unwrap();
    assert!(matches!(
        store.put_opts(&path, "1".into(), create).await,
        Err(object_store::Error::AlreadyExists { .. })
    ));
    let update = |e_tag: Option<String>| PutOptions {
        mode: PutMode::Update(UpdateVersion {
            e_tag,
            version: None,
        }),
        ..Default::default()
    };
    let second = store
        .put_opts(&path, "2".into(), update(first.e_tag.clone()))
        .await
        .unwrap();
    assert_ne!(second.e_tag, first.e_tag);
    // The version read before "2" was written is stale now.
    assert!(matches!(
        store.put_opts(&path, "3".into(), update(first.e_tag)).await,
        Err(object_store::Error::Precondition { .. })
    ));
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], b"2");
}

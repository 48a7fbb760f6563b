//! Starts the configured roles: binds the HTTP and gRPC listeners, composes the routers and
//! runs until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use muninn_frontend::Frontend;
use muninn_frontend::downstream::{HttpDownstream, InProcess, RingDownstream};
use muninn_ingester::distributor::Distributor;
use muninn_ingester::{Ingester, IngesterConfig};
use muninn_querier::Querier;
use muninn_querier::block_store::BlockStore;
use muninn_querier::ingester_client::IngesterStore;
use muninn_querier::merged_store::MergedStore;
use muninn_querier::store::SeriesSource;
use muninn_ring::clients::ClientPool;
use muninn_ring::{InstanceDesc, InstanceState, RingHandle};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::http_metrics::{self, HttpMetrics};

/// Runs the process's roles until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let role = config.role;
    let mut registry = Registry::default();
    let http_metrics = HttpMetrics::new(&mut registry);
    let tenancy = muninn_tenancy::Tenancy::new(&config.tenancy, config.multitenancy)
        .context("loading the runtime config and tenants files")?;
    tenancy.register(&mut registry);

    // `compactor --once` runs one pass and exits: no listeners.
    if role == crate::roles::Role::Compactor && config.compactor.once {
        let bucket = config
            .storage
            .open(&config.data_dir)
            .context("opening the bucket")?;
        let metrics = muninn_compactor::CompactorMetrics::default();
        let failed =
            muninn_compactor::pass(&bucket, &config.compactor, &tenancy.overrides, &metrics).await;
        anyhow::ensure!(failed == 0, "compaction failed for {failed} tenants");
        tracing::info!("compaction pass done (--once)");
        return Ok(());
    }
    let http = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP {}", config.http_addr))?;
    let http_addr = http.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let mut app = Router::new();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let (t, stop) = (tenancy.clone(), stopped());
        tokio::spawn(t.run_reloader(stop));
    }

    let bucket_metrics = muninn_storage::metered::StoreMetrics::default();
    bucket_metrics.register(&mut registry);
    let bucket = config
        .storage
        .open(&config.data_dir)
        .context("opening the bucket")?
        .metered(bucket_metrics);
    let rf = config.replication_factor();
    let gossip = !config.ring.join.is_empty();
    let pool = Arc::new(ClientPool::default());
    // Queries read ingesters over connections of their own (see `ClientPool::for_queries`).
    let query_pool = Arc::new(ClientPool::for_queries());
    for p in [&pool, &query_pool] {
        let auth = tenancy.auth.clone();
        p.set_token_source(Arc::new(move || auth.cluster_token()));
    }
    let mut ingester: Option<Arc<Ingester>> = None;
    let mut ring: Option<Arc<RingHandle>> = None;
    let mut distributor: Option<Arc<Distributor>> = None;
    let mut joining = false;
    if role.runs_ingester() {
        let cfg = IngesterConfig::new(
            config.data_dir.clone(),
            config.multitenancy,
            &config.ingester,
        );
        let index_every = config.storage.bucket_index_update_interval.0;
        if !role.runs_querier() && !index_every.is_zero() && cfg.retain_after_ship <= index_every {
            tracing::warn!(
                retain_after_ship = ?cfg.retain_after_ship,
                bucket_index_update_interval = ?index_every,
                "--ingester.retain-after-ship should exceed the queriers' \
                 --blocks-storage.bucket-index.update-interval, or queries may miss blocks \
                 shipped since a querier last read its bucket index"
            );
        }
        let (b, t) = (bucket.clone(), tenancy.clone());
        let ing = tokio::task::spawn_blocking({
            let mut reg = std::mem::take(&mut registry);
            move || Ingester::open(cfg, t, Some(b), &mut reg).map(|i| (i, reg))
        })
        .await??;
        let (ing, reg) = ing;
        registry = reg;
        app = app.merge(ing.http_router());
        ingester = Some(ing.clone());
        let (ing2, stop) = (ing.clone(), stopped());
        let every = ing.config.cut_interval;
        tasks.spawn(async move {
            muninn_ingester::shipper::run(ing2, every, stop).await;
            Ok(())
        });
        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC {}", config.grpc_addr))?;
        let addr = grpc.local_addr()?;
        // This ingester in the ring: tokens kept across restarts; a restart with its tokens
        // is ACTIVE at once (it owned them before), a new ingester JOINs first.
        let tokens_path = config.data_dir.join("tokens");
        let n = config.ring.num_tokens;
        let (tokens, loaded, registered_ms) = tokio::task::spawn_blocking(move || {
            muninn_ring::tokens::load_or_create(&tokens_path, n).map(|(t, loaded)| {
                // The tokens file is written once, when the instance first takes tokens.
                let registered = std::fs::metadata(&tokens_path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
                (t, loaded, registered)
            })
        })
        .await??;
        let me = InstanceDesc {
            id: config.ring.instance_id(),
            addr: match &config.ring.instance_addr {
                Some(a) => a.clone(),
                None if addr.ip().is_unspecified() => {
                    let ip = if gossip {
                        muninn_ring::gossip::local_ip_towards(&config.ring.join).await
                    } else {
                        std::net::Ipv4Addr::LOCALHOST.into()
                    };
                    SocketAddr::new(ip, addr.port()).to_string()
                }
                None => addr.to_string(),
            },
            zone: config.ring.zone.clone(),
            state: if loaded || !gossip {
                InstanceState::Active
            } else {
                InstanceState::Joining
            },
            tokens,
            last_heartbeat_ms: 0,
            healthy: true,
            registered_ms,
        };
        joining = me.state == InstanceState::Joining;
        let r = if gossip {
            let id = me.id.clone();
            RingHandle::join(&config.ring, &id, role.name(), Some(me), rf).await?
        } else {
            RingHandle::local(Some(me), rf, config.ring.zone_awareness)
        };
        ring = Some(r.clone());
        let _ = ing.ring.set(r.clone());
        let dist = Arc::new(Distributor::new(
            config
                .distributor
                .config(config.multitenancy, config.ingester.max_request_bytes),
            tenancy.clone(),
            r,
            pool.clone(),
            Some(ing.clone()),
        ));
        distributor = Some(dist.clone());
        let svc = ing.grpc_service(Some(dist));
        let stop = stopped();
        tasks.spawn(async move {
            tonic::transport::Server::builder()
                .initial_stream_window_size(muninn_ring::clients::STREAM_WINDOW)
                .initial_connection_window_size(muninn_ring::clients::CONNECTION_WINDOW)
                .tcp_nodelay(true)
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(grpc),
                    stop,
                )
                .await
                .context("gRPC server")
        });
        tracing::info!(%addr, "gRPC listening");
    } else if gossip {
        let node_id = format!(
            "{}-{}-{}",
            role.name(),
            muninn_ring::config::hostname(),
            config.ring.bind_addr.port()
        );
        ring = Some(RingHandle::join(&config.ring, &node_id, role.name(), None, rf).await?);
    }
    // A router of the ring without an ingester of its own (the distributor and ruler roles).
    let router = |r: &Arc<RingHandle>| {
        Arc::new(Distributor::new(
            config
                .distributor
                .config(config.multitenancy, config.ingester.max_request_bytes),
            tenancy.clone(),
            r.clone(),
            pool.clone(),
            None,
        ))
    };
    if role == crate::roles::Role::Distributor
        && let Some(r) = &ring
    {
        distributor = Some(router(r));
    }
    if let Some(d) = &distributor {
        d.register(&mut registry);
        app = app.merge(muninn_ingester::push::router(d.clone()));
    }
    if let Some(r) = &ring {
        r.metrics().register(&mut registry);
        app = app.merge(muninn_ring::http::router(r.clone()));
        if joining {
            // Announced with tokens, owning nothing: give the gossip a few rounds to carry
            // the ring to this ingester and this ingester to the others, then take ownership.
            let (r, every) = (r.clone(), config.ring.gossip_interval.0);
            tokio::spawn(async move {
                tokio::time::sleep(every * 5).await;
                r.set_state(InstanceState::Active).await;
            });
        }
    }
    let querier = if role.runs_querier() || role.runs_ruler() {
        Some(
            build_querier(
                &config,
                &bucket,
                &ring,
                &query_pool,
                &tenancy,
                &mut registry,
            )
            .await?,
        )
    } else {
        None
    };
    if role.runs_querier()
        && let Some(q) = querier.clone()
    {
        if role.runs_frontend() {
            // `all`: the query API goes through the frontend to this querier, in process.
            let fe = Frontend::new(
                &config.frontend,
                InProcess::new(q.http_router()),
                tenancy.clone(),
                Some(bucket.clone()),
                config.querier.max_series,
                config.querier.timeout.0,
            )?;
            fe.metrics.register(&mut registry);
            app = app.merge(fe.http_router());
        } else {
            app = app.merge(q.http_router());
        }
    } else if role.runs_frontend() {
        let downstream: Arc<dyn muninn_frontend::downstream::Downstream> =
            match (&ring, config.frontend.downstream_url.is_empty()) {
                (_, false) => Arc::new(HttpDownstream::new(&config.frontend.downstream_url)?),
                (Some(r), true) => Arc::new(RingDownstream::new(r.clone())?),
                (None, true) => anyhow::bail!("no --query-frontend.downstream-url and no ring"),
            };
        let fe = Frontend::new(
            &config.frontend,
            downstream,
            tenancy.clone(),
            Some(bucket.clone()),
            config.querier.max_series,
            config.querier.timeout.0,
        )?;
        fe.metrics.register(&mut registry);
        app = app.merge(fe.http_router());
        tracing::info!(downstream = ?config.frontend.downstream_url, ring = ring.is_some(), "query frontend forwarding to queriers");
    }
    if role.runs_querier()
        && let Some(r) = &ring
        && r.is_gossip()
    {
        // Query frontends find this querier in the ring.
        let url = advertised_url(http_addr, &config).await;
        r.publish(muninn_ring::gossip::KEY_QUERIER_URL, &url).await;
        tracing::info!(%url, "querier published in the ring");
    }
    if role.runs_compactor() {
        let metrics = Arc::new(muninn_compactor::CompactorMetrics::default());
        metrics.register(&mut registry);
        let (args, stop, b) = (config.compactor.clone(), stopped(), bucket.clone());
        let overrides = tenancy.overrides.clone();
        tasks.spawn(async move {
            muninn_compactor::run(b, args, overrides, metrics, stop).await;
            Ok(())
        });
    }

    if let Some(r) = ring.as_ref().filter(|r| r.is_gossip()) {
        r.publish(crate::ui::KEY_VERSION, env!("CARGO_PKG_VERSION"))
            .await;
    }
    app = app.merge(crate::ui::router(crate::ui::Ui {
        role: role.name(),
        instance: ring
            .as_ref()
            .and_then(|r| r.member_id())
            .unwrap_or_else(muninn_ring::config::hostname),
        ring: ring.clone(),
        ingester: ingester.clone(),
        ingesters: querier.as_ref().and_then(|q| q.ingesters.clone()),
        tenancy: tenancy.clone(),
    }));
    let mut ruler: Option<Arc<muninn_ruler::Ruler>> = None;
    if role.runs_ruler()
        && let Some(q) = querier.clone()
    {
        // Rule results go through the push path: this process's distributor (`all`), or a
        // router of the ring of its own (the ruler role).
        let writer = match (&distributor, &ring) {
            (Some(d), _) => d.clone(),
            (None, Some(r)) => router(r),
            (None, None) => anyhow::bail!("the ruler writes over the ring: give --memberlist.join"),
        };
        let self_id = ring
            .as_ref()
            .and_then(|r| r.member_id())
            .unwrap_or_else(|| format!("ruler-{}", muninn_ring::config::hostname()));
        let r = muninn_ruler::Ruler::new(
            config.ruler.clone(),
            muninn_ruler::rule_store::RuleStore::new(bucket.clone()),
            q,
            writer,
            ring.clone(),
            self_id,
        );
        r.metrics.register(&mut registry);
        app = app.merge(muninn_ruler::api::router(r.clone(), tenancy.clone()));
        if let Some(g) = ring.as_ref().filter(|g| g.is_gossip()) {
            // Rulers find each other (sharding, API fan-out, sync notices) in the ring.
            let url = advertised_url(http_addr, &config).await;
            g.publish(muninn_ruler::manager::KEY_RULER_URL, &url).await;
            tracing::info!(%url, "ruler published in the ring");
        }
        let (r2, stop) = (r.clone(), stopped());
        tasks.spawn(async move {
            r2.run(stop).await;
            Ok(())
        });
        ruler = Some(r);
    }
    let _ = &ruler;

    let registry = Arc::new(registry);
    let index = index_page(role.name(), http_addr);
    let ready_dist = distributor.clone();
    app = app
        .route("/endpoints", get(move || async move { ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], index) }))
        .route("/ready", get(move || {
            // Not ready while an ingester drains for shutdown (load balancers stop sending).
            let draining = ready_dist.as_ref().is_some_and(|d| !d.is_accepting());
            async move {
                if draining {
                    (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
                } else {
                    (StatusCode::OK, "ready\n")
                }
            }
        }))
        .layer(axum::middleware::from_fn_with_state(http_metrics, http_metrics::track));
    let metrics_app = Router::new().route("/metrics", get(move || metrics(registry.clone())));
    match config.metrics_addr {
        // `/metrics` lists tenant ids: on its own listener when asked.
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding metrics {addr}"))?;
            tracing::info!(addr = %l.local_addr()?, "metrics listening");
            let stop = stopped();
            tasks.spawn(async move {
                axum::serve(l, metrics_app)
                    .with_graceful_shutdown(stop)
                    .await
                    .context("metrics server")
            });
        }
        None => app = app.merge(metrics_app),
    }

    let stop = stopped();
    tasks.spawn(async move {
        axum::serve(http, app)
            .with_graceful_shutdown(stop)
            .await
            .context("HTTP server")
    });
    tracing::info!(role = role.name(), %http_addr, version = env!("CARGO_PKG_VERSION"), "muninn started");

    // Stop on the shutdown signal, or when any server fails.
    tokio::select! {
        _ = shutdown => {}
        Some(r) = tasks.join_next() => {
            let _ = stop_tx.send(true);
            return match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.into()),
            };
        }
    }
    tracing::info!("shutting down");
    if let (Some(r), Some(_)) = (&ring, &ingester)
        && r.is_gossip()
    {
        // LEAVING: routers stop placing series here (ownership moves to the next instances);
        // a few gossip rounds carry it before writes are refused.
        r.set_state(InstanceState::Leaving).await;
        tokio::time::sleep(config.ring.gossip_interval.0 * 5).await;
    }
    if let Some(d) = &distributor {
        d.stop_accepting();
    }
    if let Some(ing) = &ingester {
        // Drain: new pushes get 503 (senders retry elsewhere or later), the ones in flight
        // finish; then the flush sees every acknowledged write.
        ing.stop_accepting(std::time::Duration::from_secs(30)).await;
        if ing.config.flush_on_shutdown {
            let report =
                muninn_ingester::shipper::cut_all(ing, muninn_ingester::shipper::CutMode::Flush)
                    .await;
            if report.failures.is_empty() {
                tracing::info!(
                    blocks = report.blocks.len(),
                    "flushed the head to indexed blocks before shutdown"
                );
            } else {
                tracing::error!(
                    blocks = report.blocks.len(),
                    failed_tenants = report.failures.len(),
                    "flush on shutdown failed for some tenants; the WAL keeps their data"
                );
            }
        }
    }
    if let Some(r) = &ring {
        // Leave the ring last: until now queriers still read this ingester's head.
        r.leave().await;
    }
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

async fn metrics(registry: Arc<Registry>) -> impl IntoResponse {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

fn index_page(role: &str, addr: SocketAddr) -> String {
    format!(
        "Muninn {version} (role: {role}) on {addr}\n\
         A horizontally scalable, multi-tenant Prometheus backend.\n\n\
         Endpoints:\n\
         POST /api/v1/push                   Prometheus remote write 1.0 (tenant: X-Scope-OrgID or basic-auth user)\n\
         GET /ingester/ring                  the hash ring (JSON with Accept: application/json)\n\
         POST /ingester/flush                flush a tenant's head to blocks (?all=true: every tenant)\n\
         GET|POST /api/v1/query              PromQL instant query (also under /prometheus/api/v1)\n\
         GET|POST /api/v1/query_range        PromQL range query\n\
         GET|POST /api/v1/series             series by match[]\n\
         GET|POST /api/v1/labels             label names\n\
         GET /api/v1/label/<name>/values     label values\n\
         GET /api/v1/metadata                metric metadata\n\
         GET /api/v1/status/buildinfo        build information\n\
         GET /api/v1/status/tsdb             the tenant's cardinality (head)\n\
         GET /api/v1/user_stats              the tenant's series and ingestion rate\n\
         GET|POST|DELETE /prometheus/config/v1/rules[/ns[/group]]  rule groups (ruler, YAML)\n\
         GET /prometheus/api/v1/rules        rule groups and their state (ruler)\n\
         GET /prometheus/api/v1/alerts       pending and firing alerts (ruler)\n\
         GET /                               the built-in UI (cluster, tenants, PromQL graph)\n\
         GET /ui/status                      the UI's JSON: members, ring, tenants\n\
         GET /ready                          readiness\n\
         GET /metrics                        Muninn's own metrics\n",
        version = env!("CARGO_PKG_VERSION")
    )
}

/// The querier: recent data from the ingesters, older data from blocks; merged, duplicates
/// once. The querier role serves it; the ruler evaluates its rules through it.
async fn build_querier(
    config: &Config,
    bucket: &muninn_storage::bucket::Bucket,
    ring: &Option<Arc<RingHandle>>,
    query_pool: &Arc<ClientPool>,
    tenancy: &Arc<muninn_tenancy::Tenancy>,
    registry: &mut Registry,
) -> anyhow::Result<Arc<Querier>> {
    // Recent data from the ingesters, older data from blocks; merged, duplicates once.
    let block_bucket = if config.storage.block_cache_enabled {
        let dir = config
            .storage
            .block_cache_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("block-cache"));
        let max = config.storage.block_cache_max_bytes;
        let cache = tokio::task::spawn_blocking(move || {
            muninn_storage::block_cache::BlockCache::open(dir, max)
        })
        .await?
        .context("opening the block cache")?;
        cache.register(registry);
        bucket.clone().cached(cache)
    } else {
        bucket.clone()
    };
    let index_every = config.storage.bucket_index_update_interval.0;
    let mut block_store = BlockStore::new(block_bucket, index_every);
    if let Some(r) = ring.clone().filter(|r| r.is_gossip()) {
        block_store = block_store.with_ring(r);
    }
    let blocks: Arc<dyn SeriesSource> = Arc::new(block_store);
    let ingesters: Option<IngesterStore> = match &ring {
        // The ring (gossip, or the in-process ingester of `all`): one code path for both.
        Some(r) => Some(
            IngesterStore::from_ring(r.clone(), query_pool.clone()).with_shuffle_sharding(
                tenancy.overrides.clone(),
                config.querier.shuffle_sharding_lookback.0,
            ),
        ),
        None if !config.querier.ingester_addrs.is_empty() => Some(IngesterStore::new(
            &config.querier.ingester_addrs,
            query_pool.clone(),
        )?),
        None => None,
    };
    let store: Arc<dyn SeriesSource> = match ingesters.clone() {
        Some(i) => Arc::new(MergedStore {
            parts: vec![Arc::new(i), blocks],
        }),
        None => {
            tracing::info!("no ring and no --querier.ingester-addrs: answering from blocks alone");
            blocks
        }
    };
    let q = Querier::new(store, ingesters, tenancy.clone(), &config.querier)?;
    q.metrics.register(registry);
    Ok(q)
}

/// The HTTP base URL other members reach this process at.
async fn advertised_url(http_addr: SocketAddr, config: &Config) -> String {
    let ip = if http_addr.ip().is_unspecified() {
        muninn_ring::gossip::local_ip_towards(&config.ring.join).await
    } else {
        http_addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, http_addr.port()))
}

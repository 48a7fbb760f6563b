//! Usage and cardinality of one tenant, from the ingesters' heads:
//! `GET /api/v1/status/tsdb` (Prometheus's shape, the tenant's own data only, merged across
//! ingesters with replicas counted once) and `GET /api/v1/user_stats` (Mimir's).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use muninn_storage::matcher::{MatchOp, Matcher};

use crate::api::{ApiCall, respond};
use crate::json::write_str;
use crate::{Error, Querier, Result};

/// `GET /api/v1/status/tsdb[?limit=N]` (top 10 by default, as Prometheus).
pub async fn tsdb_status(State(q): State<Arc<Querier>>, call: ApiCall) -> Response {
    let r = tsdb(&q, &call).await;
    respond("status/tsdb", &call.tenant, r)
}

async fn tsdb(q: &Querier, call: &ApiCall) -> Result<String> {
    let limit = match call.params.get("limit") {
        None => 10,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(Error::BadData(format!(
                    "invalid parameter \"limit\": {s:?} is not a positive integer"
                )));
            }
        },
    };
    let mut series_by_metric: HashMap<String, u64> = HashMap::new();
    let mut values_by_name: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut series_by_pair: HashMap<String, u64> = HashMap::new();
    let (mut num_series, mut chunks, mut min_t, mut max_t) = (0u64, 0u64, 0i64, 0i64);
    if let Some(ing) = &q.ingesters {
        let all = Matcher::new(MatchOp::Regex, "__name__", ".+")
            .map_err(|e| Error::Execution(e.to_string()))?;
        // Series come back merged across ingesters: replicas count once.
        let series = ing.select_labels(&call.tenant, &[all]).await?;
        num_series = series.len() as u64;
        let max = q
            .tenancy
            .overrides
            .get(call.tenant.as_str())
            .max_fetched_series_per_query;
        if max > 0 && num_series > max {
            return Err(Error::Execution(format!(
                "status/tsdb would fetch {num_series} series, more than the tenant may fetch (max_fetched_series_per_query: {max})"
            )));
        }
        for labels in &series {
            for l in &labels.0 {
                if l.name == "__name__" {
                    *series_by_metric.entry(l.value.clone()).or_default() += 1;
                }
                values_by_name
                    .entry(l.name.clone())
                    .or_default()
                    .insert(l.value.clone());
                *series_by_pair
                    .entry(format!("{}={}", l.name, l.value))
                    .or_default() += 1;
            }
        }
        let (stats, rf) = ing.tenant_stats(&call.tenant).await?;
        chunks = stats.iter().map(|s| s.num_chunks).sum::<u64>() / rf as u64;
        for s in stats.iter().filter(|s| s.num_series > 0) {
            min_t = if min_t == 0 {
                s.min_time_ms
            } else {
                min_t.min(s.min_time_ms)
            };
            max_t = max_t.max(s.max_time_ms);
        }
    }
    let label_pairs = series_by_pair.len();
    let memory: HashMap<String, u64> = values_by_name
        .iter()
        .map(|(n, vs)| (n.clone(), vs.iter().map(|v| v.len() as u64).sum()))
        .collect();
    let counts: HashMap<String, u64> = values_by_name
        .iter()
        .map(|(n, vs)| (n.clone(), vs.len() as u64))
        .collect();
    let mut s = String::with_capacity(1024);
    s.push_str(&format!(
        "{{\"headStats\":{{\"numSeries\":{num_series},\"numLabelPairs\":{label_pairs},\"chunkCount\":{chunks},\"minTime\":{min_t},\"maxTime\":{max_t}}}"
    ));
    for (key, map) in [
        ("seriesCountByMetricName", &series_by_metric),
        ("labelValueCountByLabelName", &counts),
        ("memoryInBytesByLabelName", &memory),
        ("seriesCountByLabelValuePair", &series_by_pair),
    ] {
        s.push_str(",\"");
        s.push_str(key);
        s.push_str("\":[");
        for (i, (name, v)) in top(map, limit).into_iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"name\":");
            write_str(&mut s, name);
            s.push_str(&format!(",\"value\":{v}}}"));
        }
        s.push(']');
    }
    s.push('}');
    Ok(s)
}

/// The `limit` largest entries, largest first (ties by name).
fn top(map: &HashMap<String, u64>, limit: usize) -> Vec<(&str, u64)> {
    let mut v: Vec<(&str, u64)> = map.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.truncate(limit);
    v
}

/// `GET /api/v1/user_stats`: Mimir's per-tenant usage (series and ingestion rates, replicas
/// counted once). Every sample arrives through the API here: no ruler writes yet.
pub async fn user_stats(State(q): State<Arc<Querier>>, call: ApiCall) -> Response {
    let r: Result<String> = async {
        let (mut series, mut rate) = (0u64, 0f64);
        if let Some(ing) = &q.ingesters {
            (series, rate) = ing.tenant_usage(&call.tenant).await?;
        }
        let mut m = BTreeMap::new();
        m.insert("numSeries", serde_json::json!(series));
        m.insert("ingestionRate", serde_json::json!(rate));
        m.insert("apiIngestionRate", serde_json::json!(rate));
        m.insert("ruleIngestionRate", serde_json::json!(0.0));
        Ok(serde_json::to_string(&m).unwrap_or_default())
    }
    .await;
    match r {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => respond("user_stats", &call.tenant, Err(e)),
    }
}

//! The ruler's HTTP API.
//!
//! Rule management, as Cortex and Mimir serve it (YAML bodies):
//! - `GET /prometheus/config/v1/rules`: every namespace's groups (namespace → groups);
//! - `GET /prometheus/config/v1/rules/{namespace}`: one namespace's groups;
//! - `GET /prometheus/config/v1/rules/{namespace}/{group}`: one group;
//! - `POST /prometheus/config/v1/rules/{namespace}`: create or replace the group in the body
//!   (202);
//! - `DELETE /prometheus/config/v1/rules/{namespace}[/{group}]`: delete (202).
//!
//! State, in Prometheus's shape: `GET /prometheus/api/v1/rules` (`type=alert|record`) and
//! `GET /prometheus/api/v1/alerts` (also under `/api/v1`). A ruler answers with its own groups
//! and every other live ruler's (asked with `local=true`), so any ruler answers for the
//! tenant. `POST /ruler/sync` makes a ruler re-read the bucket now.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use muninn_proto::tenant::TenantId;
use muninn_tenancy::Tenancy;

use crate::group::{RuleFilter, by_namespace};
use crate::{Error, Ruler, rule_file};

#[derive(Clone)]
struct Api {
    ruler: Arc<Ruler>,
    tenancy: Arc<Tenancy>,
    /// One lock per tenant around counting and storing a POSTed group, so concurrent POSTs
    /// to this ruler cannot pass the group limit together. Rulers do not share it: two
    /// rulers taking POSTs for one tenant at the same moment can still (as in Mimir).
    writes: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Api {
    fn write_lock(&self, tenant: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(tenant.to_string()).or_default().clone()
    }
}

/// The ruler's routes.
pub fn router(ruler: Arc<Ruler>, tenancy: Arc<Tenancy>) -> Router {
    let config = Router::new()
        .route("/rules", get(list_all))
        .route(
            "/rules/{namespace}",
            get(list_namespace)
                .post(post_group)
                .delete(delete_namespace),
        )
        .route(
            "/rules/{namespace}/{group}",
            get(get_group).delete(delete_group),
        );
    let state = Router::new()
        .route("/rules", get(rules))
        .route("/alerts", get(alerts));
    Router::new()
        .nest("/prometheus/config/v1", config)
        .nest("/prometheus/api/v1", state.clone())
        .nest("/api/v1", state)
        .route("/ruler/sync", post(sync))
        .with_state(Api {
            ruler,
            tenancy,
            writes: Default::default(),
        })
}

fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::InvalidRules(_) | Error::Limit(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Storage(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error(e: Error) -> Response {
    let status = status_of(&e);
    if status.is_server_error() {
        tracing::error!(error = %e, "ruler API request failed");
    }
    (status, format!("{e}\n")).into_response()
}

/// The request's tenant (`X-Scope-OrgID` or the basic-auth user); 401 without one.
struct Tenant(TenantId);

impl axum::extract::FromRequestParts<Api> for Tenant {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        api: &Api,
    ) -> Result<Self, Response> {
        api.tenancy
            .auth
            .tenant(&parts.headers)
            .map(Tenant)
            .map_err(|e| {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"muninn\"")],
                    format!("{e}\n"),
                )
                    .into_response()
            })
    }
}

fn yaml(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], text).into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"success","data":null,"errorType":"","error":""}"#,
    )
        .into_response()
}

async fn namespaces(
    api: &Api,
    tenant: &TenantId,
    namespace: Option<&str>,
) -> Result<rule_file::Namespaces, Error> {
    let groups = api.ruler.store.list(tenant).await?;
    let m = by_namespace(
        groups
            .into_iter()
            .filter(|g| namespace.is_none_or(|n| g.namespace == n))
            .map(|g| (g.namespace, g.group)),
    );
    if m.is_empty() {
        return Err(Error::NotFound("no rule groups found".into()));
    }
    Ok(m)
}

async fn list_all(State(api): State<Api>, Tenant(t): Tenant) -> Response {
    list(&api, &t, None).await
}

async fn list_namespace(
    State(api): State<Api>,
    Tenant(t): Tenant,
    Path(namespace): Path<String>,
) -> Response {
    list(&api, &t, Some(&namespace)).await
}

async fn list(api: &Api, t: &TenantId, namespace: Option<&str>) -> Response {
    match namespaces(api, t, namespace)
        .await
        .and_then(|m| rule_file::to_yaml(&m))
    {
        Ok(y) => yaml(y),
        Err(e) => error(e),
    }
}

async fn get_group(
    State(api): State<Api>,
    Path((namespace, group)): Path<(String, String)>,
    Tenant(t): Tenant,
) -> Response {
    let r = async {
        let groups = api.ruler.store.list(&t).await?;
        let g = groups
            .into_iter()
            .find(|g| g.namespace == namespace && g.group.name == group)
            .ok_or_else(|| Error::NotFound("group does not exist".into()))?;
        rule_file::to_yaml(&g.group)
    }
    .await;
    match r {
        Ok(y) => yaml(y),
        Err(e) => error(e),
    }
}

async fn post_group(
    State(api): State<Api>,
    Path(namespace): Path<String>,
    Tenant(t): Tenant,
    body: Bytes,
) -> Response {
    let r = async {
        let text = std::str::from_utf8(&body)
            .map_err(|_| Error::InvalidRules("the body is not UTF-8".into()))?;
        let group = rule_file::parse_group(text)?;
        let limits = api.tenancy.overrides.get(t.as_str());
        let max_rules = limits.ruler_max_rules_per_rule_group;
        if max_rules > 0 && group.rules.len() > max_rules {
            return Err(Error::Limit(format!(
                "per-user rules per rule group limit (limit: {max_rules} actual: {}) exceeded",
                group.rules.len()
            )));
        }
        let max_groups = limits.ruler_max_rule_groups_per_tenant;
        let lock = api.write_lock(t.as_str());
        let _counted_and_stored = lock.lock().await;
        if max_groups > 0 {
            let existing = api.ruler.store.list(&t).await?;
            let others = existing
                .iter()
                .filter(|g| !(g.namespace == namespace && g.group.name == group.name))
                .count();
            if others + 1 > max_groups {
                return Err(Error::Limit(format!(
                    "per-user rule groups limit (limit: {max_groups} actual: {}) exceeded",
                    others + 1
                )));
            }
        }
        api.ruler.store.put(&t, &namespace, &group).await?;
        tracing::info!(tenant = %t, namespace = %namespace, group = %group.name, rules = group.rules.len(), "rule group stored");
        Ok(())
    }
    .await;
    if let Err(e) = &r
        && !status_of(e).is_server_error()
    {
        tracing::info!(tenant = %t, namespace = %namespace, error = %e, "rule group refused");
    }
    changed(&api, r)
}

/// The answer to a change: 202, and this ruler and every other syncs now; or the error.
fn changed(api: &Api, r: Result<(), Error>) -> Response {
    if let Err(e) = r {
        return error(e);
    }
    api.ruler.request_sync();
    let ruler = api.ruler.clone();
    tokio::spawn(async move { ruler.notify_others().await });
    accepted()
}

async fn delete_group(
    State(api): State<Api>,
    Path((namespace, group)): Path<(String, String)>,
    Tenant(t): Tenant,
) -> Response {
    let r = match api.ruler.store.delete(&t, &namespace, &group).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotFound("group does not exist".into())),
        Err(e) => Err(e),
    };
    changed(&api, r)
}

async fn delete_namespace(
    State(api): State<Api>,
    Path(namespace): Path<String>,
    Tenant(t): Tenant,
) -> Response {
    let r = async {
        let groups = api.ruler.store.list(&t).await?;
        let mut n = 0;
        for g in groups.iter().filter(|g| g.namespace == namespace) {
            if api
                .ruler
                .store
                .delete(&t, &namespace, &g.group.name)
                .await?
            {
                n += 1;
            }
        }
        if n == 0 {
            return Err(Error::NotFound("no rule groups found".into()));
        }
        Ok(())
    }
    .await;
    changed(&api, r)
}

async fn sync(State(api): State<Api>, headers: HeaderMap) -> Response {
    // Rulers tell each other with the cluster token, when the tenants file has one.
    let token = headers
        .get(muninn_proto::CLUSTER_TOKEN_METADATA_KEY)
        .map(|v| v.as_bytes());
    if api.tenancy.auth.check_cluster_token(token).is_err() {
        return (StatusCode::UNAUTHORIZED, "cluster token required\n").into_response();
    }
    api.ruler.request_sync();
    (StatusCode::OK, "sync requested\n").into_response()
}

#[derive(serde::Deserialize, Default)]
struct StateParams {
    #[serde(default)]
    r#type: Option<String>,
    #[serde(default)]
    local: Option<bool>,
}

fn success(data: serde_json::Value, warnings: Vec<String>) -> Response {
    let mut body = serde_json::json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = warnings.into();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `items` of `field` from every other live ruler's answer to `path`.
async fn from_others(
    api: &Api,
    headers: &HeaderMap,
    path: &str,
    field: &str,
) -> (Vec<serde_json::Value>, Vec<String>) {
    let (mut items, mut warnings) = (vec![], vec![]);
    for (id, url) in api.ruler.members().await {
        if id == api.ruler.self_id() || url.is_empty() {
            continue;
        }
        let mut req = api.ruler.http.get(format!("{url}{path}"));
        for h in [header::AUTHORIZATION.as_str(), "x-scope-orgid"] {
            if let Some(v) = headers.get(h) {
                req = req.header(h, v.as_bytes());
            }
        }
        let r = async {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
            Ok(v["data"][field].as_array().cloned().unwrap_or_default())
        }
        .await;
        match r {
            Ok(v) => items.extend(v),
            Err(e) => {
                tracing::warn!(ruler = %id, error = %e, "a ruler did not answer for its rule groups");
                warnings.push(format!("ruler {id} did not answer: {e}"));
            }
        }
    }
    (items, warnings)
}

async fn rules(
    State(api): State<Api>,
    Query(p): Query<StateParams>,
    Tenant(t): Tenant,
    headers: HeaderMap,
) -> Response {
    let filter = match p.r#type.as_deref() {
        None | Some("") => RuleFilter::All,
        Some("alert") => RuleFilter::Alerting,
        Some("record") => RuleFilter::Recording,
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({"status": "error", "errorType": "bad_data", "error": format!("unsupported type {other:?}")}).to_string(),
            )
                .into_response();
        }
    };
    let mut groups = vec![];
    for g in api.ruler.owned(&t) {
        let mut j = g.read().group.clone();
        if j.is_null() {
            continue;
        }
        if let Some(rules) = j["rules"].as_array_mut() {
            rules.retain(|r| match filter {
                RuleFilter::All => true,
                RuleFilter::Alerting => r["type"] == "alerting",
                RuleFilter::Recording => r["type"] == "recording",
            });
            if rules.is_empty() {
                continue;
            }
        }
        groups.push(j);
    }
    let mut warnings = vec![];
    if p.local != Some(true) {
        let query = match p.r#type.as_deref() {
            Some(ty) if !ty.is_empty() => format!("&type={ty}"),
            _ => String::new(),
        };
        let (more, w) = from_others(
            &api,
            &headers,
            &format!("/prometheus/api/v1/rules?local=true{query}"),
            "groups",
        )
        .await;
        groups.extend(more);
        warnings = w;
        groups.sort_by(|a, b| {
            (a["file"].as_str(), a["name"].as_str()).cmp(&(b["file"].as_str(), b["name"].as_str()))
        });
    }
    success(serde_json::json!({ "groups": groups }), warnings)
}

async fn alerts(
    State(api): State<Api>,
    Query(p): Query<StateParams>,
    Tenant(t): Tenant,
    headers: HeaderMap,
) -> Response {
    let mut alerts = vec![];
    for g in api.ruler.owned(&t) {
        alerts.extend(g.read().alerts.iter().cloned());
    }
    let mut warnings = vec![];
    if p.local != Some(true) {
        let (more, w) = from_others(
            &api,
            &headers,
            "/prometheus/api/v1/alerts?local=true",
            "alerts",
        )
        .await;
        alerts.extend(more);
        warnings = w;
    }
    success(serde_json::json!({ "alerts": alerts }), warnings)
}

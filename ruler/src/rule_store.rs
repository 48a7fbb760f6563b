//! Rule groups in object storage, under the tenant: `<tenant>/rules/<namespace>/<group>`, the
//! namespace and group names hex-encoded (any bytes are allowed in them), the object holding
//! the group's YAML. Any ruler can load any tenant's groups from there.

use futures::TryStreamExt;
use muninn_proto::tenant::TenantId;
use muninn_storage::bucket::Bucket;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::Error;
use crate::rule_file::{self, RuleGroup};

/// One stored group.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredGroup {
    pub namespace: String,
    pub group: RuleGroup,
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn prefix(tenant: &TenantId) -> Path {
    Path::from(format!("{}/rules", tenant.as_str()))
}

fn group_path(tenant: &TenantId, namespace: &str, group: &str) -> Path {
    Path::from(format!(
        "{}/rules/{}/{}",
        tenant.as_str(),
        hex(namespace),
        hex(group)
    ))
}

fn os_err(op: &'static str) -> impl FnOnce(object_store::Error) -> Error {
    move |e| Error::Storage(format!("{op}: {e}"))
}

/// The tenants' rule groups in a bucket.
#[derive(Clone)]
pub struct RuleStore {
    bucket: Bucket,
}

impl RuleStore {
    pub fn new(bucket: Bucket) -> Self {
        Self { bucket }
    }

    fn store(&self) -> std::sync::Arc<dyn ObjectStore> {
        self.bucket.store()
    }

    /// Every tenant of the bucket (those without rules have none listed).
    pub async fn tenants(&self) -> Result<Vec<TenantId>, Error> {
        self.bucket
            .tenants()
            .await
            .map_err(|e| Error::Storage(e.to_string()))
    }

    /// The tenant's groups, sorted by namespace and group name. An object that no longer
    /// parses is skipped with a warning (it was valid when stored).
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<StoredGroup>, Error> {
        let store = self.store();
        let objects: Vec<object_store::ObjectMeta> = store
            .list(Some(&prefix(tenant)))
            .try_collect()
            .await
            .map_err(os_err("listing rule groups"))?;
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            let parts: Vec<String> = o.location.parts().map(|p| p.as_ref().to_string()).collect();
            let n = parts.len();
            let (Some(ns), Some(_)) = (
                n.checked_sub(2).and_then(|i| unhex(&parts[i])),
                n.checked_sub(1).and_then(|i| unhex(&parts[i])),
            ) else {
                tracing::warn!(path = %o.location, "skipping an object that is not a rule group");
                continue;
            };
            let bytes = match store.get(&o.location).await {
                Ok(r) => r.bytes().await.map_err(os_err("reading a rule group"))?,
                // Deleted between the listing and the read.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(os_err("reading a rule group")(e)),
            };
            let text = String::from_utf8_lossy(&bytes);
            match rule_file::load_group(&text) {
                Ok(group) => out.push(StoredGroup {
                    namespace: ns,
                    group,
                }),
                Err(e) => {
                    tracing::warn!(tenant = %tenant, path = %o.location, error = %e, "skipping a stored rule group that does not parse")
                }
            }
        }
        out.sort_by(|a, b| {
            (a.namespace.as_str(), a.group.name.as_str())
                .cmp(&(b.namespace.as_str(), b.group.name.as_str()))
        });
        Ok(out)
    }

    /// Stores (creates or replaces) a group.
    pub async fn put(
        &self,
        tenant: &TenantId,
        namespace: &str,
        group: &RuleGroup,
    ) -> Result<(), Error> {
        let text = rule_file::to_yaml(group)?;
        self.store()
            .put(
                &group_path(tenant, namespace, &group.name),
                PutPayload::from(text.into_bytes()),
            )
            .await
            .map_err(os_err("storing a rule group"))?;
        Ok(())
    }

    /// Deletes a group; `false` if it did not exist.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        namespace: &str,
        group: &str,
    ) -> Result<bool, Error> {
        let path = group_path(tenant, namespace, group);
        let store = self.store();
        match store.head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(os_err("deleting a rule group")(e)),
        }
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(os_err("deleting a rule group")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_the_key_encoding() {
        for s in ["ns", "a/b c", "ünï", ""] {
            assert_eq!(unhex(&hex(s)).as_deref(), Some(s));
        }
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[tokio::test]
    async fn groups_are_stored_listed_and_deleted_per_tenant() {
        let dir = std::env::temp_dir().join(format!("muninn-rules-{}", std::process::id()));
        let store = RuleStore::new(Bucket::filesystem(&dir).unwrap());
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let g = rule_file::parse_group("name: g/1\nrules:\n  - record: x\n    expr: up\n").unwrap();
        store.put(&a, "ns one", &g).await.unwrap();
        let listed = store.list(&a).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].namespace, "ns one");
        assert_eq!(listed[0].group, g);
        assert!(
            store.list(&b).await.unwrap().is_empty(),
            "tenants are apart"
        );
        assert!(!store.delete(&b, "ns one", "g/1").await.unwrap());
        assert!(store.delete(&a, "ns one", "g/1").await.unwrap());
        assert!(store.list(&a).await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}

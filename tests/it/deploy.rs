//! The deployment files, checked without a Docker engine or a Kubernetes cluster:
//! `docker-compose.yml` through `docker-compose config` (Debian package docker-compose),
//! every Muninn command line of the compose file and of `deploy/kubernetes/` through Muninn's
//! own flag parser (`muninn::config`), the Kubernetes manifests against an allow-list of real
//! field names, the Grafana provisioning files against the compose mounts, and every metric the
//! dashboards of `deploy/dashboards/` name against what real Muninn processes expose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use muninn_proto::prometheus::{Exemplar, Label};
use serde_json::Value;

use crate::cluster::{Cluster, wait_active};
use crate::harness::{Muninn, agent, encode, now_ms, push_to, series, wait_for, write_request};

/// The tenant of the compose stack (Prometheus's basic-auth user, Grafana's datasource).
const TENANT: &str = "demo";

/// Every role of the `muninn` binary.
const ROLES: [&str; 7] = [
    "all",
    "ingester",
    "querier",
    "query-frontend",
    "compactor",
    "distributor",
    "ruler",
];

/// The roles a cluster deployment runs, each at least once.
const CLUSTER_ROLES: [&str; 6] = [
    "ingester",
    "distributor",
    "querier",
    "query-frontend",
    "compactor",
    "ruler",
];

const DASHBOARDS: [&str; 5] = [
    "writes.json",
    "ring.json",
    "queries.json",
    "storage.json",
    "tenants.json",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn yaml(text: &str, what: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}"))
}

/// The documents of a multi-document YAML file (split on `---` lines), comment-only ones left
/// out.
fn yaml_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| {
            d.lines().any(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with('#')
            })
        })
        .collect()
}

/// Parses a `muninn` command line (without the program name) as the binary does, the `--config`
/// file's flags (`file_args`) first, and runs the checks the binary runs before starting.
fn parse_command_line(file_args: &[String], args: &[String], what: &str) -> muninn::config::Config {
    let mut argv: Vec<String> = vec!["muninn".to_string()];
    argv.extend(file_args.iter().cloned());
    argv.extend(args.iter().cloned());
    let config = muninn::config::Config::try_parse_from(argv.iter())
        .unwrap_or_else(|e| panic!("{what}: muninn refuses {argv:?}:\n{e}"));
    if let Err(e) = config.validate() {
        panic!("{what}: muninn refuses {argv:?}: {e}");
    }
    config
}

fn str_list(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("{what}: expected strings, got {s}"))
                .to_string()
        })
        .collect()
}

#[test]
fn compose_file_is_valid_for_docker_compose() {
    let compose = |args: &[&str]| {
        let out = Command::new("docker-compose")
            .args(["-f", "docker-compose.yml"])
            .args(args)
            .current_dir(repo())
            .output()
            .expect("the `docker-compose` binary (Debian package docker-compose; scripts/test installs it) must be on PATH");
        assert!(
            out.status.success(),
            "docker-compose {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    compose(&["config", "-q"]);
    let services: BTreeSet<String> = compose(&["config", "--services"])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    for s in [
        "ingester-1",
        "ingester-2",
        "ingester-3",
        "distributor",
        "querier",
        "query-frontend",
        "compactor",
        "ruler",
        "minio",
        "prometheus",
        "grafana",
        "alertmanager",
    ] {
        assert!(services.contains(s), "no service {s} in {services:?}");
    }

    // The file as docker-compose resolved it (anchors merged): every service built from the
    // Dockerfile runs a role with a command line Muninn accepts, on the shared S3 bucket.
    let resolved = yaml(&compose(&["config"]), "docker-compose config");
    let svcs = resolved["services"]
        .as_object()
        .expect("services: a mapping");
    let mut roles = BTreeSet::new();
    let mut instance_ids = BTreeSet::new();
    let mut muninn_services = BTreeSet::new();
    for (name, svc) in svcs {
        if svc.get("build").is_none() {
            continue;
        }
        muninn_services.insert(name.clone());
        let args = str_list(&svc["command"], &format!("{name}: command"));
        let c = parse_command_line(&[], &args, &format!("docker-compose service {name}"));
        let role = c.role.name();
        roles.insert(role.to_string());
        assert_eq!(c.storage.backend, "s3", "{name}: blocks in MinIO");
        assert_eq!(
            c.storage.s3_endpoint.as_deref(),
            Some("http://minio:9000"),
            "{name}"
        );
        assert_eq!(c.storage.s3_bucket.as_deref(), Some("muninn"), "{name}");
        assert_eq!(c.http_addr.port(), 9009, "{name}: Prometheus scrapes :9009");
        assert_eq!(
            svc["depends_on"]["minio-init"]["condition"].as_str(),
            Some("service_completed_successfully"),
            "{name} starts once the bucket exists"
        );
        match role {
            "ingester" => {
                assert_eq!(
                    c.ring.instance_id.as_deref(),
                    Some(name.as_str()),
                    "{name}: stable id"
                );
                assert_eq!(c.replication_factor(), 3, "{name}");
                assert_eq!(c.ring.join.len(), 3, "{name}: joins the three ingesters");
                instance_ids.insert(name.clone());
                let volumes = str_list(&svc["volumes"], &format!("{name}: volumes"));
                assert!(
                    volumes
                        .iter()
                        .any(|v| v.starts_with(&format!("{name}:{}", c.data_dir.display()))),
                    "{name}: its own volume at its data dir: {volumes:?}"
                );
            }
            "compactor" => {}
            "query-frontend" => assert_eq!(
                c.frontend.downstream_url,
                vec!["http://querier:9009".to_string()],
                "{name}"
            ),
            _ => assert!(!c.ring.join.is_empty(), "{name}: joins the gossip ring"),
        }
        if role == "ruler" {
            assert_eq!(
                c.ruler.alertmanager_url,
                vec!["http://alertmanager:9093".to_string()]
            );
        }
    }
    let want: BTreeSet<String> = CLUSTER_ROLES.iter().map(|r| r.to_string()).collect();
    assert_eq!(roles, want, "every cluster role runs");
    assert_eq!(instance_ids.len(), 3, "three ingesters, three ids");

    // Prometheus writes as the tenant to the distributor and scrapes every Muninn service.
    let prom = yaml(&read("deploy/prometheus.yml"), "deploy/prometheus.yml");
    let rw = &prom["remote_write"][0];
    assert_eq!(rw["url"], "http://distributor:9009/api/v1/push");
    assert_eq!(rw["basic_auth"]["username"], TENANT);
    let targets: BTreeSet<String> = prom["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .flat_map(|j| j["static_configs"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| str_list(&s["targets"], "targets"))
        .collect();
    for s in &muninn_services {
        assert!(
            targets.contains(&format!("{s}:9009")),
            "Prometheus does not scrape {s}: {targets:?}"
        );
    }
}

/// Field names the manifests may use under a workload's, a Service's or a
/// PodDisruptionBudget's `spec` (Kubernetes apps/v1, v1, policy/v1), whitespace-separated: a
/// misspelt field is silently dropped by some tools, so it fails here. By line: metadata;
/// Deployment and StatefulSet specs; PodSpec; affinity; Container; EnvVar and EnvFromSource;
/// ContainerPort; Probe; ResourceRequirements; VolumeMount and Volume; SecurityContext;
/// PersistentVolumeClaimSpec; ServiceSpec and ServicePort; PodDisruptionBudgetSpec.
const K8S_FIELDS: &str = "
name namespace labels annotations
replicas selector matchLabels matchExpressions key operator values template metadata spec
strategy type rollingUpdate maxUnavailable maxSurge partition minReadySeconds
revisionHistoryLimit progressDeadlineSeconds serviceName podManagementPolicy updateStrategy
volumeClaimTemplates persistentVolumeClaimRetentionPolicy whenDeleted whenScaled ordinals
containers initContainers volumes terminationGracePeriodSeconds affinity nodeSelector
tolerations effect tolerationSeconds topologySpreadConstraints maxSkew topologyKey
whenUnsatisfiable labelSelector securityContext serviceAccountName
automountServiceAccountToken priorityClassName imagePullSecrets dnsPolicy
enableServiceLinks restartPolicy hostname subdomain schedulerName
podAntiAffinity podAffinity nodeAffinity preferredDuringSchedulingIgnoredDuringExecution
requiredDuringSchedulingIgnoredDuringExecution weight podAffinityTerm namespaces preference
nodeSelectorTerms
image imagePullPolicy command args workingDir env envFrom ports readinessProbe
livenessProbe startupProbe resources volumeMounts lifecycle preStop
terminationMessagePolicy
value valueFrom fieldRef fieldPath apiVersion secretKeyRef configMapKeyRef optional
resourceFieldRef resource containerName divisor secretRef configMapRef prefix
containerPort protocol hostPort
httpGet path port scheme httpHeaders tcpSocket exec grpc initialDelaySeconds periodSeconds
timeoutSeconds failureThreshold successThreshold
requests limits cpu memory ephemeral-storage storage
mountPath readOnly subPath configMap secret secretName items defaultMode emptyDir medium
sizeLimit persistentVolumeClaim claimName
runAsUser runAsGroup runAsNonRoot fsGroup readOnlyRootFilesystem allowPrivilegeEscalation
capabilities drop add
accessModes storageClassName volumeMode
clusterIP publishNotReadyAddresses targetPort nodePort appProtocol sessionAffinity
externalTrafficPolicy internalTrafficPolicy ipFamilyPolicy
minAvailable unhealthyPodEvictionPolicy
";

/// Maps whose keys are the user's (label names, annotation keys), not field names.
const USER_MAPS: &[&str] = &["labels", "annotations", "matchLabels", "nodeSelector"];

fn unknown_fields(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{path}.{k}");
                if !K8S_FIELDS.split_whitespace().any(|f| f == k.as_str()) {
                    out.push(p.clone());
                }
                if !USER_MAPS.contains(&k.as_str()) {
                    unknown_fields(child, &p, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                unknown_fields(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Whether every `key: value` of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k.as_str()) == Some(v)))
}

/// The ConfigMap and key mounted at `file` in `container` of `pod`.
fn mounted_config_map<'a>(
    pod: &'a Value,
    container: &'a Value,
    file: &str,
) -> Option<(&'a str, String)> {
    let path = Path::new(file);
    let dir = path.parent()?.to_str()?;
    let key = path.file_name()?.to_str()?.to_string();
    let mount = container["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(dir))?;
    let volume_name = mount["name"].as_str()?;
    let volume = pod["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"].as_str() == Some(volume_name))?;
    Some((volume["configMap"]["name"].as_str()?, key))
}

#[test]
fn kubernetes_manifests_use_known_fields() {
    let mut files: BTreeSet<String> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .expect("deploy/kubernetes")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    assert!(files.remove("kustomization.yaml"), "no kustomization.yaml");
    let kustomization = yaml(
        &read("deploy/kubernetes/kustomization.yaml"),
        "kustomization.yaml",
    );
    assert_eq!(kustomization["kind"], "Kustomization");
    let resources: BTreeSet<String> =
        str_list(&kustomization["resources"], "kustomization.yaml: resources")
            .into_iter()
            .collect();
    assert_eq!(
        resources, files,
        "kustomization.yaml lists exactly the other manifests"
    );

    let known_kinds = [
        ("v1", "Namespace"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("policy/v1", "PodDisruptionBudget"),
    ];
    let mut docs: Vec<(String, Value)> = vec![];
    for f in &files {
        for (i, text) in yaml_documents(&read(&format!("deploy/kubernetes/{f}")))
            .iter()
            .enumerate()
        {
            let what = format!("{f} document {i}");
            let d = yaml(text, &what);
            let api = d["apiVersion"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no apiVersion"));
            let kind = d["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no kind"));
            let name = d["metadata"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no metadata.name"));
            assert!(!name.is_empty(), "{what}: empty metadata.name");
            assert!(
                known_kinds.contains(&(api, kind)),
                "{what}: unexpected {api} {kind}"
            );
            docs.push((format!("{f}: {kind}/{name}"), d));
        }
    }

    // Field names.
    let mut unknown = vec![];
    for (what, d) in &docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        if !matches!(
            kind,
            "Deployment" | "StatefulSet" | "Service" | "PodDisruptionBudget"
        ) {
            continue;
        }
        let mut spec = d["spec"].clone();
        if kind == "Service"
            && let Some(s) = spec.as_object_mut()
        {
            // A Service's selector is a map of labels.
            s.remove("selector");
        }
        unknown_fields(&spec, &format!("{what}: spec"), &mut unknown);
    }
    assert!(
        unknown.is_empty(),
        "unknown Kubernetes fields:\n{}",
        unknown.join("\n")
    );

    let services: BTreeMap<String, &Value> = of_kind(&docs, "Service")
        .into_iter()
        .map(|d| (name_of(d), d))
        .collect();
    let headless: BTreeSet<String> = services
        .iter()
        .filter(|(_, s)| s["spec"]["clusterIP"] == "None")
        .map(|(n, _)| n.clone())
        .collect();
    let config_maps: BTreeMap<String, &Value> = of_kind(&docs, "ConfigMap")
        .into_iter()
        .map(|d| (name_of(d), d))
        .collect();
    let secrets: BTreeMap<String, &Value> = of_kind(&docs, "Secret")
        .into_iter()
        .map(|d| (name_of(d), d))
        .collect();

    let mut workloads = of_kind(&docs, "Deployment");
    workloads.extend(of_kind(&docs, "StatefulSet"));
    let mut roles = BTreeSet::new();
    for w in &workloads {
        let wname = name_of(w);
        let kind = w["kind"].as_str().unwrap_or_default();
        let what = format!("{kind}/{wname}");
        let template = &w["spec"]["template"];
        let pod = &template["spec"];
        let pod_labels = &template["metadata"]["labels"];
        assert!(
            selects(&w["spec"]["selector"]["matchLabels"], pod_labels),
            "{what}: the selector does not match the pod labels"
        );
        let containers = pod["containers"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no containers"));
        assert_eq!(containers.len(), 1, "{what}: one container");
        let container = &containers[0];
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/ready",
            "{what}: readinessProbe.httpGet.path"
        );

        // The container's environment, with values standing for what Kubernetes fills in.
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for e in container["env"].as_array().cloned().unwrap_or_default() {
            let n = e["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: env without name"))
                .to_string();
            let v = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else if let Some(f) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                match f {
                    "metadata.name" => format!("{wname}-0"),
                    "metadata.namespace" => "muninn".to_string(),
                    other => panic!("{what}: env {n} from unexpected field {other}"),
                }
            } else if let Some(s) = e["valueFrom"]["secretKeyRef"]["name"].as_str() {
                let key = e["valueFrom"]["secretKeyRef"]["key"]
                    .as_str()
                    .unwrap_or_default();
                let secret = secrets.get(s).unwrap_or_else(|| {
                    panic!("{what}: env {n} from Secret {s}, which is not in the manifests")
                });
                assert!(
                    secret["stringData"].get(key).is_some() || secret["data"].get(key).is_some(),
                    "{what}: Secret {s} has no key {key}"
                );
                "secret".to_string()
            } else {
                panic!("{what}: env {n} has neither value nor valueFrom")
            };
            env.insert(n, v);
        }
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            assert!(
                env.contains_key(k),
                "{what}: S3 credentials from the Secret ({k})"
            );
        }
        let args: Vec<String> = str_list(&container["args"], &format!("{what}: args"))
            .into_iter()
            .map(|a| {
                let mut out = a.clone();
                for (k, v) in &env {
                    out = out.replace(&format!("$({k})"), v);
                }
                assert!(
                    !out.contains("$("),
                    "{what}: {a} names a variable the container does not define"
                );
                out
            })
            .collect();
        assert!(
            args.first().is_some_and(|r| ROLES.contains(&r.as_str())),
            "{what}: the first argument is a role: {args:?}"
        );

        // Every volume mount names a volume or a claim template.
        let mut volumes: BTreeSet<String> = pod["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(name_of)
            .collect();
        for t in w["spec"]["volumeClaimTemplates"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            volumes.insert(name_of(&t));
        }
        for m in container["volumeMounts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let n = m["name"].as_str().unwrap_or_default();
            assert!(
                volumes.contains(n),
                "{what}: mount of an undeclared volume {n}"
            );
        }
        for v in pod["volumes"].as_array().cloned().unwrap_or_default() {
            if let Some(cm) = v["configMap"]["name"].as_str() {
                assert!(
                    config_maps.contains_key(cm),
                    "{what}: ConfigMap {cm} is not in the manifests"
                );
            }
        }

        // The command line, with the --config file's flags under it, as `muninn` loads it.
        let config_path = args
            .iter()
            .find_map(|a| a.strip_prefix("--config="))
            .unwrap_or_else(|| panic!("{what}: no --config"));
        let (cm, key) = mounted_config_map(pod, container, config_path)
            .unwrap_or_else(|| panic!("{what}: {config_path} is not mounted from a ConfigMap"));
        let text = config_maps[cm]["data"][key.as_str()]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: ConfigMap {cm} has no key {key}"));
        let file_args = muninn::config::yaml_to_args(text)
            .unwrap_or_else(|e| panic!("ConfigMap {cm} {key}: {e:#}"));
        let c = parse_command_line(&file_args, &args, &what);
        let role = c.role.name();
        roles.insert(role.to_string());
        assert_eq!(c.storage.backend, "s3", "{what}: blocks on S3");
        assert!(c.storage.s3_bucket.is_some(), "{what}: a bucket");
        let data_dir = c.data_dir.display().to_string();
        let data_mount = container["volumeMounts"]
            .as_array()
            .and_then(|ms| {
                ms.iter()
                    .find(|m| m["mountPath"].as_str() == Some(data_dir.as_str()))
            })
            .unwrap_or_else(|| panic!("{what}: nothing mounted at the data dir {data_dir}"));
        let runtime = c
            .tenancy
            .runtime_config_file
            .clone()
            .unwrap_or_else(|| panic!("{what}: no --runtime-config.file"));
        let runtime = runtime.display().to_string();
        let (rcm, rkey) = mounted_config_map(pod, container, &runtime)
            .unwrap_or_else(|| panic!("{what}: {runtime} is not mounted from a ConfigMap"));
        let rtext = config_maps[rcm]["data"][rkey.as_str()]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: ConfigMap {rcm} has no key {rkey}"));
        let parsed = muninn_tenancy::overrides::parse(rtext, &muninn_tenancy::Limits::default())
            .unwrap_or_else(|e| panic!("ConfigMap {rcm} {rkey}: {e}"));
        assert!(
            !parsed.tenants.is_empty(),
            "ConfigMap {rcm}: no tenant overrides"
        );
        assert!(
            parsed.unknown.is_empty(),
            "ConfigMap {rcm}: keys Muninn ignores: {:?}",
            parsed.unknown
        );

        // Gossip: the join address is a headless Service that selects this pod.
        if role != "compactor" {
            assert!(!c.ring.join.is_empty(), "{what}: joins the gossip ring");
            for j in &c.ring.join {
                let svc = j.split('.').next().unwrap_or_default();
                assert!(
                    j.ends_with(":7946") && headless.contains(svc),
                    "{what}: join address {j} is not a headless Service's"
                );
                let s = services[svc];
                assert!(
                    selects(&s["spec"]["selector"], pod_labels),
                    "{what}: Service {svc} does not select its pods: they cannot be found"
                );
                assert!(
                    s["spec"]["ports"].as_array().is_some_and(|ps| ps
                        .iter()
                        .any(|p| p["port"] == 7946 && p["protocol"] == "UDP")),
                    "{what}: Service {svc} has no UDP 7946 (chitchat gossips over UDP)"
                );
            }
        }

        match role {
            "ingester" => {
                assert_eq!(
                    kind, "StatefulSet",
                    "ingesters keep their names and volumes"
                );
                assert_eq!(w["spec"]["replicas"], 3);
                assert_eq!(
                    c.ring.instance_id.as_deref(),
                    Some(format!("{wname}-0").as_str()),
                    "{what}: --ingester.ring.instance-id=$(POD_NAME)"
                );
                assert_eq!(c.replication_factor(), 3);
                let claims: Vec<String> = w["spec"]["volumeClaimTemplates"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{what}: no volumeClaimTemplates"))
                    .iter()
                    .map(name_of)
                    .collect();
                assert!(
                    claims
                        .iter()
                        .any(|n| Some(n.as_str()) == data_mount["name"].as_str()),
                    "{what}: the data dir (WAL, tokens) is on a claim template: {claims:?}"
                );
                let service = w["spec"]["serviceName"].as_str().unwrap_or_default();
                assert!(
                    headless.contains(service),
                    "{what}: serviceName {service} is not a headless Service"
                );
                assert!(selects(&services[service]["spec"]["selector"], pod_labels));
                let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
                assert!(
                    grace >= 300,
                    "{what}: {grace}s is too short to flush on shutdown"
                );
            }
            "compactor" => {
                assert_eq!(kind, "Deployment");
                assert_eq!(w["spec"]["replicas"], 1, "{what}: one compactor");
                assert_eq!(
                    w["spec"]["strategy"]["type"], "Recreate",
                    "{what}: never two at once"
                );
            }
            _ => assert_eq!(kind, "Deployment", "{what}: stateless"),
        }
    }
    let want: BTreeSet<String> = CLUSTER_ROLES.iter().map(|r| r.to_string()).collect();
    assert_eq!(roles, want, "every cluster role is deployed");

    // Writes, queries and the rules API have Services that reach their pods.
    for (svc, role) in [
        ("distributor", "distributor"),
        ("query-frontend", "query-frontend"),
        ("ruler", "ruler"),
    ] {
        let s = services
            .get(svc)
            .unwrap_or_else(|| panic!("no Service {svc}"));
        let w = workloads
            .iter()
            .find(|w| name_of(w) == role)
            .unwrap_or_else(|| panic!("no workload {role}"));
        assert!(
            selects(
                &s["spec"]["selector"],
                &w["spec"]["template"]["metadata"]["labels"]
            ),
            "Service {svc} does not select the {role} pods"
        );
    }
}

/// The documents of `docs` of one kind.
fn of_kind<'a>(docs: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == kind)
        .collect()
}

/// `metadata.name`, or a volume's `name`.
fn name_of(d: &Value) -> String {
    d["metadata"]["name"]
        .as_str()
        .or_else(|| d["name"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Every panel of a dashboard, those inside rows included.
fn all_panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = d["panels"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    while let Some(p) = stack.pop() {
        if let Some(children) = p["panels"].as_array() {
            stack.extend(children.iter());
        }
        out.push(p);
    }
    out
}

fn dashboards() -> Vec<(String, Value)> {
    DASHBOARDS
        .iter()
        .map(|name| {
            let text = read(&format!("deploy/dashboards/{name}"));
            let d: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("deploy/dashboards/{name}: invalid JSON: {e}"));
            (name.to_string(), d)
        })
        .collect()
}

#[test]
fn grafana_provisioning_files_are_consistent() {
    let present: BTreeSet<String> = std::fs::read_dir(repo().join("deploy/dashboards"))
        .expect("deploy/dashboards")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let want: BTreeSet<String> = DASHBOARDS.iter().map(|d| d.to_string()).collect();
    assert_eq!(present, want, "the dashboards");

    let ds = yaml(
        &read("deploy/grafana/provisioning/datasources/muninn.yml"),
        "datasources/muninn.yml",
    );
    assert_eq!(ds["apiVersion"], 1);
    let sources = ds["datasources"].as_array().expect("datasources: a list");
    assert_eq!(sources.len(), 1, "one datasource");
    let source = &sources[0];
    let uid = source["uid"].as_str().expect("the datasource has a uid");
    assert_eq!(source["type"], "prometheus");
    assert_eq!(source["url"], "http://query-frontend:9009/prometheus");
    assert_eq!(source["basicAuth"].as_bool(), Some(true));
    assert_eq!(
        source["basicAuthUser"], TENANT,
        "the tenant Prometheus writes as"
    );

    let compose = yaml(&read("docker-compose.yml"), "docker-compose.yml");
    let services = compose["services"].as_object().expect("services");
    assert!(services.contains_key("query-frontend"));
    let grafana = services.get("grafana").expect("a grafana service");
    let mounts: Vec<(String, String)> = str_list(&grafana["volumes"], "grafana: volumes")
        .iter()
        .map(|v| {
            let mut parts = v.split(':');
            (
                parts.next().unwrap_or_default().to_string(),
                parts.next().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        mounts.contains(&(
            "./deploy/grafana/provisioning".to_string(),
            "/etc/grafana/provisioning".to_string()
        )),
        "grafana mounts the provisioning directory: {mounts:?}"
    );
    let provider = yaml(
        &read("deploy/grafana/provisioning/dashboards/muninn.yml"),
        "dashboards/muninn.yml",
    );
    let providers = provider["providers"].as_array().expect("providers: a list");
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["type"], "file");
    let path = providers[0]["options"]["path"]
        .as_str()
        .expect("options.path");
    assert!(
        mounts.contains(&("./deploy/dashboards".to_string(), path.to_string())),
        "the provider loads {path}, where grafana mounts ./deploy/dashboards: {mounts:?}"
    );

    let readme = read("deploy/dashboards/README.md");
    let mut dashboard_uids = BTreeSet::new();
    for (name, d) in dashboards() {
        let duid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(
            dashboard_uids.insert(duid.to_string()),
            "{name}: uid {duid} used twice"
        );
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{name}: schemaVersion"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: title"
        );
        assert!(
            readme.contains(&name),
            "deploy/dashboards/README.md does not describe {name}"
        );
        let mut ids = BTreeSet::new();
        let mut with_queries = 0;
        for p in all_panels(&d) {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(p["id"].to_string()),
                "{name}: panel id {} twice",
                p["id"]
            );
            if p["type"] == "row" {
                continue;
            }
            with_queries += 1;
            assert_eq!(
                p["datasource"]["uid"].as_str(),
                Some(uid),
                "{name}: panel {title:?} does not use the provisioned datasource"
            );
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: panel {title:?} has no targets"));
            assert!(
                !targets.is_empty(),
                "{name}: panel {title:?} has no targets"
            );
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"].as_str(),
                    Some(uid),
                    "{name}: a target of {title:?} does not use the provisioned datasource"
                );
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                    "{name}: a target of {title:?} has no expr"
                );
            }
        }
        assert!(with_queries > 0, "{name}: no panels");
        for v in d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            if v["type"] == "query" {
                assert_eq!(
                    v["datasource"]["uid"].as_str(),
                    Some(uid),
                    "{name}: variable {} does not use the provisioned datasource",
                    v["name"]
                );
            }
        }
    }
}

/// The PromQL (and Grafana variable queries) of a dashboard.
fn dashboard_queries(d: &Value) -> Vec<String> {
    let mut out = vec![];
    for p in all_panels(d) {
        for t in p["targets"].as_array().cloned().unwrap_or_default() {
            if let Some(e) = t["expr"].as_str() {
                out.push(e.to_string());
            }
        }
    }
    for v in d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        match &v["query"] {
            Value::String(q) => out.push(q.clone()),
            q => {
                if let Some(s) = q["query"].as_str() {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

/// The `muninn_*` metric names a PromQL expression names: identifiers outside string
/// literals (label values) and Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' && c != b'`' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == b'$' {
            i += 1;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'{' || b[i] == b'}')
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("muninn_") {
                out.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Sample names a `/metrics` text (OpenMetrics, from prometheus_client) exposes, as a scraper
/// stores them: a counter family `x` as `x_total`, a histogram's as `x_bucket`, `x_sum`,
/// `x_count`; gauges as they are.
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(family), Some(kind)) = (it.next(), it.next()) {
                match kind {
                    "counter" => {
                        out.insert(format!("{family}_total"));
                    }
                    "histogram" | "gaugehistogram" => {
                        for s in ["_bucket", "_sum", "_count"] {
                            out.insert(format!("{family}{s}"));
                        }
                    }
                    "summary" => {
                        for s in ["", "_sum", "_count"] {
                            out.insert(format!("{family}{s}"));
                        }
                    }
                    "info" => {
                        out.insert(format!("{family}_info"));
                    }
                    _ => {
                        out.insert(family.to_string());
                    }
                }
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            out.insert(line[..end].to_string());
        }
    }
    out
}

#[test]
fn dashboard_metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"sum by (le, tenant) (rate(muninn_a_seconds_bucket{route=~"muninn_not_a_metric", x='muninn_nor_this'}[$__rate_interval])) / scalar(min(muninn_b)) + muninn_c_total offset 5m and on() label_values(muninn_d, tenant) > ${muninn_var}"#,
    );
    let want: BTreeSet<String> = [
        "muninn_a_seconds_bucket",
        "muninn_b",
        "muninn_c_total",
        "muninn_d",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names, want);
    let exposed = exposed_names(
        "# HELP muninn_x X.\n# TYPE muninn_x counter\nmuninn_x_total{tenant=\"a\"} 1\n# TYPE muninn_h histogram\nmuninn_h_bucket{le=\"+Inf\"} 0\n# TYPE muninn_g gauge\nmuninn_g 3\n# EOF\n",
    );
    for n in [
        "muninn_x_total",
        "muninn_h_bucket",
        "muninn_h_sum",
        "muninn_h_count",
        "muninn_g",
    ] {
        assert!(exposed.contains(n), "{n} in {exposed:?}");
    }
    assert!(
        !exposed.contains("muninn_x"),
        "a counter is stored as x_total only"
    );
}

const RULES: &str = r#"name: deploy
interval: 1s
limit: 1
rules:
  - record: deploy:up:sum
    expr: sum(deploy_up)
  # Two series over the group's limit of 1: fails every evaluation (counted).
  - record: deploy:up:copy
    expr: deploy_up
  - alert: DeployAlwaysFiring
    expr: vector(1)
"#;

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.to_string(),
        value: value.to_string(),
    }
}

#[test]
fn every_dashboard_metric_is_exposed_by_metrics() {
    // Metric name → the dashboards naming it.
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, d) in dashboards() {
        for q in dashboard_queries(&d) {
            for m in metric_names(&q) {
                wanted.entry(m).or_default().insert(name.clone());
            }
        }
    }
    assert!(
        wanted.len() >= 40,
        "the dashboards name only {} metrics",
        wanted.len()
    );

    // `muninn all`: every role in one process. Labelled families appear once they have a
    // sample, so each is provoked: head gauges at every cut interval, a compaction (two
    // overlapping blocks, sources deleted at once), rule evaluations (one rule failing, an
    // alert to an Alertmanager that is not there), exemplars, refused samples and pushes.
    let no_alertmanager = format!(
        "--ruler.alertmanager-url=http://127.0.0.1:{}",
        crate::harness::free_port()
    );
    let m = Muninn::all(&[
        "--ingester.cut-interval=1s",
        "--compactor.interval=1s",
        "--compactor.deletion-delay=0s",
        "--limits.max-global-exemplars-per-user=100",
        "--ruler.poll-interval=1s",
        "--ruler.resend-delay=1s",
        &no_alertmanager,
    ]);
    let now = now_ms();
    let samples: Vec<(i64, f64)> = (0..10)
        .map(|i| (now - 60_000 + i * 5_000, i as f64))
        .collect();
    let mut requests = series(
        &[("__name__", "deploy_requests_total"), ("job", "deploy")],
        &samples,
    );
    requests.exemplars = vec![
        Exemplar {
            labels: vec![label("trace_id", "0af7651916cd43dd8448eb211c80319c")],
            value: 9.0,
            timestamp: now - 15_000,
        },
        // Labels over OpenMetrics' 128 characters: dropped, counted by reason.
        Exemplar {
            labels: vec![label("trace_id", &"x".repeat(200))],
            value: 9.0,
            timestamp: now - 14_000,
        },
    ];
    let (s, body) = m.push(
        TENANT,
        &write_request(vec![
            series(&[("__name__", "deploy_up"), ("instance", "a")], &samples),
            series(&[("__name__", "deploy_up"), ("instance", "b")], &samples),
            requests,
        ]),
    );
    assert_eq!(s, 200, "{body}");
    let (s, body) = m.push(
        TENANT,
        &write_request(vec![series(
            &[("__name__", "deploy_up"), ("instance", "future")],
            &[(now + 3_600_000, 1.0)],
        )]),
    );
    assert_eq!(s, 400, "a sample an hour ahead is refused: {body}");
    let (s, body) = m.push_raw(
        None,
        &[],
        encode(&write_request(vec![series(
            &[("__name__", "deploy_up"), ("instance", "a")],
            &[(now, 1.0)],
        )])),
    );
    assert_eq!(s, 401, "no tenant: {body}");

    let mut resp = agent()
        .post(&format!("{}/prometheus/config/v1/rules/deploy", m.http))
        .header("X-Scope-OrgID", TENANT)
        .header("Content-Type", "application/yaml")
        .send(RULES)
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(
        status,
        202,
        "{}",
        resp.body_mut().read_to_string().unwrap_or_default()
    );

    let end = now_ms() / 1000;
    let (start_s, end_s) = ((end - 300).to_string(), end.to_string());
    let (s, v) = m.get(
        Some(TENANT),
        "/prometheus/api/v1/query_range",
        &[
            ("query", "sum(rate(deploy_requests_total[1m]))"),
            ("start", start_s.as_str()),
            ("end", end_s.as_str()),
            ("step", "15"),
        ],
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = m.get(
        Some(TENANT),
        "/prometheus/api/v1/query",
        &[("query", "deploy_up")],
    );
    assert_eq!(s, 200, "{v}");

    // Two blocks over the same time range (the second holds a series the first lacks): the
    // compactor merges them.
    assert_eq!(m.flush_all(), 200);
    let (s, body) = m.push(
        TENANT,
        &write_request(vec![series(
            &[("__name__", "deploy_up"), ("instance", "c")],
            &samples,
        )]),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(m.flush_all(), 200);

    // What only a cluster shows: routing over the gossip ring (HA deduplication, an owner
    // that does not answer), in two ingesters.
    let c = Cluster::new();
    let flags = [
        "--ingester.ring.replication-factor=2",
        "--distributor.ha-tracker.enable=true",
    ];
    let a = c.ingester("a", &flags);
    let mut b = c.ingester("b", &flags);
    wait_active(&a, &["a", "b"]);
    wait_active(&b, &["a", "b"]);
    let ha_push = |replica: &str| {
        push_to(
            &a.http,
            TENANT,
            &write_request(vec![series(
                &[
                    ("__name__", "deploy_ha_up"),
                    ("__replica__", replica),
                    ("cluster", "prom"),
                ],
                &[(now_ms(), 1.0)],
            )]),
        )
    };
    let (s, body) = ha_push("r1");
    assert_eq!(s, 200, "{body}");
    let (s, body) = ha_push("r2");
    assert_eq!(s, 202, "the second replica's samples are dropped: {body}");
    b.kill9();
    wait_for(
        "a failed write to the killed ingester, counted by the router",
        Duration::from_secs(30),
        || {
            let _ = push_to(
                &a.http,
                TENANT,
                &write_request(vec![series(
                    &[("__name__", "deploy_up"), ("instance", "d")],
                    &[(now_ms(), 1.0)],
                )]),
            );
            a.metrics()
                .contains("muninn_distributor_owner_push_failures_total{")
                .then_some(())
        },
    );

    // A query frontend whose querier never answers, one slot, one request allowed to wait:
    // the third request of the tenant is refused (429).
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let downstream = format!(
        "--query-frontend.downstream-url=http://{}",
        hang.local_addr().unwrap()
    );
    let f = Muninn::start_in(
        "query-frontend",
        &c.dir.path().join("frontend"),
        &[
            &downstream,
            "--query-frontend.querier-concurrency=1",
            "--query-frontend.max-outstanding-requests-per-tenant=1",
            "--query-frontend.max-retries-per-request=0",
            "--querier.timeout=5s",
        ],
    );
    let url = format!("{}/prometheus/api/v1/query", f.http);
    let stuck: Vec<std::thread::JoinHandle<u16>> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                agent()
                    .get(url.as_str())
                    .query("query", "deploy_up")
                    .header("X-Scope-OrgID", TENANT)
                    .call()
                    .map_or(0, |r| r.status().as_u16())
            })
        })
        .collect();
    wait_for(
        "a request waiting in the frontend's queue",
        Duration::from_secs(10),
        || {
            f.metrics()
                .contains(&format!(
                    "muninn_frontend_queue_length{{tenant=\"{TENANT}\"}} 1"
                ))
                .then_some(())
        },
    );
    let (s, v) = f.get(
        Some(TENANT),
        "/prometheus/api/v1/query",
        &[("query", "deploy_up")],
    );
    assert_eq!(s, 429, "{v}");

    // Every name is exposed by one of the processes (the asynchronous ones within a minute).
    let mut fixed = exposed_names(&a.metrics());
    fixed.extend(exposed_names(&f.metrics()));
    let started = Instant::now();
    let missing = loop {
        let mut exposed = fixed.clone();
        exposed.extend(exposed_names(&m.metrics()));
        let missing: Vec<String> = wanted
            .iter()
            .filter(|(n, _)| !exposed.contains(n.as_str()))
            .map(|(n, ds)| {
                format!(
                    "{n} (in {})",
                    ds.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        if missing.is_empty() || started.elapsed() > Duration::from_secs(60) {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        missing.is_empty(),
        "dashboards name metrics no Muninn process exposes:\n{}",
        missing.join("\n")
    );
    drop(f);
    for t in stuck {
        let _ = t.join();
    }
}

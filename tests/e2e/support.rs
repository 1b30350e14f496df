//! Helpers shared by the e2e tests: the client, CRD installation, YAML loading, raw HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gamecell_operator::crds::{GameCell, MatchmakingPool, PlayerService};
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const FIELD_MANAGER: &str = "gamecell-e2e";

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A client for the local cluster, or a panic that says how to start it.
pub async fn client() -> Client {
    let hint = "no reachable cluster: run the e2e suite with `make e2e` (it starts the local control plane and sets KUBECONFIG)";
    assert!(std::env::var_os("KUBECONFIG").is_some(), "{hint}");
    let client = Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("{hint}: {e}"));
    client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("{hint}: {e}"));
    client
}

/// Every YAML document of a file, as JSON values (empty documents dropped).
pub fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// YAML files in a repository folder, sorted.
pub fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo_path(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Applies the committed CRD YAML (`config/crd/`) and waits until each is Established.
pub async fn install_crds(client: &Client) -> Vec<String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for file in yaml_files("config/crd") {
        for doc in yaml_documents(&file) {
            let crd: CustomResourceDefinition = serde_json::from_value(doc).expect("a CRD");
            let name = crd.name_any();
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
            names.push(name);
        }
    }
    for name in &names {
        wait_until(
            Duration::from_secs(30),
            &format!("CRD {name} Established"),
            || async {
                api.get_opt(name).await.ok().flatten().is_some_and(|crd| {
                    crd.status.and_then(|s| s.conditions).is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
                })
            },
        )
        .await;
    }
    names
}

/// Polls `check` every 200 ms until it holds, panicking after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The API resource of one of the operator's kinds.
pub fn api_resource(kind: &str) -> ApiResource {
    match kind {
        "GameCell" => ApiResource::erase::<GameCell>(&()),
        "PlayerService" => ApiResource::erase::<PlayerService>(&()),
        "MatchmakingPool" => ApiResource::erase::<MatchmakingPool>(&()),
        other => panic!("not a gamecell.dev kind: {other}"),
    }
}

/// A dynamic API for a manifest of one of the operator's kinds.
pub fn dynamic_api(client: &Client, manifest: &Value) -> Api<DynamicObject> {
    let ar = api_resource(manifest["kind"].as_str().unwrap_or_default());
    match manifest["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Creates a namespace if it does not exist.
pub async fn ensure_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(name).await.expect("read namespace").is_none() {
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
            .expect("namespace");
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating namespace {name}: {e}"),
        }
    }
}

/// The status code and body of a plain HTTP/1.1 GET to 127.0.0.1.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .ok()?
        .ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The operator binary running against the test cluster (and the emulator, through the
/// inherited `AWS_*` environment), killed on drop.
pub struct OperatorProcess {
    pub child: tokio::process::Child,
    pub port: u16,
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts the operator and waits until `/readyz` answers 200.
    pub async fn start(log_name: &str) -> Self {
        Self::start_with(log_name, &[]).await
    }

    /// Starts the operator with extra environment and waits until `/readyz` answers 200.
    pub async fn start_with(log_name: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = repo_path(&format!("target/{log_name}.log"));
        let file = std::fs::File::create(&log).expect("operator log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gamecell-operator"))
            .env("GAMECELL_ADMIN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::from(
                file.try_clone().expect("log handle"),
            ))
            .stderr(std::process::Stdio::from(file))
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .spawn()
            .expect("operator starts");
        wait_until(Duration::from_secs(60), "operator /readyz", || async {
            http_get(port, "/readyz")
                .await
                .is_some_and(|(code, _)| code == 200)
        })
        .await;
        Self { child, port, log }
    }

    /// The value of an unlabelled metric, e.g. `gamecell_operator_leader`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http_get(self.port, "/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The total of a labelled counter family, e.g. `gamecell_operator_reconciles_total`.
    pub async fn counter_sum(&self, name: &str) -> f64 {
        let Some((_, body)) = http_get(self.port, "/metrics").await else {
            return 0.0;
        };
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        assert!(
            matches!(status, Ok(Ok(s)) if s.success()),
            "operator did not stop cleanly: {status:?}; log: {}",
            self.log.display()
        );
    }
}

/// Whether an Event with `reason` was recorded about the object `name` in `namespace`.
pub async fn has_event(client: &Client, namespace: &str, name: &str, reason: &str) -> bool {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .is_ok_and(|l| l.items.iter().any(|e| e.reason.as_deref() == Some(reason)))
}

/// Waits up to 30 s for an Event with `reason` about `namespace`/`name`.
pub async fn wait_event(client: &Client, namespace: &str, name: &str, reason: &str) {
    wait_until(
        Duration::from_secs(30),
        &format!("an Event {reason} about {namespace}/{name}"),
        || has_event(client, namespace, name, reason),
    )
    .await;
}

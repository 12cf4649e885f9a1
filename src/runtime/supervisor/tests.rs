//! The supervisor's behaviours against the in-memory engine, on a real catalog and blob
//! store: crash backoff and giving up, adoption after a restart, a failed rollout keeping
//! the old version (and a crash after it restarting that version), retrying a failed rollout
//! once the runtime changes, eviction, and an engine that goes away and comes back. The same
//! behaviours run against Docker in `tests/api/deployments.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Supervisor, SupervisorError, SupervisorSettings};
use crate::blobs::BlobStore;
use crate::catalog::deployments::{self, Deployment, Desired, NewDeployment, State};
use crate::catalog::events::EventFilter;
use crate::catalog::{self, Actor};
use crate::domain::{AliasName, DeploymentName, GpuRequest, ModelName, NodeName, RelPath, Target, VersionName};
use crate::runtime::engine::memory::{Behaviour, MemoryEngine, version_of};
use crate::runtime::gpu::{GpuConfig, GpuInventory};
use crate::runtime::presets::RuntimeDraft;
use crate::runtime::spec::{GpuMode, SpecSettings};
use crate::runtime::traffic::Traffic;
use crate::tasks::AbortOnDrop;

const IMAGE: &str = "fake-server:1";
/// Long enough for any convergence here; a failure says what it waited for.
const PATIENCE: Duration = Duration::from_secs(15);

struct Hub {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    pool: catalog::Db,
    blobs: BlobStore,
    engine: Arc<MemoryEngine>,
    traffic: Arc<Traffic>,
    sv: Arc<Supervisor>,
    /// The reconcile loop; dropping it stops the loop (a process that ends).
    looping: Option<AbortOnDrop>,
}

fn settings() -> SupervisorSettings {
    SupervisorSettings {
        spec: SpecSettings { gpu_mode: GpuMode::None, owner: "test".into(), ..SpecSettings::default() },
        stop_grace_secs: 0,
        max_restarts: 3,
        backoff_base: Duration::from_millis(200),
        ..SupervisorSettings::default()
    }
}

fn fake_runtime(marker: &str) -> String {
    let draft = RuntimeDraft {
        image: IMAGE.into(),
        entrypoint: None,
        args: vec!["--port".into(), "{port}".into()],
        port: 8000,
        health_path: "/health".into(),
        startup_deadline_secs: 10,
        shm_size_bytes: 0,
        env: [("MARKER".to_owned(), marker.to_owned())].into(),
        openai: true,
        scratch_dirs: vec![],
        cache_dir: None,
    };
    serde_json::to_string(&draft).expect("a draft serializes")
}

/// A catalog with model `m`, published versions 1 and 2 (one small file each), alias
/// `prod` on 1, a runtime `fake`, and a supervisor over `engine` whose loop runs.
async fn hub(engine: Arc<MemoryEngine>, inventory: GpuInventory) -> Hub {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_owned();
    let pool = catalog::Db::Sqlite(catalog::open(&data.join("hangar.db")).await.expect("catalog"));
    let blobs = BlobStore::open(&data).expect("blob store");
    let actor = Actor::system();
    let model = ModelName::parse("m").expect("name");
    catalog::models::create(&pool, &actor, &model, "", &[]).await.expect("model");
    for version in ["1", "2"] {
        let version = VersionName::parse(version).expect("name");
        let new = catalog::versions::NewVersion { name: Some(version.clone()), ..Default::default() };
        catalog::versions::create(&pool, &actor, &model, new).await.expect("version");
        let bytes = Bytes::from(format!("weights of {version}"));
        let ingested =
            blobs.ingest(futures_util::stream::iter([Ok::<_, std::io::Error>(bytes)]), None).await.expect("ingest");
        let path = RelPath::parse("model.bin").expect("path");
        catalog::files::put(&pool, &actor, &model, &version, &path, &ingested.digest, ingested.size)
            .await
            .expect("file");
        catalog::versions::publish(&pool, &actor, &model, &version).await.expect("publish");
    }
    let prod = AliasName::parse("prod").expect("alias");
    catalog::aliases::set(&pool, &actor, &model, &prod, &VersionName::parse("1").expect("v")).await.expect("alias");
    catalog::runtimes::put(&pool, &actor, "fake", &fake_runtime("a")).await.expect("runtime");
    let traffic = Arc::new(Traffic::default());
    let mut hub = Hub {
        sv: Supervisor::new(
            pool.clone(),
            blobs.clone(),
            engine.clone(),
            inventory,
            settings(),
            data.clone(),
            traffic.clone(),
        ),
        _dir: dir,
        dir: data,
        pool,
        blobs,
        engine,
        traffic,
        looping: None,
    };
    hub.restart();
    hub
}

impl Hub {
    /// A new supervisor over the same catalog and engine, as after a restart of Hangar.
    fn restart(&mut self) {
        self.looping = None;
        self.sv = Supervisor::new(
            self.pool.clone(),
            self.blobs.clone(),
            self.engine.clone(),
            self.sv.inventory().clone(),
            settings(),
            self.dir.clone(),
            self.traffic.clone(),
        );
        self.looping = Some(AbortOnDrop(tokio::spawn(Arc::clone(&self.sv).run())));
    }

    async fn deploy(&self, name: &str, target: Target, gpus: Option<GpuRequest>, desired: Desired) -> DeploymentName {
        let name = DeploymentName::parse(name).expect("name");
        let new = NewDeployment {
            name: name.clone(),
            model: ModelName::parse("m").expect("name"),
            target,
            runtime: "fake".into(),
            gpu_request: gpus,
            env: Default::default(),
            args: vec![],
            autostart: true,
            idle_timeout_secs: None,
            desired,
            node: None,
        };
        self.sv.create(&Actor::system(), new).await.expect("create");
        name
    }

    async fn get(&self, name: &DeploymentName) -> Deployment {
        deployments::get(&self.pool, name).await.expect("deployment")
    }

    /// Waits until `name` satisfies `what`; panics with the last state seen otherwise.
    async fn until(&self, name: &DeploymentName, about: &str, what: impl Fn(&Deployment) -> bool) -> Deployment {
        let until = Instant::now() + PATIENCE;
        loop {
            let d = self.get(name).await;
            if what(&d) {
                return d;
            }
            assert!(Instant::now() < until, "waited for {about}; the deployment is {:?}", d.observed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn running(&self, name: &DeploymentName) -> Deployment {
        self.until(name, "running", |d| d.observed.state == State::Running && d.observed.container_id.is_some()).await
    }

    async fn actions(&self) -> Vec<String> {
        let filter = EventFilter { limit: 1000, ..EventFilter::default() };
        catalog::events::list(&self.pool, &filter).await.expect("events").into_iter().map(|e| e.action).collect()
    }

    async fn move_prod_to(&self, version: &str) {
        let model = ModelName::parse("m").expect("name");
        let prod = AliasName::parse("prod").expect("alias");
        let version = VersionName::parse(version).expect("version");
        catalog::aliases::set(&self.pool, &Actor::system(), &model, &prod, &version).await.expect("alias");
        self.sv.wake();
    }
}

fn version(v: &str) -> Target {
    Target::Version(VersionName::parse(v).expect("version"))
}

fn prod() -> Target {
    Target::Alias(AliasName::parse("prod").expect("alias"))
}

fn no_gpus() -> GpuInventory {
    GpuInventory::from_config(&[]).expect("inventory")
}

/// Every container serves, except those of a version `broken` names while it is set.
fn serving_unless(broken: Arc<AtomicBool>, version: &'static str) -> Arc<MemoryEngine> {
    MemoryEngine::new(&[IMAGE], move |spec| {
        if broken.load(Ordering::SeqCst) && version_of(spec) == Some(version) {
            Behaviour::Exit(1)
        } else {
            Behaviour::Serve
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_restarts_after_a_backoff_and_repeated_crashes_give_up_with_the_output() {
    let broken = Arc::new(AtomicBool::new(false));
    let hub = hub(serving_unless(broken.clone(), "1"), no_gpus()).await;
    let name = hub.deploy("chat", version("1"), None, Desired::Running).await;
    let first = hub.running(&name).await.observed.container_id.expect("container");

    let killed = Instant::now();
    hub.engine.kill(&first, 137);
    let d = hub.until(&name, "a restart", |d| d.observed.restarts == 1 && d.observed.state == State::Running).await;
    assert!(killed.elapsed() >= settings().backoff_base, "restarted after the backoff, not at once");
    assert_ne!(d.observed.container_id.as_deref(), Some(first.as_str()), "a new container");
    assert_eq!(hub.engine.containers_of("chat").len(), 1, "the crashed container is removed");

    // From now on every start of version 1 exits: the supervisor retries with a doubling
    // backoff, then gives up and says why, quoting the server's last output.
    broken.store(true, Ordering::SeqCst);
    hub.engine.kill(d.observed.container_id.as_deref().expect("container"), 1);
    let d = hub.until(&name, "failed", |d| d.observed.state == State::Failed).await;
    let reason = d.observed.reason.expect("a reason");
    assert!(reason.contains("exited with code 1, 4 times in a row; gave up"), "{reason}");
    assert!(reason.contains("cannot load the model"), "the output is quoted: {reason}");
    assert_eq!(hub.engine.creates().len(), 4, "the first start, one good restart, two that failed");
    assert!(hub.engine.containers_of("chat").is_empty(), "nothing left behind");
    assert!(d.observed.gpu_allocation.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_running_containers_are_adopted_and_strays_removed() {
    let mut hub = hub(MemoryEngine::new(&[IMAGE], |_| Behaviour::Serve), no_gpus()).await;
    let chat = hub.deploy("chat", version("1"), None, Desired::Running).await;
    let half = hub.deploy("half", version("2"), None, Desired::Running).await;
    let chat_id = hub.running(&chat).await.observed.container_id.expect("container");
    let half_before = hub.running(&half).await;
    let half_id = half_before.observed.container_id.clone().expect("container");

    // Hangar stops; meanwhile one deployment's start had not finished its health wait (its
    // row says starting), and a container of a deployment deleted behind Hangar's back runs.
    hub.looping = None;
    let starting = deployments::Observed { state: State::Starting, ..half_before.observed.clone() };
    deployments::observe(&hub.pool, &half, &starting).await.expect("observe");
    catalog::on_db!(&hub.pool, |pool| sqlx::query("DELETE FROM deployments WHERE name = 'chat'")
        .execute(pool)
        .await
        .map(drop))
    .expect("delete");
    let creates = hub.engine.creates().len();

    hub.restart();
    let d = hub.running(&half).await;
    assert_eq!(d.observed.container_id.as_deref(), Some(half_id.as_str()), "adopted, not restarted");
    let until = Instant::now() + PATIENCE;
    while !hub.engine.containers_of("chat").is_empty() {
        assert!(Instant::now() < until, "the stray container of 'chat' ({chat_id}) is still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A few more passes change nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.engine.creates().len(), creates, "no container was started after the restart");
    assert_eq!(hub.engine.containers_of("half").len(), 1);
    assert_eq!(hub.get(&half).await.observed.state, State::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_keeps_the_old_version_and_a_crash_then_restarts_that_version() {
    let broken = Arc::new(AtomicBool::new(true));
    let hub = hub(serving_unless(broken.clone(), "2"), no_gpus()).await;
    let name = hub.deploy("chat", prod(), None, Desired::Running).await;
    let before = hub.running(&name).await;
    assert_eq!(before.observed.serving_version.as_deref(), Some("1"));
    let old = before.observed.container_id.clone().expect("container");

    hub.move_prod_to("2").await;
    let d = hub
        .until(&name, "the failed rollout reported", |d| {
            d.observed.reason.as_deref().is_some_and(|r| r.starts_with("rollout to version 2 failed"))
        })
        .await;
    let reason = d.observed.reason.clone().expect("reason");
    assert!(reason.contains("version 1 keeps serving"), "{reason}");
    assert_eq!(d.observed.state, State::Running);
    assert_eq!(d.observed.serving_version.as_deref(), Some("1"));
    assert_eq!(d.observed.container_id.as_deref(), Some(old.as_str()), "the old container serves on");
    assert!(hub.actions().await.contains(&"deployment.rollout_failed".to_owned()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.engine.creates().len(), 2, "version 2 is not tried again while nothing changes");

    // The serving container crashes: version 1 starts again, not the version that failed,
    // and the failed rollout is still what the deployment reports.
    hub.engine.kill(&old, 139);
    let d = hub
        .until(&name, "running on a new container", |d| {
            d.observed.state == State::Running && d.observed.container_id.as_deref().is_some_and(|id| id != old)
        })
        .await;
    assert_eq!(d.observed.serving_version.as_deref(), Some("1"));
    let restarted = hub.engine.creates().last().cloned().expect("a create");
    assert_eq!(version_of(&restarted), Some("1"), "the version that was serving is the one restarted");
    assert_eq!(restarted.name, "hangar-chat");
    assert!(d.observed.reason.as_deref().is_some_and(|r| r.starts_with("rollout to version 2 failed")), "{d:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = hub.get(&name).await;
    assert_eq!(d.observed.state, State::Running, "not failed: {:?}", d.observed);
    assert_eq!(d.observed.serving_version.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_is_tried_again_when_the_runtime_changes() {
    let broken = Arc::new(AtomicBool::new(true));
    let hub = hub(serving_unless(broken.clone(), "2"), no_gpus()).await;
    let name = hub.deploy("chat", prod(), None, Desired::Running).await;
    hub.running(&name).await;
    hub.move_prod_to("2").await;
    hub.until(&name, "the failed rollout", |d| d.observed.reason.as_deref().is_some_and(|r| r.contains("failed")))
        .await;

    // Whatever made version 2 fail is fixed outside Hangar: nothing happens until the
    // runtime changes (an admin's fix) ...
    broken.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.get(&name).await.observed.serving_version.as_deref(), Some("1"));
    catalog::runtimes::put(&hub.pool, &Actor::system(), "fake", &fake_runtime("b")).await.expect("runtime");
    hub.sv.wake();
    // ... then the rollout runs again, and succeeds.
    let d = hub.until(&name, "serving version 2", |d| d.observed.serving_version.as_deref() == Some("2")).await;
    assert_eq!(d.observed.state, State::Running);
    assert_eq!(d.observed.reason, None, "the old report is gone");
    let last = hub.engine.creates().last().cloned().expect("a create");
    assert!(last.env.contains(&"MARKER=b".to_owned()), "started on the changed runtime: {:?}", last.env);
    let until = Instant::now() + PATIENCE;
    while hub.engine.containers_of("chat").len() != 1 {
        assert!(Instant::now() < until, "the old container is still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = d.observed.container_id.expect("container");
    assert_eq!(hub.engine.name_of(&id).as_deref(), Some("hangar-chat"), "the new container took the usual name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_evicts_the_least_recently_used_idle_deployment_and_never_a_busy_one() {
    let one_gpu = GpuInventory::from_config(&[GpuConfig {
        index: Some(0),
        uuid: None,
        name: Some("test".into()),
        memory_gib: Some(80.0),
    }])
    .expect("inventory");
    let hub = hub(MemoryEngine::new(&[IMAGE], |_| Behaviour::Serve), one_gpu).await;
    let gpu = Some(GpuRequest::Gpus(1));
    let a = hub.deploy("a", version("1"), gpu, Desired::Running).await;
    hub.running(&a).await;
    let b = hub.deploy("b", version("2"), gpu, Desired::Stopped).await;

    // While `a` has a request in flight, it is not taken from.
    let address = hub.get(&a).await.observed.address.expect("address");
    let in_flight = hub.traffic.begin("a", &address);
    let refused = hub.sv.ensure_running(&b, Duration::from_secs(5)).await.expect_err("no room");
    assert!(refused.to_string().contains("GPU"), "{refused}");
    assert_eq!(hub.get(&a).await.observed.state, State::Running);
    drop(in_flight);

    let (started, cold) = hub.sv.ensure_running(&b, PATIENCE).await.expect("evicts a");
    assert!(cold);
    assert_eq!(started.observed.state, State::Running);
    assert!(started.observed.gpu_allocation.is_some());
    let a_now = hub.until(&a, "stopped", |d| d.observed.state == State::Stopped).await;
    assert_eq!(a_now.desired, Desired::Stopped);
    assert_eq!(a_now.observed.reason.as_deref(), Some("stopped to make room for another deployment"));
    assert!(a_now.observed.gpu_allocation.is_none());
    assert!(hub.engine.containers_of("a").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_engine_is_down_nothing_fails_and_everything_converges_once_it_is_back() {
    let hub = hub(MemoryEngine::new(&[IMAGE], |_| Behaviour::Serve), no_gpus()).await;
    let chat = hub.deploy("chat", version("1"), None, Desired::Running).await;
    let old = hub.running(&chat).await.observed.container_id.expect("container");

    // Docker goes away; meanwhile the server crashes and a new deployment is asked for.
    hub.engine.set_up(false);
    hub.engine.kill(&old, 1);
    let late = hub.deploy("late", version("2"), None, Desired::Running).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A start that finds the engine gone (it went between the pass's look and the start) is
    // an error the loop retries, not a failed deployment.
    let refused = Arc::clone(&hub.sv).start_instance(hub.get(&late).await).await.expect_err("the engine is down");
    assert!(refused.to_string().contains("not reachable"), "{refused}");
    for name in [&chat, &late] {
        let d = hub.get(name).await;
        assert_ne!(d.observed.state, State::Failed, "{name} must not fail over an engine that is away: {d:?}");
    }

    hub.engine.set_up(true);
    let d = hub.until(&chat, "restarted", |d| d.observed.container_id.as_deref().is_some_and(|id| id != old)).await;
    let d = hub.running(&d.name).await;
    assert_eq!(d.observed.restarts, 1);
    hub.running(&late).await;
    assert_eq!(hub.engine.containers_of("chat").len(), 1);
    assert_eq!(hub.engine.containers_of("late").len(), 1);
}

#[tokio::test]
async fn placement_takes_the_node_with_room_and_each_node_converges_only_its_own_deployments() {
    let one_gpu = || {
        GpuInventory::from_config(&[GpuConfig { index: Some(0), uuid: None, name: Some("t".into()), memory_gib: None }])
            .expect("inventory")
    };
    let hub = hub(MemoryEngine::new(&[IMAGE], |_| Behaviour::Serve), one_gpu()).await;
    let b = NodeName::parse("b").expect("name");
    catalog::nodes::register(&hub.pool, &b, "http://10.0.0.2:8080", &one_gpu()).await.expect("b registers");
    let gpu = Some(GpuRequest::Gpus(1));

    // This node first while its GPU is free; then the other node, which this one never runs.
    let here = hub.deploy("here", version("1"), gpu, Desired::Running).await;
    assert_eq!(hub.running(&here).await.node.as_ref().map(NodeName::as_str), Some("local"));
    let there = hub.deploy("there", version("1"), gpu, Desired::Running).await;
    let placed = hub.get(&there).await;
    assert_eq!(placed.node.as_ref(), Some(&b));
    assert!(placed.observed.gpu_allocation.is_some(), "b's GPU is reserved at once");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.get(&there).await.observed.state, State::Pending, "left to b's supervisor");
    assert!(hub.engine.containers_of("there").is_empty(), "no container here for b's deployment");

    // Both full: refused with this node's reason; a node that stopped heartbeating is not tried.
    let new = NewDeployment { node: None, ..new_deployment("third", gpu) };
    let refused = hub.sv.create(&Actor::system(), new).await.expect_err("no room anywhere");
    assert!(refused.to_string().contains("GPU"), "{refused}");
    let old = catalog::timestamp(std::time::SystemTime::now() - Duration::from_secs(60));
    catalog::nodes::heartbeat(&hub.pool, &b).await.expect("beat");
    sqlx_set_heartbeat(&hub.pool, &old).await;
    let on_down = NewDeployment { node: Some(b.clone()), ..new_deployment("fourth", None) };
    let refused = hub.sv.create(&Actor::system(), on_down).await.expect_err("b is down");
    assert!(matches!(refused, SupervisorError::NodeDown(_)), "{refused}");

    // Moved away, this node's container of it goes; moved back, it starts here again.
    catalog::nodes::heartbeat(&hub.pool, &b).await.expect("b is back");
    hub.sv.delete(&Actor::system(), &there).await.expect("delete there");
    let moved = hub.sv.move_to(&Actor::system(), &here, &b).await.expect("move");
    assert_eq!((moved.node.as_ref(), moved.observed.state), (Some(&b), State::Pending));
    let until = Instant::now() + PATIENCE;
    while !hub.engine.containers_of("here").is_empty() {
        assert!(Instant::now() < until, "the container of a deployment moved away stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let local = NodeName::parse("local").expect("name");
    hub.sv.move_to(&Actor::system(), &here, &local).await.expect("move back");
    hub.running(&here).await;
    assert!(hub.actions().await.iter().filter(|a| *a == "deployment.moved").count() == 2);
}

fn new_deployment(name: &str, gpus: Option<GpuRequest>) -> NewDeployment {
    NewDeployment {
        name: DeploymentName::parse(name).expect("name"),
        model: ModelName::parse("m").expect("name"),
        target: version("1"),
        runtime: "fake".into(),
        gpu_request: gpus,
        env: Default::default(),
        args: vec![],
        autostart: false,
        idle_timeout_secs: None,
        desired: Desired::Running,
        node: None,
    }
}

async fn sqlx_set_heartbeat(pool: &catalog::Db, at: &str) {
    let catalog::Db::Sqlite(pool) = pool else { panic!("the unit tests' catalog is SQLite") };
    sqlx::query("UPDATE nodes SET heartbeat_at = $1 WHERE name = 'b'").bind(at).execute(pool).await.expect("age b");
}

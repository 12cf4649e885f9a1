//! Blobs in an S3-compatible bucket (`blob_store = "s3://…"`), against a real server: s3s-fs
//! (the s3s project's filesystem-backed S3 server, from crates.io), one process per test on a
//! free port with its own root dir. What the bucket holds is read back through the S3 API.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use hangar::blobs::BucketSettings;
use hangar::domain::{Digest, ModelName, RelPath, VersionName};
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore as _, ObjectStoreExt as _};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, sha256_digest, spawn_app_with, wait_until};
use crate::machine;

const ACCESS_KEY: &str = "hangar-tests";
const SECRET_KEY: &str = "hangar-tests-secret";
const BUCKET: &str = "models";
/// Every test's keys are under this prefix, so that a key outside it would show.
const PREFIX: &str = "team-hangar";
const MIB: usize = 1 << 20;

/// An s3s-fs process serving `BUCKET` from a temp dir; killed when dropped.
pub struct S3Server {
    child: Child,
    root: tempfile::TempDir,
    endpoint: String,
}

impl S3Server {
    pub async fn start() -> Self {
        let binary = machine::s3s_fs();
        let root = tempfile::tempdir().expect("server root");
        // s3s-fs serves each folder of its root as a bucket.
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket folder");
        let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let server = Self { child, root, endpoint: format!("http://127.0.0.1:{port}") };
        wait_until("s3s-fs accepts connections", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        server
    }

    /// The settings a Hangar on this server's bucket gets (as `[s3]` in its config file).
    fn settings(&self) -> BucketSettings {
        let options = [
            ("endpoint", self.endpoint.as_str()),
            ("access_key_id", ACCESS_KEY),
            ("secret_access_key", SECRET_KEY),
            ("region", "us-east-1"),
            ("allow_http", "true"),
        ];
        options
            .into_iter()
            .fold(BucketSettings::parse(&format!("s3://{BUCKET}/{PREFIX}")).expect("url"), |bucket, (key, value)| {
                bucket.with_option(key, value.to_owned()).expect("an S3 setting")
            })
    }

    /// The bucket's lines of a `hangar.toml`, for a server run as a process.
    pub fn config_toml(&self) -> String {
        format!(
            "blob_store = \"s3://{BUCKET}/{PREFIX}\"\n[s3]\nendpoint = \"{}\"\naccess_key_id = \"{ACCESS_KEY}\"\n\
             secret_access_key = \"{SECRET_KEY}\"\nregion = \"us-east-1\"\nallow_http = \"true\"\n",
            self.endpoint
        )
    }

    fn client(&self) -> object_store::aws::AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(&self.endpoint)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_region("us-east-1")
            .with_allow_http(true)
            .build()
            .expect("client")
    }

    /// Every key in the bucket, sorted.
    async fn keys(&self) -> Vec<String> {
        let listed: Vec<_> = self.client().list(None).try_collect().await.expect("list");
        let mut keys: Vec<String> = listed.into_iter().map(|meta| meta.location.to_string()).collect();
        keys.sort();
        keys
    }

    /// Where s3s-fs keeps an object's bytes, to damage one behind Hangar's back.
    fn object_file(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn digest_key(bytes: &[u8]) -> String {
    let hex = sha256_digest(bytes).trim_start_matches("sha256:").to_owned();
    format!("{PREFIX}/blobs/sha256/{}/{hex}", &hex[..2])
}

/// Bytes that differ along the file, so a part out of place would show.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8 ^ seed ^ (i >> 20) as u8).collect()
}

async fn app_on(server: &S3Server) -> TestApp {
    let bucket = server.settings();
    spawn_app_with(|settings| settings.blob_store = Some(bucket)).await
}

#[tokio::test]
async fn an_upload_lands_at_its_digest_key_and_downloads_whole_and_in_ranges() {
    let server = S3Server::start().await;
    let app = app_on(&server).await;
    // Larger than one multipart part (16 MiB), and a file that takes a single PUT.
    let big = pattern(40 * MIB + 123, 1);
    let small = b"{\"architectures\": []}".to_vec();
    app.published("team/m", &[("weights/model.safetensors", &big), ("config.json", &small)]).await;

    assert_eq!(server.keys().await, {
        let mut keys = vec![digest_key(&big), digest_key(&small)];
        keys.sort();
        keys
    });
    assert_eq!(app.blobs_on_disk(), 0, "nothing is cached before a deployment needs it");
    assert_eq!(app.tmp_entries(), 0);

    let url = app.url("/api/v1/models/team/m/versions/1/files/weights/model.safetensors");
    let whole = app.client.get(&url).send().await.expect("get");
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-length"], big.len().to_string());
    assert!(whole.bytes().await.expect("body") == big, "the whole file comes back byte for byte");
    let len = big.len();
    for (header, expected) in [
        ("bytes=0-9".to_owned(), &big[..10]),
        (format!("bytes={}-", len - 5), &big[len - 5..]),
        ("bytes=-7".to_owned(), &big[len - 7..]),
        ("bytes=16777200-16777300".to_owned(), &big[16_777_200..=16_777_300]),
    ] {
        let part = app.client.get(&url).header("range", &header).send().await.expect("range");
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{header}");
        assert_eq!(part.bytes().await.expect("body").as_ref(), expected, "{header}");
    }
    let hub = app.url("/hf/team/m/resolve/1/weights/model.safetensors");
    let part = app.client.get(&hub).header("range", "bytes=100-199").send().await.expect("hf range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.expect("body").as_ref(), &big[100..200]);

    // The same bytes again are found at their key, not written twice.
    app.create_version("team/m", "2").await;
    assert_eq!(app.upload("team/m", "2", "copy.safetensors", &big).await.status(), StatusCode::CREATED);
    assert_eq!(server.keys().await.len(), 2, "{:?}", server.keys().await);
    // Without a digest up front: a staging object, copied to the digest's key, then deleted.
    let unnamed = pattern(17 * MIB, 8);
    let url = app.url("/api/v1/models/team/m/versions/2/files/unnamed.bin");
    let put = app.client.put(url).body(unnamed.clone()).send().await.expect("put");
    assert_eq!(put.status(), StatusCode::CREATED);
    assert!(server.keys().await.contains(&digest_key(&unnamed)), "{:?}", server.keys().await);
    assert_eq!(server.keys().await.len(), 3, "no staging object is left: {:?}", server.keys().await);
    let download = app.get("/api/v1/models/team/m/versions/2/files/unnamed.bin").await;
    assert!(download.bytes().await.expect("body") == unnamed);
}

#[tokio::test]
async fn a_body_that_does_not_match_its_digest_or_is_cut_off_leaves_nothing_in_the_bucket() {
    let server = S3Server::start().await;
    let app = app_on(&server).await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    for len in [1000, 20 * MIB] {
        let bytes = pattern(len, 2);
        let url = app.url(&format!("/api/v1/models/m/versions/1/files/a.bin?digest={}", sha256_digest(b"other")));
        let refused = app.client.put(url).body(bytes).send().await.expect("put");
        let detail = problem(refused, StatusCode::BAD_REQUEST).await;
        assert!(detail.contains("nothing was stored"), "{detail}");
        assert_eq!(server.keys().await, Vec::<String>::new(), "{len} bytes");
        // Nor a multipart upload's parts, which a listing would not show: they were aborted.
        assert_eq!(crate::helpers::count_files(server.root.path()), 0, "{len} bytes");
    }

    // A client that goes away after 20 MiB, with a multipart upload under way.
    let chunks = (0..20)
        .map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; MIB])))
        .chain([Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the client went away"))]);
    let url = app.url("/api/v1/models/m/versions/1/files/cut.bin");
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let _ = app.client.put(url).body(body).send().await;
    let blobs = app.blobs.clone();
    wait_until("the cut upload is cleaned up", Duration::from_secs(10), || blobs.tmp_entries().unwrap_or(1) == 0).await;
    assert_eq!(server.keys().await, Vec::<String>::new());
    wait_until("the cut upload's parts are aborted", Duration::from_secs(10), || {
        crate::helpers::count_files(server.root.path()) == 0
    })
    .await;
}

#[tokio::test]
async fn a_file_sent_in_parts_is_stored_in_the_bucket() {
    let server = S3Server::start().await;
    let app = app_on(&server).await;
    app.create_model("team/big").await;
    app.create_version("team/big", "1").await;
    let bytes = pattern(2 * MIB + 17, 3);
    let body = json!({"path": "model.bin", "size": bytes.len(), "digest": sha256_digest(&bytes), "part_size": MIB});
    let session: Value =
        app.post_json("/api/v1/models/team/big/versions/1/uploads", &body).await.json().await.expect("json");
    let id = session["id"].as_str().expect("id").to_owned();
    for n in [2, 0, 1] {
        let url = app.url(&format!("/api/v1/models/team/big/versions/1/uploads/{id}/parts/{n}"));
        let part = bytes[n * MIB..((n + 1) * MIB).min(bytes.len())].to_vec();
        assert_eq!(app.client.put(url).body(part).send().await.expect("part").status(), StatusCode::OK);
    }
    assert_eq!(server.keys().await, Vec::<String>::new(), "parts are kept on the data dir until the whole is in");
    let done = app.post_json(&format!("/api/v1/models/team/big/versions/1/uploads/{id}/complete"), &json!(null)).await;
    assert_eq!(done.status(), StatusCode::CREATED);
    assert_eq!(server.keys().await, vec![digest_key(&bytes)]);
    assert_eq!(std::fs::read_dir(app.data_dir.path().join("uploads")).expect("uploads").count(), 0);
    let download = app.get("/api/v1/models/team/big/versions/1/files/model.bin").await;
    assert!(download.bytes().await.expect("body") == bytes);
}

#[tokio::test]
async fn a_snapshot_links_blobs_fetched_into_the_local_cache_which_keeps_to_its_budget() {
    let server = S3Server::start().await;
    let mut bucket = server.settings();
    // Room for one version's blob at a time, so the second snapshot pushes the first out.
    bucket.cache_bytes = 3 * MIB as u64;
    let app = spawn_app_with(|settings| settings.blob_store = Some(bucket)).await;
    let (one, two) = (pattern(2 * MIB, 4), pattern(2 * MIB, 5));
    app.published("m", &[("model.bin", &one), ("again/model.bin", &one)]).await;
    app.create_version("m", "2").await;
    assert_eq!(app.upload("m", "2", "model.bin", &two).await.status(), StatusCode::CREATED);
    assert_eq!(app.publish("m", "2").await.status(), StatusCode::OK);

    let model = ModelName::parse("m").expect("model");
    let files = |bytes: &[u8], paths: &[&str]| -> Vec<(RelPath, Digest)> {
        let digest = Digest::parse(&sha256_digest(bytes)).expect("digest");
        paths.iter().map(|path| (RelPath::parse(path).expect("path"), digest)).collect()
    };
    let v1 = VersionName::parse("1").expect("version");
    // What the supervisor does before it starts a container.
    let snapshot = app.blobs.snapshot(&model, &v1, files(&one, &["model.bin", "again/model.bin"])).await.expect("v1");
    let cached = app.data_dir.path().join(digest_key(&one).trim_start_matches(&format!("{PREFIX}/")));
    assert_eq!(std::fs::metadata(&cached).expect("cached").nlink(), 3, "the cache and two links share one inode");
    assert!(std::fs::read(snapshot.join("again/model.bin")).expect("read") == one);

    // Version 1 is undeployed and its snapshot removed, as GC does for a deleted version.
    std::fs::remove_dir_all(&snapshot).expect("remove snapshot");
    let v2 = VersionName::parse("2").expect("version");
    let second = app.blobs.snapshot(&model, &v2, files(&two, &["model.bin"])).await.expect("v2");
    assert!(std::fs::read(second.join("model.bin")).expect("read") == two);
    assert!(!cached.exists(), "the least recently used blob no snapshot links left the cache");
    assert_eq!(app.blobs_on_disk(), 1);

    // Bytes damaged in the bucket are refused on their way into the cache, and nothing is kept.
    std::fs::write(server.object_file(&digest_key(&one)), pattern(2 * MIB, 9)).expect("damage");
    let err = app.blobs.snapshot(&model, &v1, files(&one, &["model.bin"])).await.expect_err("corrupt");
    assert!(err.to_string().contains("hashes to"), "{err}");
    assert!(!cached.exists() && !app.blobs.snapshot_path(&model, &v1).exists());
    assert_eq!(app.tmp_entries(), 0);
}

#[tokio::test]
async fn garbage_collection_deletes_from_the_bucket() {
    let server = S3Server::start().await;
    let app = app_on(&server).await;
    let kept = pattern(1000, 6);
    app.published("m", &[("kept.bin", &kept)]).await;
    app.create_version("m", "2").await;
    let dropped = pattern(3000, 7);
    assert_eq!(app.upload("m", "2", "dropped.bin", &dropped).await.status(), StatusCode::CREATED);
    assert_eq!(app.delete("/api/v1/models/m/versions/2/files/dropped.bin").await.status(), StatusCode::NO_CONTENT);
    // Bytes no row names (a crash between the copy and the commit) and a staging object left
    // by an upload cut off before its copy.
    let client = server.client();
    let orphan = b"orphan".to_vec();
    for key in [digest_key(&orphan), format!("{PREFIX}/tmp/left.part")] {
        client.put(&object_store::path::Path::from(key.as_str()), orphan.clone().into()).await.expect("put");
    }
    assert_eq!(server.keys().await.len(), 4);

    let url = crate::helpers::test_database_url(app.data_dir.path());
    let pool = hangar::catalog::connect(url.as_deref(), &app.data_dir.path().join("hangar.db")).await.expect("catalog");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let swept = hangar::gc::sweep(&pool, &app.blobs, 0).await.expect("sweep");
    assert_eq!((swept.unreferenced, swept.orphaned, swept.bucket_staging), (1, 1, 1), "{swept:?}");
    assert_eq!(server.keys().await, vec![digest_key(&kept)]);
    let download = app.get("/api/v1/models/m/versions/1/files/kept.bin").await;
    assert!(download.bytes().await.expect("body") == kept);
}

#[tokio::test]
async fn fsck_checks_the_rows_against_the_bucket() {
    let server = S3Server::start().await;
    let app = app_on(&server).await;
    let (gone, damaged, fine) = (pattern(100, 10), pattern(200, 11), pattern(300, 12));
    app.published("m", &[("gone.bin", &gone), ("damaged.bin", &damaged), ("fine.bin", &fine)]).await;
    let fsck = |args: &[&str]| {
        let store = format!("s3://{BUCKET}/{PREFIX}");
        let output = crate::helpers::admin_command(app.data_dir.path(), &["admin", "fsck", "--blob-store", &store])
            .args(args)
            .env("AWS_ENDPOINT_URL", &server.endpoint)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true")
            .output()
            .expect("run hangar admin fsck");
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.success(), format!("{}{}", text(&output.stdout), text(&output.stderr)))
    };
    let (ok, stdout) = fsck(&["--full"]);
    assert!(ok && stdout.contains("fsck: clean"), "{stdout}");

    let client = server.client();
    client.delete(&object_store::path::Path::from(digest_key(&gone))).await.expect("delete behind Hangar's back");
    std::fs::write(server.object_file(&digest_key(&damaged)), pattern(200, 13)).expect("same size, other bytes");
    let orphan = b"nobody names me".to_vec();
    client.put(&object_store::path::Path::from(digest_key(&orphan)), orphan.into()).await.expect("orphan");
    let (ok, stdout) = fsck(&["--full", "--grace-secs", "0"]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("is not in the bucket"), "{stdout}");
    for kind in ["missing-blob 1", "corrupt-blob 1", "orphan-blob 1"] {
        assert!(stdout.contains(kind), "{kind} in {stdout}");
    }
}

#[tokio::test]
async fn a_bucket_that_is_missing_or_refuses_the_credentials_stops_the_start() {
    let server = S3Server::start().await;
    let missing = BucketSettings { bucket: "no-such-bucket".into(), ..server.settings() };
    let refused = server.settings().with_option("secret_access_key", "wrong".into()).expect("setting");
    for bucket in [missing, refused] {
        let data_dir = tempfile::tempdir().expect("data dir");
        let settings = hangar::config::Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: data_dir.path().to_owned(),
            blob_store: Some(bucket.clone()),
            ..hangar::config::Settings::default()
        };
        let err = hangar::startup::Application::build(settings).await.err().expect("refused");
        assert!(format!("{err:#}").contains("cannot reach the blob store's bucket"), "{bucket:?}: {err:#}");
    }
}

#[tokio::test]
async fn presigned_downloads_redirect_to_the_bucket_which_honours_the_range() {
    let server = S3Server::start().await;
    let bucket = BucketSettings { presign_downloads: true, ..server.settings() };
    let app = spawn_app_with(|settings| settings.blob_store = Some(bucket)).await;
    let bytes = pattern(3 * MIB, 14);
    app.published("team/m", &[("model.bin", &bytes)]).await;

    let api = app.url("/api/v1/models/team/m/versions/1/files/model.bin");
    let hub = app.url("/hf/team/m/resolve/1/model.bin");
    let not_following = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    for url in [&api, &hub] {
        let found = not_following.get(url).bearer_auth(crate::helpers::ADMIN_TOKEN).send().await.expect("get");
        assert_eq!(found.status(), StatusCode::FOUND, "{url}");
        let location = found.headers()["location"].to_str().expect("ascii").to_owned();
        assert!(location.starts_with(&server.endpoint) && location.contains("X-Amz-Signature="), "{location}");
        // reqwest drops the Hangar token when the redirect leaves for another port.
        let whole = app.client.get(url).send().await.expect("get");
        assert_eq!(whole.status(), StatusCode::OK, "{url}");
        assert!(whole.bytes().await.expect("body") == bytes, "{url}");
        let part = app.client.get(url).header("range", "bytes=1048570-1048580").send().await.expect("range");
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{url}");
        assert_eq!(part.bytes().await.expect("body").as_ref(), &bytes[1_048_570..=1_048_580], "{url}");
    }
    // HEAD still answers from Hangar, with the size and digest a client checks.
    let head = app.client.head(&hub).send().await.expect("head");
    assert_eq!((head.status(), head.headers()["x-linked-size"].to_str().ok()), (StatusCode::OK, Some("3145728")));
}

#[tokio::test]
async fn with_copy_if_not_exists_the_server_itself_refuses_a_copy_onto_an_existing_key() {
    let server = S3Server::start().await;
    let bucket = server.settings().with_option("copy_if_not_exists", "multipart".into()).expect("setting");
    let app = spawn_app_with(|settings| settings.blob_store = Some(bucket)).await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    let bytes = pattern(3 * MIB, 15);
    let put = |path: &str| {
        let url = app.url(&format!("/api/v1/models/m/versions/1/files/{path}"));
        app.client.put(url).body(bytes.clone()).send()
    };
    assert_eq!(put("a.bin").await.expect("put").status(), StatusCode::CREATED);
    let object = server.object_file(&digest_key(&bytes));
    let stamp = |meta: std::fs::Metadata| (meta.ino(), meta.mtime(), meta.mtime_nsec());
    let first = stamp(std::fs::metadata(&object).expect("object"));
    // The same bytes without a digest: staged, and the copy onto the existing key refused.
    assert_eq!(put("b.bin").await.expect("put").status(), StatusCode::CREATED);
    assert_eq!(stamp(std::fs::metadata(&object).expect("object")), first, "the object was not written again");
    assert_eq!(server.keys().await, vec![digest_key(&bytes)], "no staging object is left");
    let download = app.get("/api/v1/models/m/versions/1/files/b.bin").await;
    assert!(download.bytes().await.expect("body") == bytes);
}

#[tokio::test]
async fn a_deployment_serves_the_bytes_its_snapshot_linked_from_the_local_cache() {
    use crate::deployments::{deploy, docker_ready, prepare, unique, wait_for};
    if !docker_ready() {
        return;
    }
    let server = S3Server::start().await;
    let app = app_on(&server).await;
    let name = unique("s3");
    prepare(&app, "m", "test", &[], 30).await;
    assert_eq!(app.blobs_on_disk(), 0, "the bytes are only in the bucket");
    deploy(&app, &name, "m", "test").await;
    let running = wait_for(&app, &name, "running", Duration::from_secs(60)).await;

    let address = running["address"].as_str().expect("address");
    let answer: Value = reqwest::Client::new()
        .post(format!("http://{address}/v1/chat/completions"))
        .json(&json!({"model": name, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("chat")
        .json()
        .await
        .expect("json");
    let weights = b"the weights of version one";
    let content = answer["choices"][0]["message"]["content"].as_str().expect("content");
    assert!(content.contains(&sha256_digest(weights)), "the container read the bytes: {content}");
    let linked = app.data_dir.path().join("snapshots/m/1/weights.bin");
    assert_eq!(std::fs::metadata(linked).expect("snapshot").nlink(), 2, "a hardlink into the local cache");
    let cached = app.data_dir.path().join(digest_key(weights).trim_start_matches(&format!("{PREFIX}/")));
    assert!(cached.is_file(), "{}", cached.display());

    let stop = app.client.post(app.url(&format!("/api/v1/deployments/{name}/stop"))).send().await.expect("stop");
    assert_eq!(stop.status(), StatusCode::ACCEPTED);
    wait_for(&app, &name, "stopped", Duration::from_secs(30)).await;
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
}

//! TLS end to end: throwaway CAs made here at run time, the server serving HTTPS (in this
//! process, or as a `hangar serve` process for SIGHUP), the CLI trusting a private CA through
//! `HANGAR_CA_CERT`, a wrong CA refused in one clear line, webhooks delivered to an HTTPS
//! receiver a private CA vouches for (and refused, saying why, without that CA), and
//! `X-Forwarded-For` believed only from trusted proxies.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hangar::config::{Settings, TlsFiles};
use hangar::forwarded::Cidr;
use hangar::startup::Application;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, ServerProcess, hangar_command, spawn_app_with};
use crate::webhooks::{Receiver, SECRET, allow_private, create_webhook, signature, wait_for_deliveries};

/// A CA and a server certificate it signed for 127.0.0.1, as PEM files in `dir`.
pub struct Pki {
    pub ca: PathBuf,
    pub files: TlsFiles,
}

pub fn make_pki(dir: &Path, name: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let ca = dir.join(format!("{name}-ca.pem"));
    let files = TlsFiles { cert: dir.join(format!("{name}-cert.pem")), key: dir.join(format!("{name}-key.pem")) };
    std::fs::write(&ca, ca_cert.pem()).expect("write CA");
    std::fs::write(&files.cert, cert.pem()).expect("write cert");
    std::fs::write(&files.key, key.serialize_pem()).expect("write key");
    Pki { ca, files }
}

/// A rustls config serving `files`, made with rustls alone (not Hangar's loader), for servers
/// the tests stand up themselves.
pub fn server_tls(files: &TlsFiles) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .expect("read cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert pem");
    let key = PrivateKeyDer::from_pem_file(&files.key).expect("key pem");
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config")
}

fn trusting(ca: &Path) -> reqwest::Client {
    hangar::tls::install_provider();
    let pem = std::fs::read(ca).expect("read CA");
    let cert = reqwest::Certificate::from_pem(&pem).expect("CA pem");
    reqwest::Client::builder().tls_certs_only([cert]).build().expect("client")
}

async fn cli(ca: &Path, url: &str, args: &[&str]) -> std::process::Output {
    let mut command = hangar_command();
    command
        .env("HANGAR_URL", url)
        .env("HANGAR_TOKEN", ADMIN_TOKEN)
        .env("HANGAR_CA_CERT", ca)
        .env_remove("RUST_LOG")
        .args(args)
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run hangar")
}

#[tokio::test]
async fn the_cli_pushes_and_pulls_over_https_trusting_a_private_ca() {
    let work = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(work.path(), "good");
    let files = pki.files.clone();
    let app = spawn_app_with(move |s| s.tls = Some(files)).await;
    let url = format!("https://127.0.0.1:{}", app.port);

    let answer = trusting(&pki.ca).get(format!("{url}/api/v1/models")).bearer_auth(ADMIN_TOKEN).send().await;
    let answer = answer.expect("https request");
    assert_eq!(answer.status(), StatusCode::OK);
    let hsts = answer.headers().get("strict-transport-security").expect("HSTS over https");
    assert!(hsts.to_str().expect("ascii").starts_with("max-age="));

    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("weights.bin"), b"tls weights").expect("write");
    let pushed = cli(&pki.ca, &url, &["push", "--json", "--model", "team/tls", src.to_str().expect("utf-8")]).await;
    assert_eq!(pushed.status.code(), Some(0), "{}", String::from_utf8_lossy(&pushed.stderr));
    let pushed: Value = serde_json::from_slice(&pushed.stdout).expect("json");
    assert_eq!(pushed["version"], "1");

    let dest = work.path().join("dest");
    let pulled = cli(&pki.ca, &url, &["pull", "team/tls:1", dest.to_str().expect("utf-8")]).await;
    assert_eq!(pulled.status.code(), Some(0), "{}", String::from_utf8_lossy(&pulled.stderr));
    assert_eq!(std::fs::read(dest.join("weights.bin")).expect("pulled file"), b"tls weights");
}

#[tokio::test]
async fn a_wrong_ca_is_refused_in_one_clear_line() {
    let work = tempfile::tempdir().expect("tempdir");
    let served = make_pki(work.path(), "served");
    let other = make_pki(work.path(), "other");
    let files = served.files.clone();
    let app = spawn_app_with(move |s| s.tls = Some(files)).await;
    let url = format!("https://127.0.0.1:{}", app.port);

    let refused = cli(&other.ca, &url, &["ls"]).await;
    assert_ne!(refused.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line, not a chain: {stderr}");
    assert!(stderr.contains("is not trusted"), "{stderr}");
    assert!(stderr.contains("--ca-cert / HANGAR_CA_CERT"), "{stderr}");
}

#[tokio::test]
async fn sighup_swaps_in_a_renewed_certificate_without_a_restart() {
    let work = tempfile::tempdir().expect("tempdir");
    let first = make_pki(work.path(), "first");
    let renewed = make_pki(work.path(), "renewed");
    let data = work.path().join("data");
    let (cert, key) = (work.path().join("cert.pem"), work.path().join("key.pem"));
    std::fs::copy(&first.files.cert, &cert).expect("copy");
    std::fs::copy(&first.files.key, &key).expect("copy");
    let server = ServerProcess::start_with(
        &data,
        &["--tls-cert", cert.to_str().expect("utf-8"), "--tls-key", key.to_str().expect("utf-8")],
    );
    assert!(server.address.starts_with("https://"), "{}", server.address);
    let probe = format!("https://127.0.0.1:{}/healthz", server.port);
    let old = trusting(&first.ca).get(&probe).send().await.expect("old cert served");
    assert!(old.status().is_success());
    assert!(trusting(&renewed.ca).get(&probe).send().await.is_err(), "not yet renewed");

    std::fs::copy(&renewed.files.cert, &cert).expect("copy");
    std::fs::copy(&renewed.files.key, &key).expect("copy");
    server.signal("HUP");
    let client = trusting(&renewed.ca);
    let mut swapped = false;
    for _ in 0..50 {
        if client.get(&probe).send().await.is_ok_and(|r| r.status().is_success()) {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swapped, "the renewed certificate is served after SIGHUP");
    assert!(trusting(&first.ca).get(&probe).send().await.is_err(), "the old one is gone");
}

/// Eleven failed logins from one claimed address: limited only if that claim is believed.
async fn limited_by_forwarded_address(trusted: Vec<Cidr>) -> bool {
    let app = spawn_app_with(move |s| s.trusted_proxies = trusted).await;
    let client = reqwest::Client::new();
    let login = |user: String, forwarded: &'static str| {
        client
            .post(app.url("/api/v1/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"user": user, "password": "wrong password"}))
            .send()
    };
    // Distinct users, so only the address key can trip the limiter.
    for i in 0..10 {
        let status = login(format!("nobody{i}"), "203.0.113.7").await.expect("login").status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let other = login("someone".to_owned(), "198.51.100.9").await.expect("login").status();
    other == StatusCode::TOO_MANY_REQUESTS
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let loopback = Cidr::parse("127.0.0.0/8").expect("cidr");
    // From a trusted proxy each client is its own key: another address is not limited.
    assert!(!limited_by_forwarded_address(vec![loopback]).await);
    // From anyone else the header is ignored: every attempt is the peer's, which is limited.
    assert!(limited_by_forwarded_address(Vec::new()).await);
}

#[tokio::test]
async fn the_audit_log_records_the_forwarded_address_from_a_trusted_proxy() {
    let loopback = Cidr::parse("127.0.0.1").expect("cidr");
    let app = spawn_app_with(move |s| s.trusted_proxies = vec![loopback]).await;
    let created = app
        .client
        .post(app.url("/api/v1/models"))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"name": "team/audited"}))
        .send()
        .await
        .expect("create");
    assert!(created.status().is_success());
    let events = app.get("/api/v1/events").await.text().await.expect("events");
    assert!(events.contains("203.0.113.7"), "{events}");
}

#[tokio::test]
async fn the_official_openai_client_chats_and_streams_through_the_gateway_over_https() {
    if !crate::deployments::docker_ready() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(work.path(), "gateway");
    let files = pki.files.clone();
    let mut app = spawn_app_with(move |s| s.tls = Some(files)).await;
    // The test's own calls go over HTTPS too, trusting the CA.
    app.address = format!("https://127.0.0.1:{}", app.port);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}").parse().expect("header"));
    let pem = std::fs::read(&pki.ca).expect("read CA");
    app.client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA pem")])
        .default_headers(headers)
        .build()
        .expect("client");
    let name = crate::gateway::running_on(&app, &["--token-delay-ms", "150"]).await;

    crate::gateway::openai_chats_with(&app, &name, Some(pki.ca.clone())).await;
}

#[tokio::test]
async fn a_webhook_reaches_an_https_receiver_signed_by_the_private_ca_hangar_is_given() {
    let work = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(work.path(), "receiver");
    let receiver = Receiver::start_https(&[], server_tls(&pki.files));
    assert!(receiver.url.starts_with("https://127.0.0.1:"), "{}", receiver.url);
    let ca = pki.ca.clone();
    let app = spawn_app_with(move |s| {
        allow_private(s);
        s.ca_cert = Some(ca);
    })
    .await;
    let hook = create_webhook(&app, json!({"url": receiver.url, "events": ["model.created"], "secret": SECRET})).await;

    app.create_model("private-ca").await;
    let got = receiver.wait_for(1).await;
    let request = &got[0];
    assert_eq!(request.header("x-hangar-event"), "model.created");
    assert_eq!(request.header("x-hangar-signature"), signature(SECRET, &request.body));
    assert_eq!(request.json()["model"], "private-ca");
    let listed = wait_for_deliveries(&app, &hook, "the delivery is recorded delivered", |items| {
        items.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(listed[0]["response_status"], 200);
    assert_eq!(listed[0]["uuid"], request.header("x-hangar-delivery"));
}

#[tokio::test]
async fn without_the_ca_a_delivery_to_an_https_receiver_fails_naming_the_certificate_problem() {
    let work = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(work.path(), "unknown");
    let receiver = Receiver::start_https(&[], server_tls(&pki.files));
    let app = spawn_app_with(|s| {
        allow_private(s);
        s.webhook_max_attempts = 1;
    })
    .await;
    let hook = create_webhook(&app, json!({"url": receiver.url, "events": ["model.created"], "secret": SECRET})).await;

    app.create_model("no-ca").await;
    let listed = wait_for_deliveries(&app, &hook, "the delivery has failed", |items| {
        items.first().is_some_and(|d| d["status"] == "failed")
    })
    .await;
    // The problem and the fix, in one line: nothing of rustls's or hyper's error chain.
    assert_eq!(
        listed[0]["error"],
        "the receiver's TLS certificate is not trusted (UnknownIssuer); \
         if a private CA signed it, give Hangar that CA with ca_cert / HANGAR_CA_CERT"
    );
    assert!(listed[0]["response_status"].is_null());
    assert!(receiver.received().is_empty(), "no request got past the handshake");
}

#[tokio::test]
async fn a_ca_cert_that_holds_no_certificate_stops_the_start_saying_so() {
    let work = tempfile::tempdir().expect("tempdir");
    let not_pem = work.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").expect("write");
    let settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: work.path().join("data"),
        ca_cert: Some(not_pem.clone()),
        ..Settings::default()
    };
    let Err(err) = Application::build(settings).await else { panic!("started with a CA file holding no certificate") };
    assert_eq!(
        format!("{err:#}"),
        format!("ca_cert (--ca-cert / HANGAR_CA_CERT) {}: no PEM certificate in it", not_pem.display())
    );
}

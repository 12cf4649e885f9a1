//! What the tests need from the machine beyond Rust and Docker, set up by the tests themselves
//! so that `cargo test` on a fresh clone passes: Debian's Chromium and its driver, and nginx
//! for the README's reverse-proxy example (installed with apt when the tests run as root,
//! otherwise a panic saying what to install), and a Python
//! environment under the target dir holding `tests/python/requirements.txt`.
//!
//! The environment is named by a hash of that file, so a changed list makes a new one, and it
//! is checked by importing every package on each run: a broken or half-made one is rebuilt,
//! never trusted because it exists.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest as _, Sha256};

const REQUIREMENTS: &str = include_str!("../python/requirements.txt");

/// The import names of the packages in `REQUIREMENTS`, for the check.
const IMPORTS: &str = "import openai, schemathesis, prometheus_client, openapi_python_client, huggingface_hub";

/// One apt run at a time within this test process (apt holds its own lock across processes,
/// and fails rather than waits on it).
static APT: Mutex<()> = Mutex::new(());

/// Makes sure each of `commands` is on the PATH, installing `packages` with apt when one is
/// missing and this process may; otherwise panics with what to install.
fn debian_packages(commands: &[&str], packages: &[&str]) {
    let missing = || commands.iter().copied().filter(|c| !on_path(c)).collect::<Vec<_>>();
    if missing().is_empty() {
        return;
    }
    let _apt = APT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let absent = missing();
    if absent.is_empty() {
        return;
    }
    apt_install(packages, &format!("these tests need {absent:?}"));
    let still = missing();
    assert!(still.is_empty(), "{still:?} still missing after installing {}", packages.join(" "));
}

/// Installs `packages` with apt, or panics saying `why` and what to install when this process
/// cannot.
fn apt_install(packages: &[&str], why: &str) {
    let wanted = packages.join(" ");
    if !running_as_root() || !on_path("apt-get") {
        panic!(
            "{why}: install them (Debian: `sudo apt-get install {wanted}`), or run the tests as root to have them installed"
        );
    }
    eprintln!("installing {wanted} for the tests ({why})");
    let update = Command::new("apt-get").args(["update", "-qq"]).status().expect("apt-get runs");
    assert!(update.success(), "apt-get update failed ({update}); the tests need {wanted}");
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("apt-get runs");
    assert!(install.success(), "apt-get install {wanted} failed ({install})");
}

/// Chromium and chromedriver, for the dashboard's browser tests.
pub fn chromium() {
    debian_packages(&["chromium", "chromedriver"], &["chromium", "chromium-driver"]);
}

/// nginx, for the README's reverse-proxy example: its path. Debian puts it in /usr/sbin,
/// which a non-root user's PATH may lack.
pub fn nginx() -> PathBuf {
    let found = || {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .chain([PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    };
    if let Some(path) = found() {
        return path;
    }
    let _apt = APT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = found() {
        return path;
    }
    apt_install(&["nginx-light"], "the reverse-proxy test runs the README's example in nginx");
    found().expect("nginx still missing after installing nginx-light")
}

/// The Python interpreter of the tests' environment.
pub fn python() -> PathBuf {
    environment().join("bin/python")
}

/// A command installed into the tests' Python environment (`schemathesis`,
/// `openapi-python-client`).
pub fn python_tool(name: &str) -> PathBuf {
    environment().join("bin").join(name)
}

/// The environment's directory, made on first use in this process.
fn environment() -> &'static Path {
    static MADE: OnceLock<PathBuf> = OnceLock::new();
    MADE.get_or_init(|| {
        let hash = hex::encode(Sha256::digest(REQUIREMENTS.as_bytes()));
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("python-{}", &hash[..16]));
        if !(dir.join(FINISHED).exists() && imports_work(&dir)) {
            make_environment(&dir);
        }
        assert!(imports_work(&dir), "the tests' Python environment at {} cannot `{IMPORTS}`", dir.display());
        dir
    })
}

/// Written last, so that a run cut off half-way leaves an environment that is rebuilt.
const FINISHED: &str = "hangar-tests-finished";

fn make_environment(dir: &Path) {
    debian_packages(&["python3"], &["python3"]);
    let _ = std::fs::remove_dir_all(dir);
    if !run(Command::new("python3").args(["-m", "venv"]).arg(dir)) {
        // Debian ships venv's pip bootstrap in a package of its own.
        let _ = std::fs::remove_dir_all(dir);
        let _apt = APT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        apt_install(&["python3-venv"], "python3 -m venv fails without it");
        assert!(run(Command::new("python3").args(["-m", "venv"]).arg(dir)), "python3 -m venv failed");
    }
    let requirements = dir.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).expect("write requirements");
    eprintln!("installing the tests' Python packages into {}", dir.display());
    assert!(
        run(Command::new(dir.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements)),
        "pip could not install tests/python/requirements.txt (PyPI must be reachable)"
    );
    std::fs::write(dir.join(FINISHED), "").expect("mark the environment finished");
}

fn imports_work(dir: &Path) -> bool {
    run(Command::new(dir.join("bin/python")).args(["-c", IMPORTS]))
}

/// Whether `command` ran and succeeded.
fn run(command: &mut Command) -> bool {
    command.status().is_ok_and(|s| s.success())
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The s3s-fs release the S3 tests run; `.ci/run` installs the same one.
pub const S3S_FS_VERSION: &str = "0.14.1";

/// The S3-compatible server of the S3 tests: s3s-fs (the s3s project's filesystem-backed
/// server), installed from crates.io into a folder named by its version under /var/tmp, as
/// `.ci/run` installs it, when it is not there yet (about 8 minutes on 2 cores).
pub fn s3s_fs() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let root = PathBuf::from(format!("/var/tmp/s3-server-s3s-fs-{S3S_FS_VERSION}"));
            let binary = root.join("bin/s3s-fs");
            if !binary.is_file() {
                eprintln!("installing s3s-fs {S3S_FS_VERSION} into {} for the S3 tests", root.display());
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                assert!(
                    run(Command::new(cargo)
                        .args(["install", "--locked", "--features", "binary", "--root"])
                        .arg(&root)
                        .arg(format!("s3s-fs@{S3S_FS_VERSION}"))),
                    "cargo install s3s-fs@{S3S_FS_VERSION} failed (crates.io must be reachable)"
                );
            }
            binary
        })
        .clone()
}

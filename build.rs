//! Stamps the build with the commit it was made from, for `hangar --version` and
//! `/api/v1/system`: `HANGAR_COMMIT` when the build sets it (the container image has no
//! `.git`), else what git says, else `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HANGAR_COMMIT");
    let commit = std::env::var("HANGAR_COMMIT").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| {
        watch_git();
        git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
    });
    println!("cargo:rustc-env=HANGAR_COMMIT={commit}");
}

/// Rebuilds when HEAD moves: HEAD itself, the branch it names, and the packed refs. Only
/// files that exist are named, since cargo reruns on every build for a missing one.
fn watch_git() {
    let files = ["HEAD", "packed-refs"].map(str::to_owned).into_iter().chain(git(&["symbolic-ref", "-q", "HEAD"]));
    for file in files {
        if let Some(path) = git(&["rev-parse", "--git-path", &file]).filter(|p| Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

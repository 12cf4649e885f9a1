//! Progress on stderr for long transfers: on a terminal, indicatif bars (one per file in
//! flight and a total); otherwise (CI logs, pipes) plain lines: one when a file starts, one
//! every few seconds for big files, and one when it is done, with its rate.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain-line file reports how far it is.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// Files smaller than this get no lines of their own.
const LINE_FROM: u64 = 16 << 20;

/// The progress of one transfer (a push's hashing or uploads, a pull's downloads).
#[derive(Clone)]
pub struct Progress {
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    Bars { multi: MultiProgress, total: ProgressBar },
    Lines { verb: &'static str, done_verb: &'static str },
}

/// One file of a transfer. Cheap to clone; every clone reports to the same bar or line.
#[derive(Clone)]
pub struct FileProgress {
    inner: FileMode,
}

#[derive(Clone)]
enum FileMode {
    Bar { bar: ProgressBar, total: ProgressBar },
    Line(Arc<LineFile>),
}

struct LineFile {
    verb: &'static str,
    done_verb: &'static str,
    path: String,
    size: u64,
    done: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rate for people"
    )]
    let per_sec = (bytes as f64 / secs) as u64;
    format!("{:.1} s, {}/s", elapsed.as_secs_f64(), HumanBytes(per_sec))
}

impl Progress {
    /// `verb` names the work ("uploading"), `done_verb` its end ("uploaded"); `total` is
    /// the byte count of all files together.
    pub fn new(verb: &'static str, done_verb: &'static str, total: u64) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { mode: Mode::Lines { verb, done_verb } };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bar = multi.add(ProgressBar::new(total));
        bar.set_style(style("{prefix:>12.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"));
        bar.set_prefix(verb);
        Self { mode: Mode::Bars { multi, total: bar } }
    }

    /// A file starts.
    pub fn file(&self, path: &str, size: u64) -> FileProgress {
        match &self.mode {
            Mode::Bars { multi, total } => {
                let bar = multi.insert_before(total, ProgressBar::new(size));
                bar.set_style(style("  {wide_msg} [{bar:20}] {bytes}/{total_bytes}"));
                bar.set_message(path.to_owned());
                FileProgress { inner: FileMode::Bar { bar, total: total.clone() } }
            }
            Mode::Lines { verb, done_verb } => {
                if size >= LINE_FROM {
                    eprintln!("{verb} {path} ({})", HumanBytes(size));
                }
                let now = Instant::now();
                FileProgress {
                    inner: FileMode::Line(Arc::new(LineFile {
                        verb,
                        done_verb,
                        path: path.to_owned(),
                        size,
                        done: AtomicU64::new(0),
                        started: now,
                        last_line: Mutex::new(now),
                    })),
                }
            }
        }
    }

    /// Bytes done that belong to no one file (hashing counts only the total).
    pub fn inc(&self, bytes: u64) {
        if let Mode::Bars { total, .. } = &self.mode {
            total.inc(bytes);
        }
    }

    /// Removes the bars; the summary is the caller's to print.
    pub fn finish(&self) {
        if let Mode::Bars { multi, total } = &self.mode {
            total.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants of this file; a typo shows as plain bars, not a failure.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

impl FileProgress {
    pub fn inc(&self, bytes: u64) {
        match &self.inner {
            FileMode::Bar { bar, total } => {
                bar.inc(bytes);
                total.inc(bytes);
            }
            FileMode::Line(line) => {
                let done = line.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
                if line.size < LINE_FROM {
                    return;
                }
                let Ok(mut last) = line.last_line.try_lock() else { return };
                if last.elapsed() >= LINE_EVERY && done < line.size {
                    *last = Instant::now();
                    #[expect(clippy::cast_precision_loss, reason = "a percentage for people")]
                    let percent = done as f64 * 100.0 / line.size as f64;
                    eprintln!(
                        "  {} {}: {percent:.0}% ({} of {})",
                        line.verb,
                        line.path,
                        HumanBytes(done),
                        HumanBytes(line.size)
                    );
                }
            }
        }
    }

    /// Bytes sent back for a retry: the bar goes back by them.
    pub fn rewind(&self, bytes: u64) {
        match &self.inner {
            FileMode::Bar { bar, total } => {
                bar.set_position(bar.position().saturating_sub(bytes));
                total.set_position(total.position().saturating_sub(bytes));
            }
            FileMode::Line(line) => {
                let _ = line.done.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| Some(d.saturating_sub(bytes)));
            }
        }
    }

    /// The file is done: its bar goes, or its final line is printed.
    pub fn finish(&self) {
        match &self.inner {
            FileMode::Bar { bar, .. } => bar.finish_and_clear(),
            FileMode::Line(line) if line.size >= LINE_FROM => {
                let done = line.done.load(Ordering::Relaxed);
                eprintln!(
                    "{} {} ({}, {})",
                    line.done_verb,
                    line.path,
                    HumanBytes(done),
                    rate(done, line.started.elapsed())
                );
            }
            // Small files: the command's summary counts them.
            FileMode::Line(_) => {}
        }
    }

    /// The file failed or was left: its bar goes, with nothing printed.
    pub fn abandon(&self) {
        if let FileMode::Bar { bar, .. } = &self.inner {
            bar.finish_and_clear();
        }
    }
}

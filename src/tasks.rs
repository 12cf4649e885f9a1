//! The server's background tasks (the supervisor's reconcile loop, garbage collection,
//! webhook delivery), owned in one set: a task that panics is logged and started again
//! after a pause, and `shutdown` stops them all.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The pause before a task that panicked is started again, so a task that panics at once
/// does not spin.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Background tasks that live as long as the server.
pub struct Tasks {
    running: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self { running: Vec::new(), stop: watch::Sender::new(false) }
    }
}

impl Tasks {
    /// Runs the future `start` makes until it returns; if it panics, logs the panic and runs
    /// a fresh one from `start`.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, start: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.running.push(tokio::spawn(keep_running(name, start, self.stop.subscribe())));
    }

    /// Stops every task and waits until each has stopped. (Dropping the set stops them too,
    /// without the wait.)
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for task in self.running {
            let _ = task.await;
        }
    }
}

async fn keep_running<F, Fut>(name: &'static str, start: F, mut stop: watch::Receiver<bool>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        // Its own task, so that a panic ends that task only.
        let mut run = tokio::spawn(start());
        let ended = tokio::select! {
            ended = &mut run => ended,
            _ = stop.changed() => {
                run.abort();
                let _ = run.await;
                return;
            }
        };
        match ended {
            Ok(()) => {
                tracing::info!(task = name, "background task finished");
                return;
            }
            Err(e) if e.is_panic() => {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(task = name, panic = %message, "background task panicked; starting it again");
                tokio::select! {
                    () = tokio::time::sleep(RESTART_AFTER) => {}
                    _ = stop.changed() => return,
                }
            }
            Err(_) => return,
        }
    }
}

/// A task that is stopped when its handle is dropped: a helper task that must not outlive
/// the one that started it.
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    /// Sets its flag when dropped: when the task holding it is stopped.
    struct Stopped(Arc<AtomicBool>);

    impl Drop for Stopped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_task_that_panics_is_started_again_and_shutdown_stops_it() {
        let runs = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let mut tasks = Tasks::default();
        let (counter, flag) = (Arc::clone(&runs), Arc::clone(&stopped));
        tasks.spawn("flaky", move || {
            let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let guard = Stopped(Arc::clone(&flag));
            async move {
                assert!(run > 1, "the first run panics");
                let _guard = guard;
                std::future::pending::<()>().await;
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "the task was not started again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Only the first run's guard has been dropped (when it panicked); reset and stop.
        stopped.store(false, Ordering::SeqCst);
        tasks.shutdown().await;
        assert!(stopped.load(Ordering::SeqCst), "shutdown stopped the running task");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}

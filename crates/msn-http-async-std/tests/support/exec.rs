//! The executors every test runs on: async-std's (`task::block_on`, `task::spawn` on its
//! global thread pool) and smol's (`smol::block_on` of a per-test `smol::Executor`, one
//! thread), behind one small spawn interface.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::future;

/// Real time after which a test that hangs fails instead (a passing test never gets near it:
/// it only ever waits for loopback I/O, on a virtual clock).
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// Where a test spawns its tasks.
#[derive(Clone)]
pub enum Exec {
    AsyncStd,
    /// Weak, so that tasks holding it do not keep the executor (and each other) alive after
    /// the test: dropping the executor cancels what is left.
    Smol(Weak<smol::Executor<'static>>),
}

impl Exec {
    pub fn spawn<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        match self {
            Self::AsyncStd => Task::AsyncStd(async_std::task::spawn(task)),
            Self::Smol(executor) => {
                let executor = executor.upgrade().expect("the test's executor is running");
                Task::Smol(Some(executor.spawn(task)))
            }
        }
    }
}

/// A spawned task: await it for its output; dropping it lets it run on (detached).
pub enum Task<T> {
    AsyncStd(async_std::task::JoinHandle<T>),
    Smol(Option<smol::Task<T>>),
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Self::AsyncStd(handle) => Pin::new(handle).poll(cx),
            Self::Smol(task) => Pin::new(task.as_mut().expect("polled after completion")).poll(cx),
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let Self::Smol(task) = self {
            if let Some(task) = task.take() {
                task.detach();
            }
        }
    }
}

async fn guarded<T>(test: impl Future<Output = T>) -> T {
    future::or(test, async {
        async_io::Timer::after(HANG_LIMIT).await;
        panic!("the test hung for {HANG_LIMIT:?}");
    })
    .await
}

/// Runs a test on async-std.
pub fn on_async_std<Fut: Future<Output = ()>>(test: impl FnOnce(Exec) -> Fut) {
    async_std::task::block_on(guarded(test(Exec::AsyncStd)));
}

/// Runs a test on a smol executor of its own, driven by `smol::block_on`.
pub fn on_smol<Fut: Future<Output = ()>>(test: impl FnOnce(Exec) -> Fut) {
    let executor = Arc::new(smol::Executor::new());
    let exec = Exec::Smol(Arc::downgrade(&executor));
    smol::block_on(executor.run(guarded(test(exec))));
}

/// Declares each `async fn name(exec: Exec)` as two tests: `on_async_std::name` and
/// `on_smol::name`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod on_async_std {
            $(
                #[test]
                fn $name() {
                    $crate::support::exec::on_async_std(super::$name);
                }
            )+
        }
        mod on_smol {
            $(
                #[test]
                fn $name() {
                    $crate::support::exec::on_smol(super::$name);
                }
            )+
        }
    };
}

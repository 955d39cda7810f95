//! How an adapter hands a session's [`Driver`] to its runtime, chosen by the handles' type
//! parameter: [`Spawned`] (the adapter spawns the driver, the constructors return the handle)
//! or [`Detached`] (the constructors return the handle with its driver, for the caller to
//! spawn). So [`Client`](crate::Client) and [`ByteStream`](crate::ByteStream) are written once
//! and each adapter names them with its runtime filled in.

use std::marker::PhantomData;

use msn_http_core::Endpoint;
use msn_http_core::client::{ClientConfig, Target};

use crate::driver::Driver;
use crate::open::{self, OpenError};
use crate::runtime::Runtime;

/// A runtime that can spawn a session's driver itself (tokio: on the current runtime).
pub trait Spawn: Runtime + Default {
    /// Where drivers go, found before the session is opened.
    type Spawner;

    /// The spawner of the calling context, or [`OpenError::NoRuntime`] outside the runtime.
    fn spawner() -> Result<Self::Spawner, OpenError>;

    /// Runs `driver` in the background until the session ends.
    fn spawn(spawner: &Self::Spawner, driver: Driver);
}

/// Handles whose constructors spawn the driver on `R` ([`Spawn`]) and return the handle alone.
#[derive(Debug)]
pub struct Spawned<R>(PhantomData<fn() -> R>);

/// Handles whose constructors return the handle with its [`Driver`], for the caller to spawn:
/// on `R::default()` (`open`, `connect`) or on a runtime of the caller's (`open_with`,
/// `connect_with`).
#[derive(Debug)]
pub struct Detached<R = ()>(PhantomData<fn() -> R>);

/// A handle type a session opens as ([`Client`](crate::Client), [`ByteStream`](crate::ByteStream)).
pub(crate) trait Start: Sized {
    fn start<R: Runtime>(
        runtime: R,
        config: ClientConfig,
        target: Target,
        first: Option<(Endpoint, R::Stream)>,
    ) -> Result<(Self, Driver), OpenError>;
}

/// Opens `H` and spawns its driver on `R`.
pub(crate) fn open_spawned<R: Spawn, H: Start>(
    config: ClientConfig,
    target: Target,
) -> Result<H, OpenError> {
    let spawner = R::spawner()?;
    let (handle, driver) = H::start(R::default(), config, target, None)?;
    R::spawn(&spawner, driver);
    Ok(handle)
}

/// Connects first, opens `H` on that connection and spawns its driver on `R`.
pub(crate) async fn connect_spawned<R: Spawn, H: Start>(
    config: ClientConfig,
    target: Target,
) -> Result<H, OpenError> {
    let spawner = R::spawner()?;
    let (handle, driver) = connect_detached(R::default(), config, target).await?;
    R::spawn(&spawner, driver);
    Ok(handle)
}

/// Connects first, then opens `H` on that connection.
pub(crate) async fn connect_detached<R: Runtime, H: Start>(
    runtime: R,
    config: ClientConfig,
    target: Target,
) -> Result<(H, Driver), OpenError> {
    let first = open::connect_first(&runtime, &config).await?;
    H::start(runtime, config, target, Some(first))
}

//! The [`Runtime`] over tokio: `TcpStream`, and tokio's clock and timers (so a paused test
//! clock drives the session too).

use std::io;
use std::time::Instant;

use msn_http_driver::{Driver, OpenError, Runtime, Spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// tokio's sockets and timers; drivers are spawned on the current runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Stream = TcpStream;

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    async fn connect(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn write_all(&self, stream: &mut TcpStream, buf: &[u8]) -> io::Result<()> {
        stream.write_all(buf).await
    }

    async fn read(&self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        stream.read(buf).await
    }

    async fn sleep_until(&self, deadline: Instant) {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

impl Spawn for Tokio {
    type Spawner = tokio::runtime::Handle;

    fn spawner() -> Result<tokio::runtime::Handle, OpenError> {
        tokio::runtime::Handle::try_current().map_err(|_| OpenError::NoRuntime)
    }

    fn spawn(spawner: &tokio::runtime::Handle, driver: Driver) {
        spawner.spawn(driver);
    }
}

//! The command API: open a tunnelled NS or SB session, send MSNP bytes, receive whole commands.
//!
//! [`Client::open`] creates the core [`Session`](msn_http_core::client::Session) and spawns
//! one driver task that owns its TCP connection and timers. The handles share the session with
//! that task; nothing is buffered outside the core, so the core's limits bound the memory:
//!
//! - [`ClientSender`] (cloneable, usable from many tasks) queues bytes straight into the
//!   core's outgoing queue; when the queue is full, [`send`](ClientSender::send) waits until
//!   the gateway confirms earlier bytes.
//! - [`ClientReceiver`] takes events out of the core. While nobody takes them, the core stops
//!   polling once `max_inbound_bytes` wait undelivered: the gateway keeps the rest.
//!
//! The handles, events and errors are those of `msn-http-driver`, shared with the other
//! adapters; [`Client`] is the driver's, spawned on tokio.

pub use msn_http_driver::OpenError;
use msn_http_driver::Spawned;
pub use msn_http_driver::client::{ClientReceiver, ClientSender, MAX_UNREAD_BYTES};
pub use msn_http_driver::events::{ClientEvent, Notice, RecvError, SessionEnd};

use crate::runtime::Tokio;

/// One tunnelled MSNP connection (an NS or an SB): a [`ClientSender`] and a
/// [`ClientReceiver`] in one value, its driver spawned on the current tokio runtime by
/// [`open`](msn_http_driver::Client::open) and [`connect`](msn_http_driver::Client::connect).
///
/// ```no_run
/// # async fn demo() -> Result<(), msn_http_tokio::OpenError> {
/// use msn_http_tokio::{Client, Target};
///
/// let client =
///     Client::connect("http://127.0.0.1:8080", Target::notification("messenger.hotmail.com"))
///         .await?;
/// # drop(client);
/// # Ok(())
/// # }
/// ```
pub type Client = msn_http_driver::Client<Spawned<Tokio>>;

//! The command API: open a tunnelled NS or SB session, send MSNP bytes, receive whole commands.
//!
//! [`Client::open`] creates the core [`Session`](msn_http_core::client::Session) and returns
//! it with its [`Driver`](crate::Driver): the future that owns the session's TCP connection and timers, to
//! spawn on the executor of your choice (see the [crate docs](crate#spawning-the-driver)).
//! The handles share the session with that driver; nothing is buffered outside the core, so
//! the core's limits bound the memory:
//!
//! - [`ClientSender`] (cloneable, usable from many tasks) queues bytes straight into the
//!   core's outgoing queue; when the queue is full, [`send`](ClientSender::send) waits until
//!   the gateway confirms earlier bytes.
//! - [`ClientReceiver`] takes events out of the core. While nobody takes them, the core stops
//!   polling once `max_inbound_bytes` wait undelivered: the gateway keeps the rest.
//!
//! The handles, events and errors are those of `msn-http-driver`, shared with the other
//! adapters.

use msn_http_driver::Detached;
pub use msn_http_driver::OpenError;
pub use msn_http_driver::client::{ClientReceiver, ClientSender, MAX_UNREAD_BYTES};
pub use msn_http_driver::events::{ClientEvent, Notice, RecvError, SessionEnd};

use crate::AsyncIo;

/// One tunnelled MSNP connection (an NS or an SB): a [`ClientSender`] and a
/// [`ClientReceiver`] in one value. [`open`](msn_http_driver::Client::open) and
/// [`connect`](msn_http_driver::Client::connect) run it on [`AsyncIo`];
/// [`open_with`](msn_http_driver::Client::open_with) and
/// [`connect_with`](msn_http_driver::Client::connect_with) on another
/// [`Runtime`](crate::Runtime) (one with a virtual clock for tests, or with sockets of its
/// own). Each returns the session's [`Driver`](crate::Driver) to spawn.
///
/// ```no_run
/// # async fn demo() -> Result<(), msn_http_async_std::OpenError> {
/// use msn_http_async_std::{Client, Target};
///
/// let (client, driver) =
///     Client::connect("http://127.0.0.1:8080", Target::notification("messenger.hotmail.com"))
///         .await?;
/// smol::spawn(driver).detach();
/// # drop(client);
/// # Ok(())
/// # }
/// ```
pub type Client = msn_http_driver::Client<Detached<AsyncIo>>;

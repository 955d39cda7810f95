//! The process's open-file limit (`RLIMIT_NOFILE`): what a gateway needs of it, raising the
//! soft limit that far, and telling "out of descriptors" from other failures.

use std::io;

use msn_http_core::gateway::GatewayConfig;

/// Descriptors a gateway keeps beyond its connections and sessions: the listener, the
/// runtime's own, standard streams, logs.
pub const DESCRIPTOR_RESERVE: u64 = 64;

/// The process's open-file limit. `None` means unlimited (or a platform without the notion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The limit in force.
    pub soft: Option<u64>,
    /// How far the process may raise it.
    pub hard: Option<u64>,
}

impl OpenFileLimit {
    /// The limit now.
    ///
    /// ```
    /// let limit = msn_http_driver::gateway::OpenFileLimit::current();
    /// assert!(limit.soft <= limit.hard.or(limit.soft));
    /// ```
    pub fn current() -> Self {
        imp::current()
    }

    /// Raises the soft limit to `wanted` descriptors, or as far as the hard limit allows (it
    /// is never lowered); returns the limit then in force.
    ///
    /// ```
    /// use msn_http_driver::gateway::OpenFileLimit;
    ///
    /// let before = OpenFileLimit::current();
    /// let after = OpenFileLimit::raise_to(64).unwrap();
    /// assert!(after.soft.is_none_or(|soft| soft >= 64 || Some(soft) == before.hard));
    /// ```
    pub fn raise_to(wanted: u64) -> io::Result<Self> {
        imp::raise_to(wanted)
    }

    /// Whether `needed` descriptors fit in the soft limit.
    pub fn allows(&self, needed: u64) -> bool {
        self.soft.is_none_or(|soft| needed <= soft)
    }
}

/// The descriptors a gateway with `config` may hold at once: one per client connection,
/// `fds_per_session` per session (its backend socket: 1, or 2 when the backend is served by
/// the same process), and [`DESCRIPTOR_RESERVE`].
///
/// ```
/// use msn_http_core::gateway::GatewayConfig;
/// use msn_http_driver::gateway::{DESCRIPTOR_RESERVE, descriptors_needed};
///
/// let mut config = GatewayConfig::new("gw.example.net", [7; 32]);
/// config.max_connections = 100;
/// config.max_sessions = 50;
/// assert_eq!(descriptors_needed(&config, 2), 200 + DESCRIPTOR_RESERVE);
/// ```
pub fn descriptors_needed(config: &GatewayConfig, fds_per_session: u64) -> u64 {
    let sessions = (config.max_sessions as u64).saturating_mul(fds_per_session);
    (config.max_connections as u64).saturating_add(sessions).saturating_add(DESCRIPTOR_RESERVE)
}

/// Whether `error` says this host ran out of descriptors, buffers or memory (as opposed to
/// the peer being unreachable).
pub(super) fn out_of_resources(error: &io::Error) -> bool {
    imp::out_of_resources(error)
}

#[cfg(unix)]
mod imp {
    use std::io;

    use rustix::io::Errno;
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    use super::OpenFileLimit;

    fn from(limit: Rlimit) -> OpenFileLimit {
        OpenFileLimit { soft: limit.current, hard: limit.maximum }
    }

    pub(super) fn current() -> OpenFileLimit {
        from(getrlimit(Resource::Nofile))
    }

    pub(super) fn raise_to(wanted: u64) -> io::Result<OpenFileLimit> {
        let limit = getrlimit(Resource::Nofile);
        let target = limit.maximum.map_or(wanted, |hard| wanted.min(hard));
        if limit.current.is_none_or(|soft| soft >= target) {
            return Ok(from(limit));
        }
        let raised = Rlimit { current: Some(target), maximum: limit.maximum };
        setrlimit(Resource::Nofile, raised)?;
        Ok(current())
    }

    pub(super) fn out_of_resources(error: &io::Error) -> bool {
        Errno::from_io_error(error).is_some_and(|errno| {
            [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&errno)
        })
    }
}

#[cfg(not(unix))]
mod imp {
    use std::io;

    use super::OpenFileLimit;

    pub(super) fn current() -> OpenFileLimit {
        OpenFileLimit { soft: None, hard: None }
    }

    pub(super) fn raise_to(_wanted: u64) -> io::Result<OpenFileLimit> {
        Ok(current())
    }

    pub(super) fn out_of_resources(error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::OutOfMemory
    }
}

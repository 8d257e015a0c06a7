//! The proxy's errors: what went wrong, as text for the operator and the
//! guest's log, and as the errno a guest's DPDK call returns.

use shm_abi::msg::ProtoError;
use std::fmt;

#[derive(Debug)]
pub enum ProxyError {
    /// A command or request named something that does not exist.
    NotFound(String),
    /// It exists already, or is taken.
    Busy(String),
    /// The peer may not use what it named (another process's region).
    Denied(String),
    /// A command's or request's arguments cannot be honoured.
    Invalid(String),
    /// The guest's request does not fit what the NIC does.
    Unsupported(String),
    /// More memory than the operator's limit allows (a GROW past it).
    NoMemory(String),
    /// The guest broke the protocol.
    Protocol(ProtoError),
    /// A DPDK call failed: what was done, and its negative errno.
    Dpdk { what: String, errno: i32 },
    /// A system call failed.
    Io { what: String, err: std::io::Error },
}

impl ProxyError {
    /// The errno a guest is told (START_ACK, ERROR), positive.
    pub fn errno(&self) -> i32 {
        match self {
            ProxyError::NotFound(_) => libc::ENOENT,
            ProxyError::Busy(_) => libc::EBUSY,
            ProxyError::Denied(_) => libc::EACCES,
            ProxyError::Invalid(_) => libc::EINVAL,
            ProxyError::Unsupported(_) => libc::ENOTSUP,
            ProxyError::NoMemory(_) => libc::ENOMEM,
            ProxyError::Protocol(e) => e.errno(),
            ProxyError::Dpdk { errno, .. } => errno.abs(),
            ProxyError::Io { err, .. } => err.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// The same error, its text prefixed with what was being done; the
    /// errno stays the cause's.
    pub fn context(self, ctx: &str) -> ProxyError {
        match self {
            ProxyError::NotFound(s) => ProxyError::NotFound(format!("{ctx}: {s}")),
            ProxyError::Busy(s) => ProxyError::Busy(format!("{ctx}: {s}")),
            ProxyError::Denied(s) => ProxyError::Denied(format!("{ctx}: {s}")),
            ProxyError::Invalid(s) => ProxyError::Invalid(format!("{ctx}: {s}")),
            ProxyError::Unsupported(s) => ProxyError::Unsupported(format!("{ctx}: {s}")),
            ProxyError::NoMemory(s) => ProxyError::NoMemory(format!("{ctx}: {s}")),
            ProxyError::Dpdk { what, errno } => ProxyError::Dpdk {
                what: format!("{ctx}: {what}"),
                errno,
            },
            ProxyError::Io { what, err } => ProxyError::Io {
                what: format!("{ctx}: {what}"),
                err,
            },
            e @ ProxyError::Protocol(_) => e,
        }
    }

    pub fn io(what: impl Into<String>, err: impl Into<std::io::Error>) -> ProxyError {
        ProxyError::Io {
            what: what.into(),
            err: err.into(),
        }
    }

    /// A failed DPDK call returning a negative errno (or -1 with rte_errno).
    pub fn dpdk(what: impl Into<String>, ret: i32) -> ProxyError {
        let errno = if ret == -1 {
            dpdk_sys::rte_errno()
        } else {
            -ret
        };
        ProxyError::Dpdk {
            what: what.into(),
            errno,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NotFound(s)
            | ProxyError::Busy(s)
            | ProxyError::Denied(s)
            | ProxyError::Invalid(s)
            | ProxyError::Unsupported(s)
            | ProxyError::NoMemory(s) => write!(f, "{s}"),
            ProxyError::Protocol(e) => write!(f, "protocol: {e}"),
            ProxyError::Dpdk { what, errno } => {
                write!(f, "{what}: {}", dpdk_sys::strerror(*errno))
            }
            ProxyError::Io { what, err } => write!(f, "{what}: {err}"),
        }
    }
}

impl std::error::Error for ProxyError {}

impl From<ProtoError> for ProxyError {
    fn from(e: ProtoError) -> Self {
        ProxyError::Protocol(e)
    }
}

/// Commands still report plain text to the operator's terminal.
impl From<ProxyError> for String {
    fn from(e: ProxyError) -> String {
        e.to_string()
    }
}

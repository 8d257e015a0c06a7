//! Who may attach to a socket: the socket file's owner and mode (the
//! kernel checks them at `connect`), and optionally the peer uids and gids
//! the proxy accepts (`SO_PEERCRED`, checked at HELLO).

use crate::error::ProxyError;
use std::os::unix::fs::PermissionsExt;

/// `add socket ... owner <uid>[:<gid>] mode <octal> allow_uid <list>
/// allow_gid <list>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketAccess {
    /// Owner of the socket file; None: the proxy's own user and group.
    pub owner: Option<(u32, Option<u32>)>,
    /// Permission bits of the socket file: write permission is what lets a
    /// process connect.
    pub mode: u32,
    /// If not empty, only peers whose uid is listed, or whose gid is in
    /// `allow_gids`, are served.
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
}

/// Owner and group may connect; nobody else.
pub const DEFAULT_MODE: u32 = 0o660;

impl Default for SocketAccess {
    fn default() -> Self {
        SocketAccess {
            owner: None,
            mode: DEFAULT_MODE,
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
        }
    }
}

/// A user: a number, or a name from the password database.
fn uid_of(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(s) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        _ => Err(format!("no user '{s}'")),
    }
}

/// A group: a number, or a name from the group database.
fn gid_of(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(s) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(format!("no group '{s}'")),
    }
}

impl SocketAccess {
    /// `owner`'s argument: `<uid>` or `<uid>:<gid>`, numbers or names.
    pub fn parse_owner(s: &str) -> Result<(u32, Option<u32>), String> {
        match s.split_once(':') {
            Some((u, g)) => Ok((uid_of(u)?, Some(gid_of(g)?))),
            None => Ok((uid_of(s)?, None)),
        }
    }

    /// `mode`'s argument: octal permission bits, at most 0777.
    pub fn parse_mode(s: &str) -> Result<u32, String> {
        u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|&m| m <= 0o777)
            .ok_or_else(|| format!("bad mode '{s}' (octal, e.g. 0660)"))
    }

    /// A comma-separated list of users (`uid` true) or groups.
    pub fn parse_ids(s: &str, uid: bool) -> Result<Vec<u32>, String> {
        s.split(',')
            .map(|x| if uid { uid_of(x) } else { gid_of(x) })
            .collect()
    }

    /// Gives the bound socket file at `path` its owner and mode. Called
    /// before `listen`, so no peer connects under other permissions.
    pub fn apply(&self, path: &str) -> Result<(), String> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), gid)
                .map_err(|e| format!("chown {path} to {uid}: {e}"))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| format!("chmod {path} {:o}: {e}", self.mode))
    }

    /// Whether a peer of `uid`/`gid` (`SO_PEERCRED`) may attach.
    pub fn admit(&self, uid: u32, gid: u32) -> Result<(), ProxyError> {
        if self.allow_uids.is_empty() && self.allow_gids.is_empty() {
            return Ok(());
        }
        if self.allow_uids.contains(&uid) || self.allow_gids.contains(&gid) {
            return Ok(());
        }
        Err(ProxyError::Denied(format!(
            "peer uid {uid} gid {gid} is not allowed on this socket (allow_uid {:?}, allow_gid {:?})",
            self.allow_uids, self.allow_gids
        )))
    }

    /// How it reads in `show sockets`: `owner 1000:1000 mode 0600 allow_uid 1000`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some((u, g)) = self.owner {
            s += &match g {
                Some(g) => format!("owner {u}:{g} "),
                None => format!("owner {u} "),
            };
        }
        s += &format!("mode {:04o}", self.mode);
        let list = |v: &[u32]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        if !self.allow_uids.is_empty() {
            s += &format!(" allow_uid {}", list(&self.allow_uids));
        }
        if !self.allow_gids.is_empty() {
            s += &format!(" allow_gid {}", list(&self.allow_gids));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_owner_mode_and_lists() {
        assert_eq!(SocketAccess::parse_owner("1000"), Ok((1000, None)));
        assert_eq!(SocketAccess::parse_owner("1000:27"), Ok((1000, Some(27))));
        assert_eq!(SocketAccess::parse_owner("root:root"), Ok((0, Some(0))));
        assert!(SocketAccess::parse_owner("no-such-user-here").is_err());
        assert_eq!(SocketAccess::parse_mode("0600"), Ok(0o600));
        assert_eq!(SocketAccess::parse_mode("660"), Ok(0o660));
        assert!(SocketAccess::parse_mode("0800").is_err());
        assert!(SocketAccess::parse_mode("1777").is_err());
        assert_eq!(SocketAccess::parse_ids("1,2,3", true), Ok(vec![1, 2, 3]));
    }

    #[test]
    fn admits_listed_peers_only() {
        let open = SocketAccess::default();
        assert!(open.admit(1234, 1234).is_ok());
        let a = SocketAccess {
            allow_uids: vec![1000],
            allow_gids: vec![50],
            ..SocketAccess::default()
        };
        assert!(a.admit(1000, 1).is_ok());
        assert!(a.admit(7, 50).is_ok());
        let e = a.admit(7, 7).unwrap_err();
        assert_eq!(e.errno(), libc::EACCES);
        assert!(e.to_string().contains("uid 7"), "{e}");
    }
}

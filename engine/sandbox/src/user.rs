//! Dockerfile `USER` resolution against a rootfs' `/etc/passwd` and `/etc/group`, with
//! runc's (and so Docker's) rules.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use crate::spec::User;
use crate::{root, Error, Result};

/// Largest passwd or group file read.
const MAX_DB: u64 = 16 << 20;
/// Largest id Docker accepts.
const MAX_ID: u64 = i32::MAX as u64;

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn parse_passwd(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next();
        let uid = f.next()?.trim().parse().ok()?;
        let gid = f.next().unwrap_or("0").trim().parse().unwrap_or(0);
        let _gecos = f.next();
        let home = f.next().unwrap_or("");
        Some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

fn parse_group(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next();
        let gid = f.next()?.trim().parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        Some(GroupEntry { name, gid, members })
    })
}

fn parse_id(s: &str) -> Option<std::result::Result<u32, ()>> {
    // Like Go's strconv.Atoi: an optional sign and digits; anything else is a name.
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match s.parse::<i64>() {
        Ok(n) if (0..=MAX_ID as i64).contains(&n) => Some(Ok(n as u32)),
        _ => Some(Err(())),
    }
}

fn read_db(root: BorrowedFd<'_>, path: &str, user: &str) -> Result<String> {
    match root::read_file(root, path, MAX_DB) {
        Ok(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(None) => Ok(String::new()),
        Err(e) => Err(Error::InvalidUser {
            user: user.to_string(),
            reason: format!("cannot read {path}: {e}"),
        }),
    }
}

/// Resolves a Dockerfile `USER` value (`name`, `uid`, `name:group`, `uid:gid`, or empty
/// for root) to numeric credentials, reading `/etc/passwd` and `/etc/group` inside
/// `rootfs`.
///
/// Symlinks in those paths are resolved inside `rootfs` (a link to `/etc/shadow` reads the
/// rootfs' file, never the host's), FIFOs and devices are refused, and at most 16 MiB is
/// read. The rules are runc's: a numeric user not in passwd is fine (gid 0); a name that
/// is not found is an error; without an explicit group the supplementary groups are the
/// groups listing the user as a member; an explicit numeric group need not exist.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<User> {
    let fd = root::open_root(rootfs)
        .map_err(|e| Error::io(format!("cannot open rootfs {}", rootfs.display()), e))?;
    resolve_user_at(fd.as_fd(), user)
}

pub(crate) fn resolve_user_at(root: BorrowedFd<'_>, spec: &str) -> Result<User> {
    let range_err = || Error::InvalidUser {
        user: spec.to_string(),
        reason: format!("uids and gids must be in range 0-{MAX_ID}"),
    };
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let mut out = User::root();
    if user_arg.is_empty() && group_arg.is_empty() {
        return Ok(out);
    }
    let uid_arg = parse_id(user_arg);
    let passwd = read_db(root, "/etc/passwd", spec)?;
    let mut matched_name: Option<&str> = None;
    if !user_arg.is_empty() {
        let found = parse_passwd(&passwd).find(|e| match uid_arg {
            Some(Ok(uid)) => e.uid == uid,
            Some(Err(())) => false,
            None => e.name == user_arg,
        });
        match (found, uid_arg) {
            (Some(e), _) => {
                out.uid = e.uid;
                out.gid = e.gid;
                matched_name = Some(e.name);
            }
            (None, Some(Ok(uid))) => out.uid = uid,
            (None, Some(Err(()))) => return Err(range_err()),
            (None, None) => return Err(Error::UserNotFound(user_arg.to_string())),
        }
    }
    if group_arg.is_empty() && matched_name.is_none() {
        return Ok(out);
    }
    let group = read_db(root, "/etc/group", spec)?;
    if !group_arg.is_empty() {
        let gid_arg = parse_id(group_arg);
        let found = parse_group(&group).find(|g| match gid_arg {
            Some(Ok(gid)) => g.gid == gid,
            Some(Err(())) => false,
            None => g.name == group_arg,
        });
        match (found, gid_arg) {
            (Some(g), _) => out.gid = g.gid,
            (None, Some(Ok(gid))) => out.gid = gid,
            (None, Some(Err(()))) => return Err(range_err()),
            (None, None) => return Err(Error::GroupNotFound(group_arg.to_string())),
        }
    } else if let Some(name) = matched_name {
        out.additional_gids = parse_group(&group)
            .filter(|g| g.members.contains(&name))
            .map(|g| g.gid)
            .collect();
    }
    Ok(out)
}

/// The home directory of `uid` in the rootfs' passwd file, if listed.
pub(crate) fn home_of(root: BorrowedFd<'_>, uid: u32) -> Option<String> {
    let bytes = root::read_file(root, "/etc/passwd", MAX_DB).ok()??;
    let passwd = String::from_utf8_lossy(&bytes);
    let home = parse_passwd(&passwd)
        .find(|e| e.uid == uid)
        .map(|e| e.home.to_string());
    home.filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
other:x:1001:50::/home/other:/bin/sh
dup:x:1000:7::/dup:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:app,other
staff:x:50:
app:x:1000:
audio:x:29: app
";

    fn rootfs() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(t.path().join("etc/group"), GROUP).unwrap();
        t
    }

    fn user(uid: u32, gid: u32, extra: &[u32]) -> User {
        User {
            uid,
            gid,
            additional_gids: extra.to_vec(),
        }
    }

    #[test]
    fn empty_is_root() {
        let t = rootfs();
        assert_eq!(resolve_user(t.path(), "").unwrap(), User::root());
    }

    #[test]
    fn by_name_with_supplementary_groups() {
        let t = rootfs();
        assert_eq!(
            resolve_user(t.path(), "app").unwrap(),
            user(1000, 1000, &[10, 29])
        );
        assert_eq!(
            resolve_user(t.path(), "other").unwrap(),
            user(1001, 50, &[10])
        );
        assert_eq!(resolve_user(t.path(), "root").unwrap(), user(0, 0, &[]));
    }

    #[test]
    fn by_uid_uses_first_passwd_match() {
        let t = rootfs();
        assert_eq!(
            resolve_user(t.path(), "1000").unwrap(),
            user(1000, 1000, &[10, 29])
        );
    }

    #[test]
    fn numeric_uid_not_in_passwd_is_allowed_with_gid_0() {
        let t = rootfs();
        assert_eq!(resolve_user(t.path(), "4242").unwrap(), user(4242, 0, &[]));
    }

    #[test]
    fn unknown_name_is_an_error() {
        let t = rootfs();
        let e = resolve_user(t.path(), "nobody").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
    }

    #[test]
    fn explicit_group() {
        let t = rootfs();
        assert_eq!(
            resolve_user(t.path(), "app:staff").unwrap(),
            user(1000, 50, &[])
        );
        assert_eq!(
            resolve_user(t.path(), "app:777").unwrap(),
            user(1000, 777, &[])
        );
        assert_eq!(
            resolve_user(t.path(), "1000:10").unwrap(),
            user(1000, 10, &[])
        );
        assert_eq!(
            resolve_user(t.path(), "4242:4343").unwrap(),
            user(4242, 4343, &[])
        );
        assert_eq!(resolve_user(t.path(), ":staff").unwrap(), user(0, 50, &[]));
        let e = resolve_user(t.path(), "app:nogroup").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
    }

    #[test]
    fn out_of_range_ids() {
        let t = rootfs();
        assert!(matches!(
            resolve_user(t.path(), "-1"),
            Err(Error::InvalidUser { .. })
        ));
        assert!(matches!(
            resolve_user(t.path(), "1:99999999999"),
            Err(Error::InvalidUser { .. })
        ));
    }

    #[test]
    fn missing_files() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(resolve_user(t.path(), "12").unwrap(), user(12, 0, &[]));
        assert_eq!(resolve_user(t.path(), "12:34").unwrap(), user(12, 34, &[]));
        assert!(matches!(
            resolve_user(t.path(), "app"),
            Err(Error::UserNotFound(_))
        ));
    }

    #[test]
    fn symlinked_passwd_resolves_inside_rootfs() {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("shadow"), "evil:x:666:666::/:/bin/sh\n").unwrap();
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::create_dir_all(t.path().join("data")).unwrap();
        std::fs::write(t.path().join("data/shadow"), "inner:x:5:6::/:/bin/sh\n").unwrap();
        // An absolute link: on the host it would name host.path()/shadow.
        let host_shadow = host.path().join("shadow");
        let rel = host_shadow.strip_prefix("/").unwrap();
        std::fs::create_dir_all(t.path().join(rel.parent().unwrap())).unwrap();
        std::fs::write(t.path().join(rel), "inner:x:5:6::/:/bin/sh\n").unwrap();
        symlink(&host_shadow, t.path().join("etc/passwd")).unwrap();
        assert!(matches!(
            resolve_user(t.path(), "evil"),
            Err(Error::UserNotFound(_))
        ));
        assert_eq!(resolve_user(t.path(), "inner").unwrap(), user(5, 6, &[]));
        // A relative link climbing out is clamped at the rootfs.
        std::fs::remove_file(t.path().join("etc/passwd")).unwrap();
        symlink(
            "../../../../../../../../data/shadow",
            t.path().join("etc/passwd"),
        )
        .unwrap();
        assert_eq!(resolve_user(t.path(), "inner").unwrap(), user(5, 6, &[]));
    }

    #[test]
    fn fifo_passwd_is_refused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        let p = std::ffi::CString::new(format!("{}/etc/passwd", t.path().display())).unwrap();
        // SAFETY: valid path.
        assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o644) }, 0);
        let e = resolve_user(t.path(), "app").unwrap_err();
        assert!(matches!(e, Error::InvalidUser { .. }), "{e}");
    }

    #[test]
    fn home_lookup() {
        let t = rootfs();
        let fd = root::open_root(t.path()).unwrap();
        assert_eq!(home_of(fd.as_fd(), 1000).as_deref(), Some("/home/app"));
        assert_eq!(home_of(fd.as_fd(), 5), None);
    }
}

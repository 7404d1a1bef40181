//! Users of a session's system: a name or uid looked up in its
//! `/etc/passwd` (the host's, a sandbox's, a container's).

/// A user that exists: its ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIds {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
}

/// `user` (a name, a uid, or `uid:gid`) in `passwd` (the text of an
/// `/etc/passwd`). A uid with no entry is taken as it is (gid = uid unless
/// given), as `docker exec -u` and `setpriv` take one.
///
/// # Errors
///
/// A name with no entry, said with where it was looked for (`place`).
pub fn lookup(passwd: &str, user: &str, place: &str) -> Result<UserIds, String> {
    let user = user.trim();
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let entry = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let (login, uid, gid) = (fields.first()?, fields.get(2)?, fields.get(3)?);
        let ids = UserIds {
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
        };
        (*login == name || name.parse::<u32>().ok() == Some(ids.uid)).then_some(ids)
    });
    let mut ids = match (entry, name.parse::<u32>()) {
        (Some(ids), _) => ids,
        (None, Ok(uid)) => UserIds { uid, gid: uid },
        (None, Err(_)) => {
            return Err(format!("no such user in {place}"));
        }
    };
    if let Some(group) = group {
        ids.gid = group
            .parse()
            .map_err(|_| format!("group `{group}`: give a number"))?;
    }
    Ok(ids)
}

/// The host's `/etc/passwd`, for the local runtime.
pub fn host_passwd() -> String {
    std::fs::read_to_string("/etc/passwd").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";

    #[test]
    fn names_uids_and_groups_are_found() {
        let at = "the test";
        assert_eq!(lookup(PASSWD, "root", at), Ok(UserIds { uid: 0, gid: 0 }));
        assert_eq!(
            lookup(PASSWD, "app", at),
            Ok(UserIds {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            lookup(PASSWD, "1000", at),
            Ok(UserIds {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            lookup(PASSWD, "4242", at),
            Ok(UserIds {
                uid: 4242,
                gid: 4242
            })
        );
        assert_eq!(
            lookup(PASSWD, "app:7", at),
            Ok(UserIds { uid: 1000, gid: 7 })
        );
        let missing = lookup(PASSWD, "nonexistent", "the sandbox's /etc/passwd").unwrap_err();
        assert_eq!(missing, "no such user in the sandbox's /etc/passwd");
    }
}

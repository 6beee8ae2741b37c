//! Pure planning of a container's process from its image config and pod spec, by the rules
//! Kubernetes (kubelet + containerd's CRI plugin + runc) apply: command/args merged with the
//! image's Entrypoint/Cmd, `$(VAR)` expansion, the environment, and the image's `User`
//! resolved through the image's own /etc/passwd and /etc/group.

use std::collections::HashMap;

/// PATH for an image that sets none (containerd's and Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Highest uid/gid accepted, as runc (`user.maxID`).
const MAX_ID: i64 = i32::MAX as i64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error("no command: the image has no Entrypoint or Cmd and the pod sets none")]
    NoCommand,
    #[error("image config Env entry {entry:?} is not KEY=VALUE")]
    MalformedImageEnv { entry: String },
    #[error("environment variable name {name:?} (from the {origin}) is invalid: {reason}")]
    InvalidEnvName {
        name: String,
        origin: &'static str,
        reason: &'static str,
    },
    #[error("environment variable {name} (from the {origin}): the value contains a NUL byte")]
    InvalidEnvValue { name: String, origin: &'static str },
    #[error("user {spec:?}: expected USER, UID, USER:GROUP or UID:GID")]
    InvalidUserSpec { spec: String },
    #[error("unable to find user {user}: the image's /etc/passwd has no entry for it; use a numeric uid or add the user to the image")]
    UnknownUser { user: String },
    #[error("unable to find user {user}: the image has no /etc/passwd; use a numeric uid")]
    NoPasswd { user: String },
    #[error("unable to find group {group}: the image's /etc/group has no entry for it; use a numeric gid or add the group to the image")]
    UnknownGroup { group: String },
    #[error("unable to find group {group}: the image has no /etc/group; use a numeric gid")]
    NoGroupFile { group: String },
    #[error("{kind} {value} is out of range (0 to {MAX_ID})")]
    IdOutOfRange { kind: &'static str, value: i64 },
}

/// Merges the pod's command/args with the image's Entrypoint/Cmd:
///
/// | pod command | pod args | process                         |
/// |-------------|----------|---------------------------------|
/// | -           | -        | image Entrypoint + image Cmd    |
/// | set         | -        | command (image Cmd ignored)     |
/// | -           | set      | image Entrypoint + args         |
/// | set         | set      | command + args                  |
///
/// An empty list counts as unset (the CRI cannot tell them apart), and an Entrypoint of
/// `[""]` is Docker's way of clearing an inherited one, as containerd treats it.
pub fn merge_command(
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
    command: Option<&[String]>,
    args: Option<&[String]>,
) -> Result<Vec<String>, ProcessError> {
    let entrypoint = set(image_entrypoint).filter(|e| !(e.len() == 1 && e[0].is_empty()));
    let merged: Vec<String> = match (set(command), set(args)) {
        (None, None) => chain(entrypoint, set(image_cmd)),
        (Some(command), None) => command.to_vec(),
        (None, Some(args)) => chain(entrypoint, Some(args)),
        (Some(command), Some(args)) => chain(Some(command), Some(args)),
    };
    if merged.is_empty() {
        return Err(ProcessError::NoCommand);
    }
    Ok(merged)
}

/// Unset or empty: the same thing to the CRI.
fn set(v: Option<&[String]>) -> Option<&[String]> {
    v.filter(|v| !v.is_empty())
}

fn chain(a: Option<&[String]>, b: Option<&[String]>) -> Vec<String> {
    a.unwrap_or_default()
        .iter()
        .chain(b.unwrap_or_default())
        .cloned()
        .collect()
}

/// Kubernetes `$(VAR)` expansion (k8s.io/kubernetes third_party/forked/golang/expansion):
/// `$(VAR)` becomes VAR's value when `env` knows it and stays as written otherwise; `$$`
/// is a literal `$` (so `$$(VAR)` gives `$(VAR)`); any other `$` is kept as is.
pub fn expand_vars(value: &str, env: &impl Fn(&str) -> Option<String>) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    // Start of the text not yet copied; every index we cut at is an ASCII byte, so a char
    // boundary.
    let mut copied = 0;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'$' => {
                out.push_str(&value[copied..i]);
                out.push('$');
                i += 2;
                copied = i;
            }
            b'(' => {
                let Some(close) = value[i + 2..].find(')') else {
                    // An unclosed `$(` is literal; scanning goes on after it for `$$`.
                    i += 2;
                    continue;
                };
                let name = &value[i + 2..i + 2 + close];
                out.push_str(&value[copied..i]);
                match env(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                i += close + 3;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&value[copied..]);
    out
}

/// Escapes every `$` so that [`expand_vars`] gives `value` back unchanged. Kubernetes
/// expands only literal `value:` entries, never ones from `valueFrom` (secrets, config
/// maps, field refs): escape those before passing them to [`build_env`].
pub fn escape_vars(value: &str) -> String {
    value.replace('$', "$$")
}

/// The container's environment: the image's Env first, then the pod's, a pod variable
/// replacing an image one of the same name in place and new ones appended in pod order.
/// Each pod value is `$(VAR)`-expanded against the variables before it (the image's and the
/// pod's earlier ones). PATH gets a default when nothing set it, and HOSTNAME is the
/// given hostname unless the image or pod set it (as containerd does).
pub fn build_env(
    image_env: &[String],
    pod_env: &[(String, String)],
    hostname: Option<&str>,
) -> Result<Vec<(String, String)>, ProcessError> {
    let mut env = EnvList::default();
    for entry in image_env {
        let Some((name, value)) = entry.split_once('=') else {
            return Err(ProcessError::MalformedImageEnv {
                entry: entry.clone(),
            });
        };
        validate_env(name, value, "image config")?;
        env.set(name, value.to_string());
    }
    for (name, value) in pod_env {
        validate_env(name, value, "pod spec")?;
        let expanded = expand_vars(value, &|n: &str| env.get(n).map(str::to_string));
        env.set(name, expanded);
    }
    if env.get("PATH").is_none() {
        env.set("PATH", DEFAULT_PATH.to_string());
    }
    if let Some(hostname) = hostname {
        if env.get("HOSTNAME").is_none() {
            validate_env("HOSTNAME", hostname, "pod hostname")?;
            env.set("HOSTNAME", hostname.to_string());
        }
    }
    Ok(env.vars)
}

fn validate_env(name: &str, value: &str, origin: &'static str) -> Result<(), ProcessError> {
    let bad_name = |reason| ProcessError::InvalidEnvName {
        name: name.to_string(),
        origin,
        reason,
    };
    if name.is_empty() {
        return Err(bad_name("it is empty"));
    }
    if name.contains('=') {
        return Err(bad_name("it contains '='"));
    }
    if name.contains('\0') {
        return Err(bad_name("it contains a NUL byte"));
    }
    if value.contains('\0') {
        return Err(ProcessError::InvalidEnvValue {
            name: name.to_string(),
            origin,
        });
    }
    Ok(())
}

/// An ordered environment with replace-in-place by name.
#[derive(Default)]
struct EnvList {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvList {
    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }

    fn set(&mut self, name: &str, value: String) {
        match self.index.get(name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.to_string(), self.vars.len());
                self.vars.push((name.to_string(), value));
            }
        }
    }
}

/// The identity a container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the gids of /etc/group entries that list the user by name.
    pub additional_gids: Vec<u32>,
    /// Home directory from /etc/passwd, `/` when the user has no entry.
    pub home: String,
}

/// One /etc/passwd entry (the fields layerlet uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One /etc/group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The `fields`-field, colon-separated records of a passwd-style file with a name in the first
/// field; blank lines, comments and malformed lines are skipped.
fn colon_records(contents: &str, fields: usize) -> impl Iterator<Item = Vec<&str>> {
    contents.lines().filter_map(move |line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        (f.len() == fields && !f[0].is_empty()).then_some(f)
    })
}

/// Parses /etc/passwd (`name:password:uid:gid:gecos:home:shell`), skipping blank lines,
/// comments and any line without 7 fields or with a non-numeric uid/gid (such as NIS `+`
/// lines), as libc does rather than failing the container.
pub fn parse_passwd(contents: &str) -> Vec<PasswdEntry> {
    colon_records(contents, 7)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].trim().parse().ok()?,
                gid: f[3].trim().parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// Parses /etc/group (`name:password:gid:member,member`), skipping what is not a 4-field
/// entry with a numeric gid.
pub fn parse_group(contents: &str) -> Vec<GroupEntry> {
    colon_records(contents, 4)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].trim().parse().ok()?,
                members: f[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves an image `User` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) the way
/// runc's `user.GetExecUser` does, with containerd's CRI rule for supplementary groups:
///
/// - empty user: uid 0, looked up in /etc/passwd for its gid and home;
/// - a numeric user is always a uid; listed in /etc/passwd it takes that entry's gid and
///   home, unlisted it runs with gid 0 and home `/`;
/// - a user name must be in /etc/passwd (first match wins);
/// - a group, when given, replaces the primary gid: numeric is a gid, a name must be in
///   /etc/group;
/// - supplementary groups are the /etc/group entries listing the user's name, whether or not
///   a group was given (containerd's `WithAdditionalGIDs`; runc alone drops them with an
///   explicit group).
pub fn resolve_user(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, ProcessError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((_, g)) if g.contains(':') => {
            return Err(ProcessError::InvalidUserSpec {
                spec: user.to_string(),
            })
        }
        Some((u, g)) => (u, Some(g).filter(|g| !g.is_empty())),
        None => (user, None),
    };
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let group_file = group;
    let groups = group_file.map(parse_group).unwrap_or_default();

    let mut resolved = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".to_string(),
    };
    let numeric_uid = parse_id(user_part, "uid")?;
    let entry = match (user_part, numeric_uid) {
        ("", _) => users.iter().find(|u| u.uid == 0),
        (_, Some(uid)) => {
            resolved.uid = uid;
            users.iter().find(|u| u.uid == uid)
        }
        (name, None) => {
            let found = users.iter().find(|u| u.name == name);
            if found.is_none() {
                let user = name.to_string();
                return Err(match passwd {
                    Some(_) => ProcessError::UnknownUser { user },
                    None => ProcessError::NoPasswd { user },
                });
            }
            found
        }
    };
    if let Some(entry) = entry {
        resolved.uid = entry.uid;
        resolved.gid = entry.gid;
        if !entry.home.is_empty() {
            resolved.home = entry.home.clone();
        }
    }

    if let Some(group_part) = group_part {
        resolved.gid = match parse_id(group_part, "gid")? {
            Some(gid) => gid,
            None => match groups.iter().find(|g| g.name == group_part) {
                Some(g) => g.gid,
                None => {
                    let group = group_part.to_string();
                    return Err(match group_file {
                        Some(_) => ProcessError::UnknownGroup { group },
                        None => ProcessError::NoGroupFile { group },
                    });
                }
            },
        };
    }

    if let Some(name) = entry.map(|e| e.name.as_str()) {
        for g in &groups {
            if g.members.iter().any(|m| m == name) && !resolved.additional_gids.contains(&g.gid) {
                resolved.additional_gids.push(g.gid);
            }
        }
    }
    Ok(resolved)
}

/// A uid or gid when `s` is numeric (runc treats anything `Atoi` accepts as an id), `None`
/// for a name.
fn parse_id(s: &str, kind: &'static str) -> Result<Option<u32>, ProcessError> {
    let Ok(n) = s.parse::<i64>() else {
        // Digits too many for i64 are still an id, just out of range.
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProcessError::IdOutOfRange {
                kind,
                value: i64::MAX,
            });
        }
        return Ok(None);
    };
    if !(0..=MAX_ID).contains(&n) {
        return Err(ProcessError::IdOutOfRange { kind, value: n });
    }
    Ok(Some(n as u32))
}

#[cfg(test)]
mod tests;

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
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn merge(
        ep: Option<&[&str]>,
        cmd: Option<&[&str]>,
        command: Option<&[&str]>,
        args: Option<&[&str]>,
    ) -> Result<Vec<String>, ProcessError> {
        let (ep, cmd, command, args) = (ep.map(v), cmd.map(v), command.map(v), args.map(v));
        merge_command(
            ep.as_deref(),
            cmd.as_deref(),
            command.as_deref(),
            args.as_deref(),
        )
    }

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn env_of(image: &[&str], pod: &[(&str, &str)], host: Option<&str>) -> Vec<(String, String)> {
        let pod: Vec<(String, String)> = pod
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        build_env(&v(image), &pod, host).unwrap()
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line without colons
short:x:5:5
badid:x:abc:1::/:/bin/sh
+::::::
app:x:1000:1000:App,,,:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
app:x:2000:2000:duplicate:/other:/bin/sh
";

    const GROUP: &str = "\
root:x:0:root
daemon:x:1:
# comment
users:x:100:app, other
app:x:1000:
staff:x:50:other,app
wheel:x:10:root,app
junk:x:notanumber:app
toofew:x:60
";

    fn user(spec: &str) -> Result<ResolvedUser, ProcessError> {
        resolve_user(spec, Some(PASSWD), Some(GROUP))
    }

    // merge_command

    #[test]
    fn no_command_and_no_args_run_the_image_entrypoint_with_its_cmd() {
        let got = merge(Some(&["/ep", "-x"]), Some(&["serve"]), None, None).unwrap();
        assert_eq!(got, v(&["/ep", "-x", "serve"]));
    }

    #[test]
    fn an_image_with_only_cmd_runs_its_cmd() {
        let got = merge(None, Some(&["/bin/sh", "-c", "true"]), None, None).unwrap();
        assert_eq!(got, v(&["/bin/sh", "-c", "true"]));
    }

    #[test]
    fn a_command_alone_replaces_both_entrypoint_and_cmd() {
        let got = merge(Some(&["/ep"]), Some(&["serve"]), Some(&["/bin/true"]), None).unwrap();
        assert_eq!(got, v(&["/bin/true"]));
    }

    #[test]
    fn args_alone_replace_the_image_cmd_but_keep_the_entrypoint() {
        let got = merge(
            Some(&["/ep"]),
            Some(&["serve"]),
            None,
            Some(&["migrate", "-v"]),
        )
        .unwrap();
        assert_eq!(got, v(&["/ep", "migrate", "-v"]));
    }

    #[test]
    fn args_alone_without_an_entrypoint_are_the_whole_command() {
        let got = merge(None, Some(&["serve"]), None, Some(&["/bin/echo", "hi"])).unwrap();
        assert_eq!(got, v(&["/bin/echo", "hi"]));
    }

    #[test]
    fn command_and_args_together_ignore_the_image() {
        let got = merge(
            Some(&["/ep"]),
            Some(&["serve"]),
            Some(&["/bin/echo"]),
            Some(&["a", "b"]),
        )
        .unwrap();
        assert_eq!(got, v(&["/bin/echo", "a", "b"]));
    }

    #[test]
    fn empty_lists_count_as_unset() {
        let got = merge(Some(&["/ep"]), Some(&["serve"]), Some(&[]), Some(&[])).unwrap();
        assert_eq!(got, v(&["/ep", "serve"]));
    }

    #[test]
    fn an_entrypoint_of_one_empty_string_is_no_entrypoint() {
        let got = merge(Some(&[""]), Some(&["/bin/sh"]), None, None).unwrap();
        assert_eq!(got, v(&["/bin/sh"]));
    }

    #[test]
    fn nothing_to_run_is_an_error_that_says_so() {
        let err = merge(None, None, None, None).unwrap_err();
        assert_eq!(err, ProcessError::NoCommand);
        assert_eq!(
            err.to_string(),
            "no command: the image has no Entrypoint or Cmd and the pod sets none"
        );
        assert_eq!(
            merge(Some(&[""]), Some(&[]), Some(&[]), None),
            Err(ProcessError::NoCommand)
        );
    }

    // expand_vars

    #[test]
    fn a_defined_variable_is_replaced() {
        let env = lookup(&[("NAME", "world")]);
        assert_eq!(expand_vars("hello $(NAME)!", &env), "hello world!");
        assert_eq!(expand_vars("$(NAME)$(NAME)", &env), "worldworld");
    }

    #[test]
    fn an_undefined_variable_is_left_as_written() {
        let env = lookup(&[]);
        assert_eq!(expand_vars("a $(MISSING) b", &env), "a $(MISSING) b");
        assert_eq!(expand_vars("$()", &env), "$()");
    }

    #[test]
    fn double_dollar_escapes_expansion() {
        let env = lookup(&[("VAR", "x")]);
        assert_eq!(expand_vars("$$(VAR)", &env), "$(VAR)");
        assert_eq!(expand_vars("$$$(VAR)", &env), "$x");
        assert_eq!(expand_vars("cost: $$5", &env), "cost: $5");
        assert_eq!(expand_vars("$$$$", &env), "$$");
    }

    #[test]
    fn a_lone_or_shell_style_dollar_is_kept() {
        let env = lookup(&[("HOME", "/root")]);
        assert_eq!(
            expand_vars("$HOME ${HOME} end$", &env),
            "$HOME ${HOME} end$"
        );
    }

    #[test]
    fn an_unclosed_reference_is_literal_and_later_escapes_still_apply() {
        let env = lookup(&[("A", "1")]);
        assert_eq!(expand_vars("$(A $$", &env), "$(A $");
        assert_eq!(expand_vars("x $(", &env), "x $(");
    }

    #[test]
    fn expansion_is_not_recursive() {
        let env = lookup(&[("A", "$(B)"), ("B", "no")]);
        assert_eq!(expand_vars("$(A)", &env), "$(B)");
    }

    #[test]
    fn expansion_keeps_non_ascii_text() {
        let env = lookup(&[("É", "é")]);
        assert_eq!(expand_vars("ü$ü $(É)", &env), "ü$ü é");
    }

    #[test]
    fn escaped_values_come_back_unchanged_from_expansion() {
        let env = lookup(&[("A", "1")]);
        for s in ["$(A)", "$$(A)", "a$", "$", "$$$(A)$", "plain"] {
            assert_eq!(expand_vars(&escape_vars(s), &env), s);
        }
    }

    // build_env

    #[test]
    fn the_image_env_comes_first_and_pod_env_overrides_it_in_place() {
        let env = env_of(
            &["PATH=/bin", "A=image", "B=image"],
            &[("NEW", "1"), ("A", "pod")],
            None,
        );
        assert_eq!(
            env,
            vec![
                ("PATH".to_string(), "/bin".to_string()),
                ("A".to_string(), "pod".to_string()),
                ("B".to_string(), "image".to_string()),
                ("NEW".to_string(), "1".to_string()),
            ]
        );
    }

    #[test]
    fn pod_env_values_expand_earlier_pod_entries_and_the_image_env() {
        let env = env_of(
            &["PATH=/bin", "BASE=/opt"],
            &[
                ("DIR", "$(BASE)/app"),
                ("CONF", "$(DIR)/conf"),
                ("PATH", "$(PATH):$(DIR)/bin"),
            ],
            None,
        );
        assert_eq!(get(&env, "CONF"), Some("/opt/app/conf"));
        assert_eq!(get(&env, "PATH"), Some("/bin:/opt/app/bin"));
    }

    #[test]
    fn a_pod_env_value_cannot_refer_to_a_later_entry() {
        let env = env_of(&[], &[("A", "$(B)"), ("B", "b")], None);
        assert_eq!(get(&env, "A"), Some("$(B)"));
    }

    #[test]
    fn image_env_values_are_not_expanded() {
        let env = env_of(&["A=1", "B=$(A)"], &[], None);
        assert_eq!(get(&env, "B"), Some("$(A)"));
    }

    #[test]
    fn a_later_duplicate_in_the_pod_env_wins() {
        let env = env_of(&[], &[("A", "1"), ("A", "2")], None);
        assert_eq!(get(&env, "A"), Some("2"));
        assert_eq!(env.iter().filter(|(n, _)| n == "A").count(), 1);
    }

    #[test]
    fn a_default_path_is_added_when_nothing_sets_one() {
        let env = env_of(&["A=1"], &[], None);
        assert_eq!(get(&env, "PATH"), Some(DEFAULT_PATH));
        let env = env_of(&[], &[("PATH", "/mine")], None);
        assert_eq!(get(&env, "PATH"), Some("/mine"));
    }

    #[test]
    fn hostname_is_set_unless_the_image_or_pod_sets_it() {
        let env = env_of(&[], &[], Some("web-0"));
        assert_eq!(get(&env, "HOSTNAME"), Some("web-0"));
        let env = env_of(&[], &[("HOSTNAME", "mine")], Some("web-0"));
        assert_eq!(get(&env, "HOSTNAME"), Some("mine"));
        let env = env_of(&[], &[], None);
        assert_eq!(get(&env, "HOSTNAME"), None);
    }

    #[test]
    fn an_image_env_value_may_contain_equals_signs() {
        let env = env_of(&["OPTS=-Da=b"], &[], None);
        assert_eq!(get(&env, "OPTS"), Some("-Da=b"));
    }

    #[test]
    fn an_image_env_entry_without_equals_is_an_error() {
        let err = build_env(&v(&["JUSTNAME"]), &[], None).unwrap_err();
        assert!(err.to_string().contains("JUSTNAME"), "{err}");
    }

    #[test]
    fn env_names_with_equals_nul_or_nothing_are_refused() {
        for name in ["A=B", "A\0", ""] {
            let err = build_env(&[], &[(name.to_string(), "v".to_string())], None).unwrap_err();
            assert!(
                matches!(err, ProcessError::InvalidEnvName { .. }),
                "{name:?}: {err}"
            );
        }
        let err = build_env(&v(&["=x"]), &[], None).unwrap_err();
        assert!(matches!(err, ProcessError::InvalidEnvName { .. }), "{err}");
    }

    #[test]
    fn env_values_with_nul_are_refused() {
        let err = build_env(&[], &[("A".to_string(), "a\0b".to_string())], None).unwrap_err();
        assert_eq!(
            err,
            ProcessError::InvalidEnvValue {
                name: "A".to_string(),
                origin: "pod spec"
            }
        );
        assert!(build_env(&v(&["A=\0"]), &[], None).is_err());
    }

    // passwd / group parsing

    #[test]
    fn passwd_parsing_skips_comments_blanks_and_malformed_lines() {
        let names: Vec<String> = parse_passwd(PASSWD).into_iter().map(|u| u.name).collect();
        assert_eq!(names, v(&["root", "daemon", "app", "nohome", "app"]));
    }

    #[test]
    fn group_parsing_skips_malformed_lines_and_trims_members() {
        let groups = parse_group(GROUP);
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["root", "daemon", "users", "app", "staff", "wheel"]
        );
        assert_eq!(groups[2].members, v(&["app", "other"]));
        assert!(groups[1].members.is_empty());
    }

    // resolve_user

    #[test]
    fn an_empty_user_is_root_with_roots_home_and_groups() {
        let u = user("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, vec![0, 10]);
    }

    #[test]
    fn an_empty_user_without_passwd_is_root_with_home_slash() {
        let u = resolve_user("", None, None).unwrap();
        assert_eq!(
            u,
            ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                home: "/".to_string()
            }
        );
    }

    #[test]
    fn a_user_name_takes_uid_gid_and_home_from_passwd() {
        let u = user("app").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/app"));
    }

    #[test]
    fn the_first_passwd_entry_of_a_name_wins() {
        assert_eq!(user("app").unwrap().uid, 1000);
    }

    #[test]
    fn supplementary_groups_are_the_groups_listing_the_user() {
        assert_eq!(user("app").unwrap().additional_gids, vec![100, 50, 10]);
        assert!(user("daemon").unwrap().additional_gids.is_empty());
    }

    #[test]
    fn a_numeric_uid_listed_in_passwd_takes_its_gid_home_and_groups() {
        let u = user("1000").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/app"));
        assert_eq!(u.additional_gids, vec![100, 50, 10]);
    }

    #[test]
    fn a_numeric_uid_not_in_passwd_runs_with_gid_zero_and_home_slash() {
        let u = user("4242").unwrap();
        assert_eq!(
            u,
            ResolvedUser {
                uid: 4242,
                gid: 0,
                additional_gids: vec![],
                home: "/".to_string()
            }
        );
        assert_eq!(resolve_user("4242", None, None).unwrap().uid, 4242);
    }

    #[test]
    fn an_empty_home_in_passwd_becomes_slash() {
        assert_eq!(user("nohome").unwrap().home, "/");
    }

    #[test]
    fn a_numeric_uid_and_gid_need_no_files() {
        let u = resolve_user("1234:5678", None, None).unwrap();
        assert_eq!((u.uid, u.gid), (1234, 5678));
    }

    #[test]
    fn an_explicit_group_replaces_the_primary_gid_but_keeps_supplementary_groups() {
        let u = user("app:staff").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        assert_eq!(u.additional_gids, vec![100, 50, 10]);
        let u = user("1000:77").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 77, "/home/app"));
        let u = user("4242:users").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 100));
    }

    #[test]
    fn an_empty_group_after_the_colon_is_no_group() {
        assert_eq!(user("app:").unwrap().gid, 1000);
    }

    #[test]
    fn an_unknown_user_name_is_an_error_naming_the_user_and_passwd() {
        let err = user("nobody").unwrap_err();
        assert_eq!(
            err,
            ProcessError::UnknownUser {
                user: "nobody".to_string()
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("nobody") && text.contains("/etc/passwd"),
            "{text}"
        );
    }

    #[test]
    fn a_user_name_in_an_image_without_passwd_is_an_error() {
        let err = resolve_user("app", None, Some(GROUP)).unwrap_err();
        assert!(matches!(err, ProcessError::NoPasswd { .. }), "{err}");
        assert!(err.to_string().contains("no /etc/passwd"), "{err}");
    }

    #[test]
    fn an_unknown_group_name_is_an_error_naming_the_group() {
        let err = user("app:nogroup").unwrap_err();
        assert_eq!(
            err,
            ProcessError::UnknownGroup {
                group: "nogroup".to_string()
            }
        );
        assert!(err.to_string().contains("/etc/group"), "{err}");
        let err = resolve_user("app:staff", Some(PASSWD), None).unwrap_err();
        assert!(matches!(err, ProcessError::NoGroupFile { .. }), "{err}");
    }

    #[test]
    fn ids_out_of_range_are_refused() {
        for spec in ["-1", "2147483648", "99999999999999999999999", "0:-5"] {
            let err = user(spec).unwrap_err();
            assert!(
                matches!(err, ProcessError::IdOutOfRange { .. }),
                "{spec}: {err}"
            );
        }
        assert_eq!(user("2147483647").unwrap().uid, 2_147_483_647);
    }

    #[test]
    fn a_spec_with_two_colons_is_refused() {
        let err = user("a:b:c").unwrap_err();
        assert!(matches!(err, ProcessError::InvalidUserSpec { .. }), "{err}");
    }
}

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

//! A container's environment from the pod spec and the node's objects, as kubelet makes it:
//! `envFrom` first (each source's keys in order, a prefix prepended, invalid names skipped
//! and reported), then `env` in order, a later entry replacing an earlier one of the same
//! name. Only literal `value`s are `$(VAR)`-expanded (later, by the runtime); values taken
//! from objects or the downward API are passed with `$` escaped so they stay as they are.

use super::downward::{env_field, resource_container, resource_value, NodeInfo};
use super::objects::{ConfigError, ConfigObjects};
use super::spec::{ContainerSpec, EnvFromKind, EnvSource, PodSpec};
use super::validate::env_var_name;

/// The pod's variables for one container, in the order the runtime applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedEnv {
    /// `(name, value)`; values not from a literal have `$` doubled.
    pub vars: Vec<(String, String)>,
    /// Kubelet's InvalidEnvironmentVariableNames messages, one per envFrom source that had
    /// keys that are not variable names.
    pub skipped: Vec<String>,
}

fn escape(value: &str) -> String {
    value.replace('$', "$$")
}

fn push(vars: &mut Vec<(String, String)>, name: String, value: String) {
    match vars.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name, value)),
    }
}

pub fn resolve_env(
    pod: &PodSpec,
    container: &ContainerSpec,
    objects: &ConfigObjects,
    node: &NodeInfo,
    pod_ips: &[std::net::IpAddr],
) -> Result<ResolvedEnv, ConfigError> {
    let ns = pod.namespace.as_str();
    let mut out = ResolvedEnv::default();
    for from in &container.env_from {
        let (kind, name, optional) = match &from.source {
            EnvFromKind::ConfigMap { name, optional } => ("configMap", name, *optional),
            EnvFromKind::Secret { name, optional } => ("secret", name, *optional),
        };
        let entries: Vec<(String, String)> = match &from.source {
            EnvFromKind::ConfigMap { .. } => match objects.config_map(ns, name) {
                // Only `data`: kubelet leaves binaryData out of the environment.
                Some(cm) => cm
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                None if optional => continue,
                None => {
                    return Err(ConfigError::MissingConfigMap {
                        namespace: ns.to_string(),
                        name: name.clone(),
                    })
                }
            },
            EnvFromKind::Secret { .. } => match objects.secret(ns, name) {
                Some(s) => s
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                    .collect(),
                None if optional => continue,
                None => {
                    return Err(ConfigError::MissingSecret {
                        namespace: ns.to_string(),
                        name: name.clone(),
                    })
                }
            },
        };
        let mut invalid = Vec::new();
        for (key, value) in entries {
            let var = format!("{}{key}", from.prefix);
            if env_var_name(&var).is_err() {
                invalid.push(var);
                continue;
            }
            push(&mut out.vars, var, escape(&value));
        }
        if !invalid.is_empty() {
            out.skipped.push(format!(
                "Keys [{}] from the EnvFrom {kind} {ns}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }
    for var in &container.env {
        let env_err = |reason: String| ConfigError::Env {
            container: container.name.clone(),
            name: var.name.clone(),
            reason,
        };
        let value = match &var.source {
            EnvSource::Value(v) => v.clone(),
            EnvSource::ConfigMapKey {
                name,
                key,
                optional,
            } => match objects.config_map(ns, name) {
                Some(cm) => match cm.data.get(key) {
                    Some(v) => escape(v),
                    None if *optional => continue,
                    None => {
                        return Err(ConfigError::MissingConfigMapKey {
                            namespace: ns.to_string(),
                            name: name.clone(),
                            key: key.clone(),
                        })
                    }
                },
                None if *optional => continue,
                None => {
                    return Err(ConfigError::MissingConfigMap {
                        namespace: ns.to_string(),
                        name: name.clone(),
                    })
                }
            },
            EnvSource::SecretKey {
                name,
                key,
                optional,
            } => match objects.secret(ns, name) {
                Some(s) => match s.data.get(key) {
                    Some(v) => escape(&String::from_utf8_lossy(v)),
                    None if *optional => continue,
                    None => {
                        return Err(ConfigError::MissingSecretKey {
                            namespace: ns.to_string(),
                            name: name.clone(),
                            key: key.clone(),
                        })
                    }
                },
                None if *optional => continue,
                None => {
                    return Err(ConfigError::MissingSecret {
                        namespace: ns.to_string(),
                        name: name.clone(),
                    })
                }
            },
            EnvSource::Field(path) => {
                escape(&env_field(pod, path, node, pod_ips).map_err(env_err)?)
            }
            EnvSource::ResourceField(r) => {
                let target = resource_container(pod, Some(container), r).map_err(env_err)?;
                resource_value(target, r, node).map_err(env_err)?
            }
        };
        push(&mut out.vars, var.name.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::{parse_manifest_file, Limits, ParsedObject};

    fn node() -> NodeInfo {
        NodeInfo {
            node_name: "node1".into(),
            host_ip: "10.0.0.1".into(),
            cpu_millis: 4000,
            memory: 1 << 30,
            ephemeral_storage: 1 << 40,
        }
    }

    /// Objects and the one pod of a manifest text.
    fn load(text: &str) -> (ConfigObjects, PodSpec) {
        let objects =
            parse_manifest_file("m.yaml".as_ref(), text.as_bytes(), &Limits::default()).unwrap();
        let mut set = ConfigObjects::default();
        let mut pod = None;
        for o in objects {
            let key = o.key();
            match o {
                ParsedObject::Pod(p) => pod = Some(p.spec),
                ParsedObject::ConfigMap(c) => {
                    set.config_maps.insert(key, c);
                }
                ParsedObject::Secret(s) => {
                    set.secrets.insert(key, s);
                }
            }
        }
        (set, pod.unwrap())
    }

    const OBJECTS: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {level: debug, A: from-cm, 1bad: x, price: '$(HOME)'}\nbinaryData: {blob: AAEC}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {token: hunter2}\n---\n";

    fn pod(env: &str) -> String {
        format!("{OBJECTS}apiVersion: v1\nkind: Pod\nmetadata: {{name: web, labels: {{app: shop}}}}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    resources: {{limits: {{memory: 64Mi}}}}\n{env}")
    }

    fn resolve(env: &str) -> Result<ResolvedEnv, ConfigError> {
        let (objects, spec) = load(&pod(env));
        resolve_env(&spec, &spec.containers[0], &objects, &node(), &[])
    }

    #[test]
    fn env_from_comes_first_and_env_overrides_it_in_place() {
        let env = resolve(
            "    envFrom: [{configMapRef: {name: cfg}}]\n    env:\n    - {name: A, value: literal}\n    - {name: B, value: '$(A)-x'}\n",
        )
        .unwrap();
        let names: Vec<&str> = env.vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["A", "level", "price", "B"]);
        assert_eq!(env.vars[0].1, "literal");
        assert_eq!(env.vars[3].1, "$(A)-x", "expansion is left to the runtime");
        assert_eq!(env.vars[2].1, "$$(HOME)", "object values are not expanded");
        assert_eq!(
            env.skipped,
            vec!["Keys [1bad] from the EnvFrom configMap default/cfg were skipped since they are considered invalid environment variable names."]
        );
    }

    #[test]
    fn prefixes_apply_and_binary_data_stays_out() {
        let env = resolve("    envFrom: [{prefix: CFG_, configMapRef: {name: cfg}}]\n").unwrap();
        let names: Vec<&str> = env.vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["CFG_1bad", "CFG_A", "CFG_level", "CFG_price"]);
        assert!(env.skipped.is_empty());
    }

    #[test]
    fn key_refs_resolve_and_missing_ones_fail_unless_optional() {
        let env = resolve("    env:\n    - {name: L, valueFrom: {configMapKeyRef: {name: cfg, key: level}}}\n    - {name: T, valueFrom: {secretKeyRef: {name: creds, key: token}}}\n    - {name: O, valueFrom: {secretKeyRef: {name: gone, key: token, optional: true}}}\n    - {name: P, valueFrom: {configMapKeyRef: {name: cfg, key: nope, optional: true}}}\n").unwrap();
        assert_eq!(
            env.vars,
            vec![
                ("L".to_string(), "debug".to_string()),
                ("T".to_string(), "hunter2".to_string())
            ]
        );
        let cases = [
            (
                "    env: [{name: X, valueFrom: {configMapKeyRef: {name: gone, key: a}}}]\n",
                "configmap \"gone\" not found (namespace default); add it to the manifest directory or mark the reference optional",
            ),
            (
                "    env: [{name: X, valueFrom: {configMapKeyRef: {name: cfg, key: nope}}}]\n",
                "couldn't find key nope in ConfigMap default/cfg",
            ),
            (
                "    env: [{name: X, valueFrom: {configMapKeyRef: {name: cfg, key: blob}}}]\n",
                "couldn't find key blob in ConfigMap default/cfg",
            ),
            (
                "    env: [{name: X, valueFrom: {secretKeyRef: {name: creds, key: nope}}}]\n",
                "couldn't find key nope in Secret default/creds",
            ),
            (
                "    envFrom: [{secretRef: {name: gone}}]\n",
                "secret \"gone\" not found (namespace default); add it to the manifest directory or mark the reference optional",
            ),
        ];
        for (env, expected) in cases {
            assert_eq!(resolve(env).unwrap_err().to_string(), expected, "{env}");
        }
        assert!(
            resolve("    envFrom: [{secretRef: {name: gone, optional: true}}]\n")
                .unwrap()
                .vars
                .is_empty()
        );
    }

    #[test]
    fn downward_values_resolve_in_env() {
        let env = resolve("    env:\n    - {name: N, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: APP, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}\n    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n").unwrap();
        let values: Vec<&str> = env.vars.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, vec!["web", "shop", "64", "4", "node1"]);
    }
}

//! The static-pod manifest directory (kubelet's staticPodPath): Pod, ConfigMap and Secret
//! objects in .yaml, .yml and .json files. Dotfiles are not read (as kubelet), but a change
//! to them still triggers a rescan, which is how the ConfigMap-volume pattern (visible files
//! are symlinks into a `..data` symlink swapped atomically) is seen. Watched with inotify,
//! with a periodic full rescan behind it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::sync::mpsc;

use super::host_ports::{HostPortBook, HostPortClash};
use crate::pod::spec::PodSpec;
use crate::pod::{
    parse_manifest_file, ConfigMapObject, Limits, ParsedObject, PodError, SecretObject, Warning,
};

/// The directory cannot be watched, or a file (or one object in it) is not used: the
/// file problems stay typed until they are printed (events, logs) or counted (metrics).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("watch manifest directory {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("{}: larger than {max} bytes; refused", path.display())]
    TooLarge { path: PathBuf, max: usize },
    /// Rewritten in place, a file is empty for a moment.
    #[error("{}: the file is empty", path.display())]
    Empty { path: PathBuf },
    #[error(transparent)]
    Invalid(#[from] PodError),
    #[error("{}: document {document}: pod {key} is also defined in {}; this one is ignored", path.display(), first.display())]
    Duplicate {
        path: PathBuf,
        document: usize,
        key: String,
        first: PathBuf,
    },
    #[error("{}: pod {key}: {clash}", path.display())]
    HostPortInUse {
        path: PathBuf,
        key: String,
        #[source]
        clash: HostPortClash,
    },
    #[error("{}: document {document}: data: {kind} {key} is immutable and its data changed; the previous data stays in use until the object is deleted and created again", path.display())]
    ImmutableChanged {
        path: PathBuf,
        document: usize,
        kind: &'static str,
        key: String,
    },
}

impl SourceError {
    /// What went wrong, in one word: the `reason` label of the manifest error metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Empty { .. } => "empty",
            SourceError::TooLarge { .. } | SourceError::Invalid(PodError::TooLarge { .. }) => {
                "too_large"
            }
            SourceError::Duplicate { .. } => "duplicate",
            SourceError::Invalid(PodError::Invalid { field, .. })
                if field.starts_with("spec.") || field.starts_with("metadata.") =>
            {
                "invalid_field"
            }
            SourceError::ImmutableChanged { .. } => "invalid_field",
            SourceError::HostPortInUse { .. } => "host_port_in_use",
            SourceError::Watch { .. } | SourceError::Read { .. } | SourceError::Invalid(_) => {
                "parse"
            }
        }
    }
}

/// What one file holds, or why it holds nothing usable.
#[derive(Debug, Clone)]
pub enum FileContent {
    Objects(Vec<ParsedObject>),
    Invalid(SourceError),
}

/// One scan of the directory: each manifest file's content.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub files: BTreeMap<PathBuf, FileContent>,
}

fn is_manifest(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !name.starts_with('.')
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        )
}

/// Reads every manifest file of `dir` (a missing directory is empty).
pub fn scan(dir: &Path, limits: &Limits) -> Scan {
    let mut out = Scan::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !is_manifest(&path) || !path.is_file() {
            continue;
        }
        let content = match read_bounded(&path, limits.max_bytes) {
            Err(e) => FileContent::Invalid(e),
            // A file rewritten in place is empty for a moment: an error (its pods keep their
            // last good spec), not a file without pods, as kubelet treats it.
            Ok(bytes) if bytes.iter().all(|b| b.is_ascii_whitespace()) => {
                FileContent::Invalid(SourceError::Empty { path: path.clone() })
            }
            Ok(bytes) => match parse_manifest_file(&path, &bytes, limits) {
                Ok(objects) => FileContent::Objects(objects),
                Err(e) => FileContent::Invalid(e.into()),
            },
        };
        out.files.insert(path, content);
    }
    out
}

fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>, SourceError> {
    use std::io::Read;
    let err = |e| SourceError::Read {
        path: path.to_path_buf(),
        source: Arc::new(e),
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() > max {
        return Err(SourceError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(bytes)
}

/// The objects the agent acts on, merged over files, each from its last good version.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub pods: BTreeMap<String, PodSpec>,
    /// Where each pod came from.
    pub origin: BTreeMap<String, PathBuf>,
    pub config_maps: BTreeMap<String, ConfigMapObject>,
    pub secrets: BTreeMap<String, SecretObject>,
    /// Problems found in this scan: (file, what), for the log, events and metrics.
    pub errors: Vec<(PathBuf, SourceError)>,
    pub warnings: Vec<(String, Warning)>,
}

/// Keeps each file's last good content, so a pod whose file turns invalid keeps running on
/// its last good spec, and merges the files into one desired state.
#[derive(Debug, Default)]
pub struct ManifestState {
    last_good: BTreeMap<PathBuf, Vec<ParsedObject>>,
    /// The ConfigMaps and Secrets of the last update, which immutable ones must match.
    config_maps: BTreeMap<String, ConfigMapObject>,
    secrets: BTreeMap<String, SecretObject>,
    /// The pods of the last update: they keep their host ports.
    admitted: BTreeSet<String>,
}

/// An immutable object's data may not change (the API server refuses such an update); the
/// old version stays in force until the object is deleted and created again.
fn immutable_changed(
    path: &Path,
    kind: &'static str,
    key: &str,
    document: usize,
) -> (PathBuf, SourceError) {
    (
        path.to_path_buf(),
        SourceError::ImmutableChanged {
            path: path.to_path_buf(),
            document,
            kind,
            key: key.to_string(),
        },
    )
}

impl ManifestState {
    pub fn update(&mut self, scan: Scan) -> Desired {
        let mut desired = Desired::default();
        // Files that are gone take their objects with them.
        self.last_good
            .retain(|path, _| scan.files.contains_key(path));
        for (path, content) in scan.files {
            match content {
                FileContent::Objects(objects) => {
                    self.last_good.insert(path, objects);
                }
                FileContent::Invalid(message) => desired.errors.push((path, message)),
            }
        }
        for (path, objects) in &self.last_good {
            for object in objects {
                let key = object.key();
                match object {
                    ParsedObject::Pod(pod) => {
                        if let Some(first) = desired.origin.get(&key) {
                            let duplicate = SourceError::Duplicate {
                                path: path.clone(),
                                document: pod.document,
                                key: key.clone(),
                                first: first.clone(),
                            };
                            desired.errors.push((path.clone(), duplicate));
                            continue;
                        }
                        for w in &pod.warnings {
                            desired.warnings.push((key.clone(), w.clone()));
                        }
                        desired.origin.insert(key.clone(), path.clone());
                        desired.pods.insert(key, pod.spec.clone());
                    }
                    ParsedObject::ConfigMap(c) => {
                        let kept = match self.config_maps.get(&key) {
                            Some(old)
                                if old.immutable
                                    && (old.data != c.data || old.binary_data != c.binary_data) =>
                            {
                                desired.errors.push(immutable_changed(
                                    path,
                                    "ConfigMap",
                                    &key,
                                    c.document,
                                ));
                                old.clone()
                            }
                            _ => c.clone(),
                        };
                        desired.config_maps.insert(key, kept);
                    }
                    ParsedObject::Secret(s) => {
                        let kept = match self.secrets.get(&key) {
                            Some(old) if old.immutable && old.data != s.data => {
                                desired
                                    .errors
                                    .push(immutable_changed(path, "Secret", &key, s.document));
                                old.clone()
                            }
                            _ => s.clone(),
                        };
                        desired.secrets.insert(key, kept);
                    }
                }
            }
        }
        self.refuse_host_port_clashes(&mut desired);
        self.config_maps = desired.config_maps.clone();
        self.secrets = desired.secrets.clone();
        desired
    }

    /// Pods admitted before keep their host ports; a new pod asking for a held one is
    /// refused, naming the holder (it is admitted once the port is free).
    fn refuse_host_port_clashes(&mut self, desired: &mut Desired) {
        let mut book = HostPortBook::default();
        let (old, new): (Vec<_>, Vec<_>) = desired
            .pods
            .iter()
            .partition(|(key, _)| self.admitted.contains(*key));
        for (key, pod) in old {
            book.hold(key, pod);
        }
        let refused: Vec<(String, HostPortClash)> = new
            .into_iter()
            .filter_map(|(key, pod)| book.claim(key, pod).err().map(|c| (key.clone(), c)))
            .collect();
        for (key, clash) in refused {
            desired.pods.remove(&key);
            let path = desired.origin.remove(&key).unwrap_or_default();
            let error = SourceError::HostPortInUse {
                path: path.clone(),
                key,
                clash,
            };
            desired.errors.push((path, error));
        }
        self.admitted = desired.pods.keys().cloned().collect();
    }
}

/// Watches `dir` with inotify on a thread of its own; every change (dotfiles included)
/// sends a wake-up. The directory is created if missing, so it can be watched.
pub fn watch(dir: &Path) -> Result<mpsc::Receiver<()>, SourceError> {
    let err = |source| SourceError::Watch {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| err(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(err)?;
    let flags = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF;
    inotify.add_watch(dir, flags).map_err(err)?;
    let (tx, rx) = mpsc::channel(1);
    std::thread::Builder::new()
        .name("manifest-watch".into())
        .spawn(move || loop {
            match inotify.read_events() {
                Ok(_) => {
                    // A full channel already holds a wake-up: the next scan sees this too.
                    let _ = tx.try_send(());
                    if tx.is_closed() {
                        return;
                    }
                }
                Err(nix::Error::EINTR) => continue,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
        .map_err(|e| err(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: app, image: x:1}\n";

    #[test]
    fn dotfiles_and_other_extensions_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), POD).unwrap();
        std::fs::write(
            dir.path().join(".hidden.yaml"),
            POD.replace("web", "hidden"),
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let desired = ManifestState::default().update(scan(dir.path(), &Limits::default()));
        assert_eq!(desired.pods.keys().collect::<Vec<_>>(), vec!["default/web"]);
        assert!(desired.errors.is_empty());
    }

    #[test]
    fn an_invalid_file_keeps_its_last_good_pods_and_reports_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.yaml");
        std::fs::write(&file, POD).unwrap();
        let mut state = ManifestState::default();
        assert_eq!(
            state
                .update(scan(dir.path(), &Limits::default()))
                .pods
                .len(),
            1
        );
        std::fs::write(&file, POD.replace("image: x:1", "image: \"\"")).unwrap();
        let desired = state.update(scan(dir.path(), &Limits::default()));
        assert_eq!(desired.pods.len(), 1, "the pod keeps its last good spec");
        assert_eq!(desired.errors.len(), 1);
        assert!(
            desired.errors[0].1.to_string().contains("web.yaml"),
            "{:?}",
            desired.errors
        );
        std::fs::remove_file(&file).unwrap();
        assert!(
            state
                .update(scan(dir.path(), &Limits::default()))
                .pods
                .is_empty(),
            "deleting the file removes the pod"
        );
    }

    #[test]
    fn the_same_pod_in_two_files_is_an_error_on_the_second() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), POD).unwrap();
        std::fs::write(dir.path().join("b.yaml"), POD).unwrap();
        let desired = ManifestState::default().update(scan(dir.path(), &Limits::default()));
        assert_eq!(desired.origin["default/web"], dir.path().join("a.yaml"));
        assert!(
            desired.errors[0].1.to_string().contains("also defined in"),
            "{:?}",
            desired.errors
        );
    }

    #[test]
    fn an_immutable_config_map_keeps_its_data_until_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cfg.yaml");
        let cm = |value: &str| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\nimmutable: true\ndata: {{a: {value}}}\n")
        };
        std::fs::write(&file, cm("one")).unwrap();
        let mut state = ManifestState::default();
        let limits = Limits::default();
        state.update(scan(dir.path(), &limits));
        std::fs::write(&file, cm("two")).unwrap();
        let desired = state.update(scan(dir.path(), &limits));
        assert_eq!(desired.config_maps["default/cfg"].data["a"], "one");
        assert_eq!(
            desired.errors[0].1.to_string(),
            format!("{}: document 1: data: ConfigMap default/cfg is immutable and its data changed; the previous data stays in use until the object is deleted and created again", file.display())
        );
        std::fs::remove_file(&file).unwrap();
        assert!(state
            .update(scan(dir.path(), &limits))
            .config_maps
            .is_empty());
        std::fs::write(&file, cm("two")).unwrap();
        let desired = state.update(scan(dir.path(), &limits));
        assert_eq!(desired.config_maps["default/cfg"].data["a"], "two");
        assert!(desired.errors.is_empty());
    }

    #[test]
    fn a_new_pod_asking_for_a_held_host_port_is_refused_until_the_holder_goes() {
        let dir = tempfile::tempdir().unwrap();
        let pod = |name: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: app\n    image: x:1\n    ports: [{{containerPort: 80, hostPort: 8080}}]\n")
        };
        let (limits, mut state) = (Limits::default(), ManifestState::default());
        // "b" runs first; "a" comes later and sorts before it, but "b" holds the port.
        std::fs::write(dir.path().join("b.yaml"), pod("b")).unwrap();
        assert!(state.update(scan(dir.path(), &limits)).errors.is_empty());
        let second = dir.path().join("a.yaml");
        std::fs::write(&second, pod("a")).unwrap();
        let desired = state.update(scan(dir.path(), &limits));
        assert_eq!(desired.pods.keys().collect::<Vec<_>>(), ["default/b"]);
        assert_eq!(
            desired.errors[0].1.to_string(),
            format!("{}: pod default/a: host port TCP 8080 is already taken by pod default/b; pick another hostPort or remove one of the two pods", second.display())
        );
        assert_eq!(desired.errors[0].1.reason(), "host_port_in_use");
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        let desired = state.update(scan(dir.path(), &limits));
        assert_eq!(desired.pods.keys().collect::<Vec<_>>(), ["default/a"]);
        assert!(desired.errors.is_empty());
    }

    #[test]
    fn each_file_problem_is_counted_under_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_bytes: 400,
            ..Limits::default()
        };
        let files = [
            ("empty.yaml", " \n".to_string(), "empty"),
            ("big.yaml", "#".repeat(401), "too_large"),
            (
                "field.yaml",
                POD.replace("image: x:1", "image: \"\""),
                "invalid_field",
            ),
            (
                "syntax.yaml",
                "kind: Pod\n  : [unclosed\n".to_string(),
                "parse",
            ),
            (
                "kind.yaml",
                "apiVersion: v1\nkind: Nope\n".to_string(),
                "parse",
            ),
            ("z-twice.yaml", POD.replace("web", "once"), "duplicate"),
            ("once.yaml", POD.replace("web", "once"), ""),
        ];
        for (name, text, _) in &files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let desired = ManifestState::default().update(scan(dir.path(), &limits));
        for (name, _, reason) in files.iter().filter(|f| !f.2.is_empty()) {
            let found: Vec<&str> = desired
                .errors
                .iter()
                .filter(|(p, _)| p.ends_with(name))
                .map(|(_, e)| e.reason())
                .collect();
            assert_eq!(found, vec![*reason], "{name}: {:?}", desired.errors);
        }
    }
}

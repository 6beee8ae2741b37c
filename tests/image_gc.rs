//! Image garbage collection by disk usage, on a data root that is a small tmpfs so the
//! filesystem's usage is the store's: least recently used images go first, only until the
//! low threshold is reached, and an image a container uses or a pod names never goes —
//! through `layerlet gc --free-space`, the agent's periodic pass, and the library.

mod common;
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Agent, Node};
use support::{Compression, ImageSpec, Layer, LayerBuilder};

const MIB: u64 = 1 << 20;

/// A node whose data root is a 64 MiB tmpfs; unmounted (after its pods are removed) on drop.
struct SmallDisk {
    node: Node,
}

impl SmallDisk {
    fn new() -> SmallDisk {
        let node = Node::new();
        std::fs::create_dir_all(node.root()).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(node.root())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs data root failed");
        SmallDisk { node }
    }

    /// (capacity, used) of the data root's filesystem as `df` counts them: used + available,
    /// used.
    fn usage(&self) -> (u64, u64) {
        let s = nix::sys::statvfs::statvfs(&self.node.root()).unwrap();
        let used = (s.blocks() - s.blocks_free()) * s.fragment_size();
        let avail = s.blocks_available() * s.fragment_size();
        (used + avail, used)
    }

    /// Thresholds (high, low) that trigger now and ask for between `at_least` and
    /// `at_least` + 1% of the disk.
    fn thresholds_freeing(&self, at_least: u64) -> (u8, u8) {
        let (cap, used) = self.usage();
        let high = (used * 100 / cap) as u8;
        let low = (used.saturating_sub(at_least) * 100 / cap) as u8;
        assert!(
            low < high,
            "the disk is too empty for this test: {used} of {cap}"
        );
        (high, low)
    }

    fn import(&self, reference: &str, spec: &ImageSpec) {
        let layout = self.node.dir.path().join(format!(
            "layout-{}",
            reference.replace(['/', ':', '.'], "-")
        ));
        support::write_oci_layout(&layout, spec, reference);
        self.node.ok(&["image", "import", layout.to_str().unwrap()]);
        std::fs::remove_dir_all(&layout).unwrap();
    }

    fn image_names(&self) -> BTreeSet<String> {
        let images = self.node.json(&["images"]);
        images
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["tag"] != "<none>")
            .map(|i| {
                format!(
                    "{}:{}",
                    i["repository"].as_str().unwrap(),
                    i["tag"].as_str().unwrap()
                )
            })
            .collect()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        common::remove_all_pods(&self.node);
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.node.root())
            .status();
    }
}

/// busybox plus a layer of `mib` MiB of its own, so every image has unique bytes.
fn image_with_payload(tag: &str, mib: u64) -> ImageSpec {
    let mut payload = LayerBuilder::new();
    payload.dir("payload", 0o755).file(
        &format!("payload/{tag}.bin"),
        vec![tag.as_bytes()[0]; (mib * MIB) as usize],
        0o644,
    );
    ImageSpec {
        layers: vec![
            LayerBuilder::busybox_layer(Compression::None),
            Layer::from_tar(payload.build_tar(), Compression::None),
        ],
        ..ImageSpec::busybox()
    }
}

fn reference(tag: &str) -> String {
    format!("example.com/gc/{tag}:1")
}

/// `last_used` has one-second resolution: space the uses out.
fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

fn sleeper_pod(dir: &Path, name: &str, image: &str) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: Never\n    command: [/bin/busybox, sleep, '3600']\n"
        ),
    )
    .unwrap();
    file
}

#[test]
fn the_least_recently_used_image_goes_first_and_only_as_much_as_the_low_threshold_asks() {
    let disk = SmallDisk::new();
    for tag in ["oldest", "middle", "newest"] {
        disk.import(&reference(tag), &image_with_payload(tag, 3));
        next_second();
    }
    // Ask for about 1 MiB: removing the least recently used image (3 MiB of its own) is enough.
    let (high, low) = disk.thresholds_freeing(MIB);
    let out = disk.node.json(&[
        "gc",
        "--free-space",
        "--image-gc-high-threshold",
        &high.to_string(),
        "--image-gc-low-threshold",
        &low.to_string(),
    ]);
    assert_eq!(out["images_removed"].as_array().unwrap().len(), 1, "{out}");
    let names = disk.image_names();
    assert!(!names.contains(&reference("oldest")), "{names:?}");
    assert!(names.contains(&reference("middle")), "{names:?}");
    assert!(names.contains(&reference("newest")), "{names:?}");
    // The payload layer went with it; busybox, shared with the others, stayed.
    let freed = out["collected"]["bytes_freed"].as_u64().unwrap();
    assert!(
        (3 * MIB..4 * MIB).contains(&freed),
        "freed {freed} bytes for one 3 MiB payload layer"
    );

    // Now ask for about 4 MiB: the next least recently used goes, then the next.
    let (high, low) = disk.thresholds_freeing(4 * MIB);
    disk.node.ok(&[
        "gc",
        "--free-space",
        "--image-gc-high-threshold",
        &high.to_string(),
        "--image-gc-low-threshold",
        &low.to_string(),
    ]);
    assert_eq!(disk.image_names(), BTreeSet::new());
}

#[test]
fn below_the_high_threshold_nothing_is_removed() {
    let disk = SmallDisk::new();
    disk.import(&reference("kept"), &image_with_payload("kept", 1));
    let out = disk.node.json(&[
        "gc",
        "--free-space",
        "--image-gc-high-threshold",
        "99",
        "--image-gc-low-threshold",
        "1",
    ]);
    assert_eq!(out["wanted_bytes"], 0, "{out}");
    assert_eq!(disk.image_names(), BTreeSet::from([reference("kept")]));
}

#[test]
fn an_image_a_container_uses_is_never_removed_even_when_it_is_the_least_recently_used() {
    let disk = SmallDisk::new();
    disk.import(&reference("used"), &image_with_payload("used", 2));
    let pod = sleeper_pod(disk.node.dir.path(), "gc-user", &reference("used"));
    disk.node.ok(&["run", "-d", "-f", pod.to_str().unwrap()]);
    next_second();
    disk.import(&reference("idle"), &image_with_payload("idle", 2));
    let out = disk.node.json(&[
        "gc",
        "--free-space",
        "--image-gc-high-threshold",
        "1",
        "--image-gc-low-threshold",
        "0",
    ]);
    assert_eq!(out["images_removed"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(disk.image_names(), BTreeSet::from([reference("used")]));
    // The container still runs on its layers.
    let ps = disk.node.json(&["ps"]);
    assert_eq!(ps[0]["state"], "running", "{ps}");
    disk.node.ok(&[
        "exec",
        "gc-user/app",
        "--",
        "/bin/busybox",
        "ls",
        "/payload/used.bin",
    ]);
}

#[test]
fn images_that_desired_pods_name_are_kept_through_the_library() {
    let disk = SmallDisk::new();
    disk.import(&reference("named"), &image_with_payload("named", 1));
    disk.import(&reference("other"), &image_with_payload("other", 1));
    let store = layerlet::image::store::Store::open(
        &layerlet::layout::NodeLayout::new(disk.node.root(), disk.node.run_root()),
        layerlet::image::store::StoreOptions::default(),
    )
    .unwrap();
    let named = store.resolve(&reference("named")).unwrap();
    let marks = layerlet::image::gc_policy::Watermarks::new(1, 0).unwrap();
    let report = store
        .free_space(marks, &BTreeSet::from([named.clone()]))
        .unwrap();
    assert_eq!(report.images_removed.len(), 1);
    assert!(report.short_of_target(), "the kept image holds the rest");
    assert_eq!(store.resolve(&reference("named")).unwrap(), named);
    assert!(store.resolve(&reference("other")).is_err());
}

#[test]
fn the_agent_collects_unused_images_periodically_and_counts_it() {
    let disk = SmallDisk::new();
    disk.import(&reference("running"), &image_with_payload("running", 1));
    disk.import(&reference("unused"), &image_with_payload("unused", 2));
    // The pod is in the directory before the agent starts: its first pass keeps its image.
    let manifests = disk.node.dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    sleeper_pod(&manifests, "gc-agent", &reference("running"));
    let agent = Agent::start(
        &disk.node,
        &[
            "--image-gc-period-seconds",
            "1",
            "--image-gc-high-threshold",
            "1",
            "--image-gc-low-threshold",
            "0",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names = disk.image_names();
        let (_, metrics) = agent.get("/metrics");
        let removed = metrics
            .lines()
            .find_map(|l| l.strip_prefix("layerlet_image_gc_images_removed_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if !names.contains(&reference("unused")) && removed >= 1 {
            assert!(names.contains(&reference("running")), "{names:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not collect the unused image: {names:?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The pod's image stayed, and the pod runs.
    let pods = agent.get_json("/api/v1/pods");
    let pod = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == "gc-agent")
        .cloned()
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut phase = pod["status"]["phase"].clone();
    while phase != "Running" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        phase = agent.get_json("/api/v1/pods")["items"][0]["status"]["phase"].clone();
    }
    assert_eq!(phase, "Running");
    let events = agent.get_json("/api/v1/events");
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "FreeDiskSpaceFailed"),
        "the image in use holds more than the threshold asks: {events}"
    );
}

//! `/metrics` of a real agent with real containers: the CoW accounting of writable layers
//! (exact bytes, copy-up, whiteouts), the sharing arithmetic against `du -sb`, series that go
//! with their container, ephemeral-storage eviction, bytes under an unmounted image VOLUME,
//! escaping of hostile label values and `promtool check metrics` on a real scrape.
//!
//! Sizes are apparent bytes, as `du -sb` counts them: no block rounding, so a 7 MiB file adds
//! exactly 7,340,032 bytes (allocated blocks, `du` without `-b`, would round each file up to
//! 4 KiB). Nothing asserts on time: every wait polls with a generous deadline.

mod common;
mod support;

use common::unique;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{du_sb, Agent, Node};
use support::{Compression, ImageSpec, LayerBuilder};

const IMAGE: &str = "example.com/test/busybox:1";
/// busybox plus a layer with /one.bin (1 MiB) and /two.bin, VOLUMEs /data and hostile ones.
const FAT: &str = "example.com/test/fat:1";
/// busybox plus another small layer: shares the busybox layer with FAT.
const OTHER: &str = "example.com/test/other:1";
const MIB: u64 = 1 << 20;
const DEADLINE: Duration = Duration::from_secs(90);

/// [`Agent::wait_for`] with this suite's deadline.
fn wait_for<T>(agent: &Agent, what: &str, check: impl FnMut() -> Option<T>) -> T {
    agent.wait_for(what, DEADLINE, check)
}
/// A VOLUME path with a quote, a backslash and a newline: legal in an image config and on
/// Linux, so a label value the text format must escape.
const HOSTILE: &str = "/we\"ird\\path\nline";

fn import(node: &Node, name: &str, spec: &ImageSpec) {
    let layout = node
        .dir
        .path()
        .join(format!("layout-{}", name.replace(['/', ':', '.'], "_")));
    support::write_oci_layout(&layout, spec, name);
    node.ok(&["image", "import", layout.to_str().unwrap()]);
}

fn long_volume() -> String {
    format!("/{}", "v".repeat(400))
}

/// A node with IMAGE, FAT and OTHER imported (uncompressed layers: gzip is slow in debug).
fn node() -> Node {
    let node = Node::new();
    let busybox = ImageSpec {
        layers: vec![LayerBuilder::busybox_layer(Compression::None)],
        ..ImageSpec::busybox()
    };
    import(&node, IMAGE, &busybox);
    let mut fat = LayerBuilder::new();
    fat.file("one.bin", vec![7u8; MIB as usize], 0o644)
        .file("two.bin", vec![1u8; 5000], 0o644);
    let mut fat_spec = busybox.clone();
    fat_spec.layers.push(fat.build(Compression::None));
    fat_spec.volumes = vec!["/data".into(), HOSTILE.into(), long_volume()];
    import(&node, FAT, &fat_spec);
    let mut other = LayerBuilder::new();
    other.file("other.txt", vec![2u8; 3000], 0o644);
    let mut other_spec = busybox;
    other_spec.layers.push(other.build(Compression::None));
    import(&node, OTHER, &other_spec);
    node
}

fn container(name: &str, image: &str, script: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: {image}\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", {}]\n{extra}",
        serde_json::to_string(script).unwrap()
    )
}

fn pod_yaml(name: &str, containers: &[String], extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Always\n  terminationGracePeriodSeconds: 0\n  containers:\n{}{extra}",
        containers.concat()
    )
}

fn write_pod(agent: &Agent, name: &str, yaml: &str) {
    let tmp = agent.manifests.join(format!(".{name}.swp"));
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, agent.manifests.join(format!("{name}.yaml"))).unwrap();
}

/// One sample of a scrape.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format, undoing the escapes of label values (`\\`, `\"`, `\n`).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut key = String::new();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|x| x.1) {
                                    Some('n') => value.push('\n'),
                                    Some(other) => value.push(other),
                                    None => panic!("{line}"),
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            rest = &r[end..];
        }
        let value = rest.trim().split(' ').next().unwrap();
        out.push(Sample {
            name: name.to_string(),
            labels,
            value: value.parse().unwrap_or_else(|_| panic!("{line}")),
        });
    }
    out
}

fn scrape(agent: &Agent) -> Vec<Sample> {
    let (status, body) = agent.get("/metrics");
    assert_eq!(status, 200, "{body}");
    parse(&body)
}

/// The value of `name` whose labels include every pair of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// The container IDs of `pod`'s running containers, once all `n` run.
fn running_ids(agent: &Agent, pod: &str, n: usize) -> Vec<String> {
    wait_for(agent, &format!("{n} running containers in {pod}"), || {
        let list = agent.get_json("/api/v1/pods");
        let item = list["items"]
            .as_array()?
            .iter()
            .find(|p| p["metadata"]["name"] == pod)?
            .clone();
        let ids: Vec<String> = item["status"]["containerStatuses"]
            .as_array()?
            .iter()
            .filter(|c| c["state"]["running"].is_object())
            .filter_map(|c| {
                c["containerID"]
                    .as_str()?
                    .strip_prefix("layerlet://")
                    .map(String::from)
            })
            .collect();
        (ids.len() == n).then_some(ids)
    })
}

fn upper(node: &Node, id: &str) -> PathBuf {
    node.root().join("containers").join(id).join("upper")
}

/// Waits until the accounting shows `id`'s writable layer as `du -sb` does, with `check`
/// holding on the figure; returns the figure.
fn settled_cow(agent: &Agent, node: &Node, id: &str, check: impl Fn(f64) -> bool) -> f64 {
    wait_for(agent, &format!("CoW figure of {id}"), || {
        let v = value(
            &scrape(agent),
            "layerlet_container_cow_bytes",
            &[("container_id", id)],
        )?;
        (check(v) && v == du_sb(&upper(node, id)) as f64).then_some(v)
    })
}

fn exec(node: &Node, target: &str, script: &str) {
    node.ok(&["exec", target, "--", "sh", "-c", script]);
}

#[test]
fn a_write_of_7_mib_reads_7_mib_more_and_its_series_go_with_the_container() {
    let node = node();
    let agent = Agent::start(&node, &[]);
    let name = unique("seven");
    write_pod(
        &agent,
        &name,
        &pod_yaml(&name, &[container("app", IMAGE, "sleep 3600", "")], ""),
    );
    let id = running_ids(&agent, &name, 1).remove(0);
    let before = settled_cow(&agent, &node, &id, |_| true);
    exec(
        &node,
        &format!("{name}/app"),
        "head -c 7340032 /dev/zero > /seven.bin",
    );
    let after = settled_cow(&agent, &node, &id, |v| v != before);
    assert_eq!(after - before, (7 * MIB) as f64);
    let samples = scrape(&agent);
    // cAdvisor's series carries the same figure under cAdvisor's labels.
    let fs = samples
        .iter()
        .find(|s| s.name == "container_fs_usage_bytes" && s.labels.get("name") == Some(&id))
        .expect("container_fs_usage_bytes of the container");
    assert_eq!(fs.value, after);
    for label in [
        "container",
        "device",
        "id",
        "image",
        "name",
        "namespace",
        "pod",
    ] {
        assert!(fs.labels.contains_key(label), "{label} missing in {fs:?}");
    }
    assert_eq!(fs.labels["pod"], name);
    assert!(fs.labels["id"].ends_with(&id), "{fs:?}");

    std::fs::remove_file(agent.manifests.join(format!("{name}.yaml"))).unwrap();
    wait_for(&agent, "the container's series to go", || {
        let text = agent.get("/metrics").1;
        (!text.contains(&id)).then_some(())
    });
}

#[test]
fn copy_up_of_a_1_mib_image_file_counts_1_mib_and_a_deletion_adds_a_whiteout() {
    let node = node();
    let agent = Agent::start(&node, &[]);
    let name = unique("copyup");
    write_pod(
        &agent,
        &name,
        &pod_yaml(&name, &[container("app", FAT, "sleep 3600", "")], ""),
    );
    let id = running_ids(&agent, &name, 1).remove(0);
    let target = format!("{name}/app");
    let before = settled_cow(&agent, &node, &id, |_| true);
    // Opening for writing copies the whole file up, even with nothing appended.
    exec(&node, &target, "printf '' >> /one.bin");
    let copied = settled_cow(&agent, &node, &id, |v| v != before);
    assert_eq!(copied - before, MIB as f64);

    let whiteouts = |s: &[Sample]| {
        value(
            s,
            "layerlet_container_cow_whiteouts",
            &[("container_id", &id)],
        )
        .unwrap()
    };
    let inodes =
        |s: &[Sample]| value(s, "layerlet_container_cow_inodes", &[("container_id", &id)]).unwrap();
    let samples = scrape(&agent);
    let (w0, i0) = (whiteouts(&samples), inodes(&samples));
    exec(&node, &target, "rm /two.bin");
    let samples = wait_for(&agent, "a whiteout", || {
        let s = scrape(&agent);
        (whiteouts(&s) == w0 + 1.0).then_some(s)
    });
    assert_eq!(inodes(&samples), i0 + 1.0);
    // A whiteout is a 0:0 character device: an inode, no bytes, never a negative figure.
    let after = value(
        &samples,
        "layerlet_container_cow_bytes",
        &[("container_id", &id)],
    )
    .unwrap();
    assert_eq!(after, copied);
    assert_eq!(after, du_sb(&upper(&node, &id)) as f64);
}

/// Checks the sharing arithmetic against the containers' figures and `du -sb`.
fn check_sharing(agent: &Agent, node: &Node, images: &[(&str, usize)]) {
    let expected: usize = images.iter().map(|(_, n)| n).sum();
    let samples = wait_for(agent, &format!("{expected} containers accounted"), || {
        let s = scrape(agent);
        let cows: Vec<&Sample> = s
            .iter()
            .filter(|x| x.name == "layerlet_container_cow_bytes")
            .collect();
        let settled = cows.len() == expected
            && cows
                .iter()
                .all(|c| c.value == du_sb(&upper(node, &c.labels["container_id"])) as f64);
        settled.then_some(s)
    });
    let writes: f64 = samples
        .iter()
        .filter(|x| x.name == "layerlet_container_cow_bytes")
        .map(|x| x.value)
        .sum();
    let image_bytes =
        |name: &str| value(&samples, "layerlet_image_bytes", &[("image", name)]).unwrap();
    let logical: f64 = images
        .iter()
        .map(|(i, n)| image_bytes(i) * *n as f64)
        .sum::<f64>()
        + writes;
    let layers_in_use: f64 = samples
        .iter()
        .filter(|x| x.name == "layerlet_layer_containers" && x.value > 0.0)
        .map(|x| {
            value(
                &samples,
                "layerlet_layer_bytes",
                &[("chain_id", &x.labels["chain_id"])],
            )
            .unwrap()
        })
        .sum();
    let get = |n: &str| value(&samples, n, &[]).unwrap();
    assert_eq!(get("layerlet_sharing_logical_bytes"), logical);
    assert_eq!(
        get("layerlet_sharing_physical_bytes"),
        layers_in_use + writes
    );
    assert_eq!(
        get("layerlet_sharing_saved_bytes"),
        logical - layers_in_use - writes
    );
    for (image, n) in images {
        assert_eq!(
            value(&samples, "layerlet_image_containers", &[("image", image)]),
            Some(*n as f64)
        );
    }
    let store = get("layerlet_store_bytes");
    let du = du_sb(&node.root().join("layers")) as f64;
    assert!(
        (store - du).abs() <= du * 0.01,
        "layerlet_store_bytes {store} vs du -sb of the layer store {du}"
    );
}

#[test]
fn sharing_figures_for_1_2_and_50_containers_of_one_image_add_up_and_match_du() {
    let node = node();
    let agent = Agent::start(&node, &[]);
    let script = |i: usize| format!("head -c {} /dev/zero > /w; sleep 3600", 1000 * (i + 1));
    let one = unique("share-one");
    write_pod(
        &agent,
        &one,
        &pod_yaml(&one, &[container("c", IMAGE, &script(0), "")], ""),
    );
    running_ids(&agent, &one, 1);
    check_sharing(&agent, &node, &[(IMAGE, 1)]);
    let image_size = value(&scrape(&agent), "layerlet_image_bytes", &[("image", IMAGE)]).unwrap();
    assert_eq!(
        value(&scrape(&agent), "layerlet_sharing_saved_bytes", &[]),
        Some(0.0)
    );

    let two = unique("share-two");
    write_pod(
        &agent,
        &two,
        &pod_yaml(&two, &[container("c", IMAGE, &script(1), "")], ""),
    );
    running_ids(&agent, &two, 1);
    check_sharing(&agent, &node, &[(IMAGE, 2)]);
    assert_eq!(
        value(&scrape(&agent), "layerlet_sharing_saved_bytes", &[]),
        Some(image_size)
    );

    let many = unique("share-many");
    let containers: Vec<String> = (0..48)
        .map(|i| container(&format!("c{i}"), IMAGE, &script(i + 2), ""))
        .collect();
    write_pod(&agent, &many, &pod_yaml(&many, &containers, ""));
    running_ids(&agent, &many, 48);
    check_sharing(&agent, &node, &[(IMAGE, 50)]);
    let samples = scrape(&agent);
    assert_eq!(
        value(&samples, "layerlet_sharing_saved_bytes", &[]),
        Some(49.0 * image_size)
    );
    // The one layer of the image is used by 50 containers and (with FAT and OTHER) 3 images.
    let base = samples
        .iter()
        .find(|s| s.name == "layerlet_layer_containers" && s.value > 0.0)
        .unwrap();
    assert_eq!(base.value, 50.0);
    assert_eq!(
        value(
            &samples,
            "layerlet_layer_images",
            &[("chain_id", &base.labels["chain_id"])]
        ),
        Some(3.0)
    );
}

#[test]
fn two_images_on_one_base_share_it_in_the_figures() {
    let node = node();
    let agent = Agent::start(&node, &[]);
    let name = unique("two-images");
    write_pod(
        &agent,
        &name,
        &pod_yaml(
            &name,
            &[
                container("fat", FAT, "echo x > /x; sleep 3600", ""),
                container("other", OTHER, "sleep 3600", ""),
            ],
            "",
        ),
    );
    running_ids(&agent, &name, 2);
    check_sharing(&agent, &node, &[(FAT, 1), (OTHER, 1)]);
    let samples = scrape(&agent);
    let shared = |i: &str| value(&samples, "layerlet_image_shared_bytes", &[("image", i)]).unwrap();
    let busybox = value(&samples, "layerlet_image_bytes", &[("image", IMAGE)]).unwrap();
    // The busybox layer is what all three images share, and what two containers share.
    assert_eq!(shared(FAT), busybox);
    assert_eq!(shared(OTHER), busybox);
    assert_eq!(
        value(&samples, "layerlet_sharing_saved_bytes", &[]),
        Some(busybox)
    );
}

#[test]
fn a_pod_over_its_ephemeral_storage_limit_is_evicted() {
    let node = node();
    let agent = Agent::start(&node, &[]);
    let name = unique("evict");
    let limits = "    resources:\n      limits:\n        ephemeral-storage: 1Mi\n";
    write_pod(
        &agent,
        &name,
        &pod_yaml(
            &name,
            &[container(
                "hog",
                IMAGE,
                "head -c 2097152 /dev/zero > /hog; sleep 3600",
                limits,
            )],
            "",
        ),
    );
    let pod = wait_for(&agent, "the pod evicted", || {
        let list = agent.get_json("/api/v1/pods");
        let item = list["items"]
            .as_array()?
            .iter()
            .find(|p| p["metadata"]["name"] == name.as_str())?
            .clone();
        (item["status"]["reason"] == "Evicted").then_some(item)
    });
    assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
    let message = pod["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("Container hog exceeded its local ephemeral storage limit \"1Mi\""),
        "{message}"
    );
    assert!(message.contains("writable layer"), "{message}");
    // Stopped, and not started again.
    wait_for(&agent, "the evicted container stopped", || {
        let list = agent.get_json("/api/v1/pods");
        let item = list["items"]
            .as_array()?
            .iter()
            .find(|p| p["metadata"]["name"] == name.as_str())?
            .clone();
        item["status"]["containerStatuses"][0]["state"]["terminated"]
            .is_object()
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let list = agent.get_json("/api/v1/pods");
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        item["status"]["containerStatuses"][0]["restartCount"], 0,
        "{item}"
    );
    assert!(item["status"]["containerStatuses"][0]["state"]["terminated"].is_object());
    let (_, events) = agent.get("/api/v1/events");
    assert!(events.contains("\"Evicted\""), "{events}");
    assert_eq!(
        value(&scrape(&agent), "layerlet_evictions_total", &[]),
        Some(1.0)
    );
}

#[test]
fn bytes_under_an_unmounted_image_volume_are_counted_and_hostile_paths_are_escaped() {
    let node = node();
    let agent = Agent::start(&node, &[]);
    let name = unique("volume");
    write_pod(
        &agent,
        &name,
        &pod_yaml(&name, &[container("db", FAT, "sleep 3600", "")], ""),
    );
    let id = running_ids(&agent, &name, 1).remove(0);
    exec(
        &node,
        &format!("{name}/db"),
        "mkdir -p /data && head -c 1048576 /dev/zero > /data/table",
    );
    let samples = wait_for(&agent, "1 MiB under /data", || {
        let s = scrape(&agent);
        (value(
            &s,
            "layerlet_container_unmounted_volume_bytes",
            &[("container_id", &id), ("path", "/data")],
        ) == Some(MIB as f64))
        .then_some(s)
    });
    // The hostile path round-trips through the escaping; the long one is cut at 256 bytes.
    assert_eq!(
        value(
            &samples,
            "layerlet_container_unmounted_volume_bytes",
            &[("container_id", &id), ("path", HOSTILE)]
        ),
        Some(0.0)
    );
    let long = long_volume();
    assert_eq!(
        value(
            &samples,
            "layerlet_container_unmounted_volume_bytes",
            &[("container_id", &id), ("path", &long[..256])]
        ),
        Some(0.0)
    );
    let text = agent.get("/metrics").1;
    assert!(text.contains(r#"path="/we\"ird\\path\nline""#), "{text}");
    assert!(!text.contains(&long[..257]));
}

#[test]
fn a_real_scrape_passes_promtool() {
    let promtool = Path::new("/usr/bin/promtool");
    assert!(
        promtool.exists(),
        "promtool is missing: scripts/install-test-deps.sh installs Debian's prometheus"
    );
    let node = node();
    let agent = Agent::start(&node, &[]);
    let name = unique("lint");
    write_pod(
        &agent,
        &name,
        &pod_yaml(
            &name,
            &[
                container("a", FAT, "echo hi > /data-less; sleep 3600", ""),
                container("b", IMAGE, "sleep 3600", ""),
            ],
            "",
        ),
    );
    let ids = running_ids(&agent, &name, 2);
    wait_for(&agent, "both containers accounted", || {
        let s = scrape(&agent);
        ids.iter()
            .all(|id| value(&s, "layerlet_container_cow_bytes", &[("container_id", id)]).is_some())
            .then_some(())
    });
    // Written whole (temp file + rename): a plain write can be seen empty first, which is
    // an error of its own and would make the count 2.
    let tmp = agent.manifests.join(".broken.yaml.tmp");
    std::fs::write(&tmp, "kind: Pod\n  : [unclosed\n").unwrap();
    std::fs::rename(&tmp, agent.manifests.join("broken.yaml")).unwrap();
    let samples = wait_for(&agent, "the broken manifest counted", || {
        let s = scrape(&agent);
        (value(&s, "layerlet_manifest_errors_total", &[]) == Some(1.0)).then_some(s)
    });
    let by_reason: f64 = samples
        .iter()
        .filter(|s| s.name == "layerlet_manifest_validation_errors_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(by_reason, 1.0);
    assert_eq!(
        value(
            &samples,
            "layerlet_pod_start_duration_seconds_count",
            &[("pull", "false")]
        ),
        Some(1.0)
    );
    let (_, text) = agent.get("/metrics");
    for family in [
        "layerlet_pods",
        "layerlet_reconciles_total",
        "layerlet_pod_start_duration_seconds_bucket",
        "process_cpu_seconds_total",
        "layerlet_sharing_saved_bytes",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    common::promtool_check("/metrics", &text);
}

/// The accounting thread on its own, over plain directories laid out as writable layers:
/// a layer over the walk budget is counted exactly by the big-walk worker, a small one next
/// to it keeps being refreshed, and a container removed from the records loses its figures.
#[test]
fn a_layer_over_the_walk_budget_is_counted_by_the_worker_and_the_others_stay_fresh() {
    use layerlet::image::store::{Store, StoreOptions};
    use layerlet::layout::NodeLayout;
    use layerlet::metrics::{Accounting, AccountingOptions, Cache};
    use layerlet::runtime::container::Runtime;
    use layerlet::runtime::records::{ContainerRecord, PodRecord};
    use std::sync::Arc;

    let node = Node::new();
    let busybox = ImageSpec {
        layers: vec![LayerBuilder::busybox_layer(Compression::None)],
        ..ImageSpec::busybox()
    };
    import(&node, IMAGE, &busybox);
    let layout = NodeLayout::new(node.root(), node.run_root());
    let store = Arc::new(Store::open(&layout, StoreOptions::default()).unwrap());
    let image = store.resolve(IMAGE).unwrap();
    let rt = Runtime {
        layout,
        exe: PathBuf::from(env!("CARGO_BIN_EXE_layerlet")),
        monitor: None,
        node_name: "test".into(),
        cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        pids_limit: None,
        networking: Default::default(),
        mount_base: None,
    };
    let uid = unique("uid");
    store
        .db()
        .insert_pod(&PodRecord {
            uid: uid.clone(),
            namespace: "default".into(),
            name: unique("walks"),
            owner: "cli".into(),
            spec: "{}".into(),
            created_at: 0,
        })
        .unwrap();
    let (big, small) = ("b".repeat(64), "s".repeat(64));
    for (id, files) in [(&big, 3000), (&small, 10)] {
        let dir = upper(&node, id).join("d");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..files {
            std::fs::write(dir.join(i.to_string()), vec![0u8; i % 100]).unwrap();
        }
        store
            .db()
            .insert_container(&ContainerRecord {
                id: id.to_string(),
                pod_uid: uid.clone(),
                name: id[..1].to_string(),
                attempt: 0,
                image_ref: IMAGE.into(),
                image: image.clone(),
                created_at: 0,
            })
            .unwrap();
    }
    let cache = Arc::new(Cache::default());
    let options = AccountingOptions {
        tick: Duration::from_millis(100),
        stats_every: Duration::from_millis(200),
        walk_budget: 500,
        ..AccountingOptions::default()
    };
    let _accounting = Accounting::start(rt, store.clone(), cache.clone(), options).unwrap();
    let figure = |id: &str| {
        cache
            .get()
            .containers
            .iter()
            .find(|c| c.id == id)
            .map(|c| (c.usage.bytes, c.usage.inodes))
    };
    let settle = |id: &str, what: &str| {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let want = du_sb(&upper(&node, id));
            if figure(id).map(|f| f.0) == Some(want) {
                return figure(id).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {:?} vs du {want}",
                figure(id)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (_, big_inodes) = settle(&big, "the big layer");
    assert_eq!(big_inodes, 3002);
    settle(&small, "the small layer");
    std::fs::write(upper(&node, &small).join("new"), vec![1u8; 5000]).unwrap();
    settle(&small, "a write in the small layer");
    std::fs::write(upper(&node, &big).join("d/extra"), vec![1u8; 7000]).unwrap();
    let (_, big_inodes) = settle(&big, "a write in the big layer");
    assert_eq!(big_inodes, 3003);
    store.db().remove_container(&small).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while figure(&small).is_some() {
        assert!(
            Instant::now() < deadline,
            "the removed container is still accounted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    store.db().remove_container(&big).unwrap();
}

#[test]
fn a_pull_by_the_agent_is_timed_and_counted_and_so_is_the_start_that_waited_for_it() {
    let registry = support::Registry::start();
    let mut layer = LayerBuilder::new();
    layer.file("pulled.bin", vec![3u8; 200_000], 0o644);
    let spec = ImageSpec {
        layers: vec![
            LayerBuilder::busybox_layer(Compression::Gzip),
            layer.build(Compression::Gzip),
        ],
        ..ImageSpec::busybox()
    };
    support::block_on(support::push_image(
        &registry.addr(),
        "bench/pulled",
        "1",
        &spec,
    ));
    let image = registry.image_ref("bench/pulled", "1");
    let node = Node::new();
    let agent = Agent::start(&node, &[]);
    let name = unique("pulled");
    let c = format!(
        "  - name: app\n    image: {image}\n    imagePullPolicy: IfNotPresent\n    command: [\"sleep\", \"3600\"]\n"
    );
    write_pod(&agent, &name, &pod_yaml(&name, &[c], ""));
    running_ids(&agent, &name, 1);
    let samples = wait_for(&agent, "the start with a pull observed", || {
        let s = scrape(&agent);
        value(
            &s,
            "layerlet_pod_start_duration_seconds_count",
            &[("pull", "true")],
        )
        .map(|_| s)
    });
    assert_eq!(
        value(
            &samples,
            "layerlet_image_pulls_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "layerlet_image_pull_duration_seconds_count",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    let fetched = value(&samples, "layerlet_image_pull_bytes_total", &[]).unwrap();
    let blobs: u64 = spec.layers.iter().map(|l| l.size()).sum();
    assert!(
        fetched >= blobs as f64,
        "fetched {fetched} < layer blobs {blobs}"
    );
    assert_eq!(
        value(
            &samples,
            "layerlet_pod_start_duration_seconds_count",
            &[("pull", "false")]
        ),
        None
    );
}

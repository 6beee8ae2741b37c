//! A data root written by an earlier layerlet opens with this one and keeps what it held.
//!
//! tests/fixtures/data-root-v2.tar.gz is a data root at schema version 2 as layerlet
//! f9836c3..4675e30 left it after a reboot (tests/fixtures/data-root-v2/make.sh made it): one
//! imported image, a stopped pod `keeper` whose container wrote a file into its writable
//! layer, a named volume `fixture-data` holding hello.txt and an emptyDir holding note.txt.
//! Each test unpacks a fresh copy into its own node and drives the real binary on it.

mod common;
// tests/common uses it.
mod support;

use std::path::Path;
use std::process::Command;

use common::Node;
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/data-root-v2.tar.gz"
);
const IMAGE: &str = "fixture.local/sleeper:v1";
const IMAGE_DIGEST: &str =
    "sha256:2e333d398b127a7eb89af8e2ce1811f6af61a5583e0e577b79046998047c9aa5";
const LAYER: &str = "ccc94cc9134315d58f1fca6f204f8c4a10582c1cec178c4ce8e9bbd381b961a0";
const CONTAINER_ID: &str = "b2800cef78ec95348851bb43b0ec1571243a95477cd66c50529eaa53134e26b1";
const POD_UID: &str = "5d0c1a2e-fixture-v2";
/// The schema version of every layerlet that wrote the fixture.
const FIXTURE_SCHEMA: i64 = 2;

/// A node whose data root is a fresh copy of the fixture; its pods go when the test ends.
struct UpgradedNode {
    node: Node,
}

impl UpgradedNode {
    fn new() -> UpgradedNode {
        let node = Node::new();
        std::fs::create_dir_all(node.root()).unwrap();
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(FIXTURE)
            .arg("-C")
            .arg(node.root())
            .status()
            .expect("spawn tar");
        assert!(status.success(), "unpack {FIXTURE}: {status}");
        UpgradedNode { node }
    }
}

impl Drop for UpgradedNode {
    fn drop(&mut self) {
        common::remove_all_pods(&self.node);
        common::scrub(&self.node);
    }
}

impl std::ops::Deref for UpgradedNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

/// The schema version recorded in the database file, read without layerlet.
fn recorded_schema(root: &Path) -> i64 {
    let conn = rusqlite::Connection::open(root.join("layerlet.db")).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}

#[test]
fn the_fixture_is_at_the_old_schema_and_opens_at_the_current_one() {
    let node = UpgradedNode::new();
    assert_eq!(recorded_schema(&node.root()), FIXTURE_SCHEMA);
    node.ok(&["images"]);
    assert_eq!(
        recorded_schema(&node.root()),
        layerlet::meta::SCHEMA_VERSION
    );
    let layout = layerlet::layout::NodeLayout::new(node.root(), node.run_root());
    let db = layerlet::meta::Db::open(&layout).unwrap();
    assert_eq!(db.schema_version().unwrap(), layerlet::meta::SCHEMA_VERSION);
}

#[test]
fn images_pods_containers_and_volumes_survive_the_upgrade() {
    let node = UpgradedNode::new();

    let images = array(node.json(&["images"]));
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["repository"], "fixture.local/sleeper");
    assert_eq!(images[0]["tag"], "v1");
    assert_eq!(images[0]["digest"], IMAGE_DIGEST);
    assert_eq!(
        images[0]["containers"], 1,
        "the container still holds its image"
    );
    let history = array(node.json(&["history", IMAGE]));
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["chain_id"], format!("sha256:{LAYER}"));

    let containers = array(node.json(&["ps", "-a"]));
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0]["namespace"], "default");
    assert_eq!(containers[0]["pod"], "keeper");
    assert_eq!(containers[0]["container"], "sleeper");
    assert_eq!(containers[0]["id"], CONTAINER_ID);
    assert_eq!(containers[0]["image"], IMAGE);
    // Its writable layer is found where the old build left it.
    let changes = array(node.json(&["diff", "keeper"]));
    assert!(
        changes
            .iter()
            .any(|c| c["path"] == "/written-by-sleeper" && c["kind"] == "A"),
        "{changes:?}"
    );

    let volumes = array(node.json(&["volume", "ls"]));
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0]["name"], "fixture-data");
    assert_eq!(volumes[0]["used_by"], serde_json::json!(["default/keeper"]));
    let path = Path::new(volumes[0]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(path.join("hello.txt")).unwrap(),
        "kept across upgrades\n"
    );
}

#[test]
fn removing_an_upgraded_pod_and_image_clears_their_places_and_keeps_the_named_volume() {
    let node = UpgradedNode::new();
    let empty_dir = node
        .root()
        .join("pods")
        .join(POD_UID)
        .join("volumes/scratch");
    assert!(empty_dir.join("note.txt").is_file());

    node.ok(&["rm", "-t", "0", "keeper"]);
    assert!(array(node.json(&["ps", "-a"])).is_empty());
    assert_eq!(node.entries("containers"), Vec::<String>::new());
    assert_eq!(node.entries("pods"), Vec::<String>::new());
    let volumes = array(node.json(&["volume", "ls"]));
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0]["used_by"], serde_json::json!([]));
    assert_eq!(
        std::fs::read_to_string(node.root().join("volumes/fixture-data/data/hello.txt")).unwrap(),
        "kept across upgrades\n"
    );

    node.ok(&["rmi", IMAGE]);
    node.ok(&["gc"]);
    assert!(array(node.json(&["images"])).is_empty());
    assert_eq!(node.entries("layers"), Vec::<String>::new());
    assert_eq!(node.entries("blobs/sha256"), Vec::<String>::new());
}

/// The fixture's program is x86_64 machine code.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_new_pod_runs_on_the_upgraded_image_layers() {
    let node = UpgradedNode::new();
    let yaml = node.dir.path().join("second.yaml");
    std::fs::write(
        &yaml,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: second}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: sleeper\n    image: {IMAGE}\n    imagePullPolicy: Never\n"
        ),
    )
    .unwrap();
    node.ok(&["run", "-d", "-f", yaml.to_str().unwrap()]);
    let second = array(node.json(&["ps", "-a"]))
        .into_iter()
        .find(|c| c["pod"] == "second")
        .expect("the second pod is listed");
    let upper = node
        .root()
        .join("containers")
        .join(second["id"].as_str().unwrap())
        .join("upper/written-by-sleeper");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !upper.is_file() {
        assert!(
            std::time::Instant::now() < deadline,
            "the sleeper never wrote {}",
            upper.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&upper).unwrap(), "copy-on-write\n");
    let images = array(node.json(&["images"]));
    assert_eq!(images[0]["containers"], 2, "{images:?}");
}

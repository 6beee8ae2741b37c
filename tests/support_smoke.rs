//! Checks that the integration-test support library does what it claims against a real
//! registry: push/pull round trips with exact digests, basic auth, layer contents, OCI
//! layouts, and the dropping proxy.

mod support;

use std::io::Read;

use oci_client::manifest::{
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use support::image::{client_for, host_oci_arch, reference};
use support::{
    http, push_image, push_image_with_auth, push_index, sha256_digest, Compression, DroppingProxy,
    ImageSpec, LayerBuilder, Registry,
};

fn small_zstd_layer() -> support::Layer {
    let mut b = LayerBuilder::new();
    b.dir("app", 0o755)
        .file("app/hello.txt", "hello\n", 0o644)
        .file_owned("app/owned", "x", 0o600, 1000, 1000)
        .xattr("app/hello.txt", "user.greeting", "hi")
        .whiteout("etc/motd")
        .opaque("var/cache");
    b.build(Compression::Zstd)
}

const ACCEPT: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

#[tokio::test]
async fn push_index_and_pull_back() {
    let registry = Registry::start();
    let addr = registry.addr();

    let busybox = LayerBuilder::busybox_layer(Compression::Gzip);
    let extra = small_zstd_layer();
    assert_eq!(
        extra.media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let spec = ImageSpec {
        layers: vec![busybox.clone(), extra.clone()],
        env: vec!["PATH=/bin".into()],
        cmd: Some(vec!["sh".into()]),
        user: Some("1000:1000".into()),
        volumes: vec!["/data".into()],
        ..ImageSpec::default()
    };
    let host = push_image(&addr, "smoke", "host", &spec).await;
    let other_arch = if host_oci_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let other = push_image(
        &addr,
        "smoke",
        "other",
        &ImageSpec {
            architecture: other_arch.into(),
            ..spec.clone()
        },
    )
    .await;
    assert_ne!(host.manifest_digest, other.manifest_digest);
    let index_digest = push_index(
        &addr,
        "smoke",
        "multi",
        &[
            (host.clone(), "linux", host_oci_arch(), None),
            (other.clone(), "linux", other_arch, Some("v8")),
        ],
    )
    .await;

    let client = client_for(&addr);
    let anon = RegistryAuth::Anonymous;

    // Raw manifest by tag: exactly the bytes we pushed.
    let r = reference(&addr, "smoke", "host");
    let (bytes, digest) = client
        .pull_manifest_raw(&r, &anon, ACCEPT)
        .await
        .expect("pull host manifest");
    assert_eq!(digest, host.manifest_digest);
    assert_eq!(bytes.as_ref(), host.manifest_bytes.as_slice());

    // Parsed manifest and config: layer digests and diff_ids in order.
    let (manifest, digest, config) = client
        .pull_manifest_and_config(&r, &anon)
        .await
        .expect("pull manifest and config");
    assert_eq!(digest, host.manifest_digest);
    let layer_digests: Vec<&str> = manifest.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(
        layer_digests,
        [busybox.digest.as_str(), extra.digest.as_str()]
    );
    assert_eq!(manifest.config.digest, host.config_digest);
    let config: serde_json::Value = serde_json::from_str(&config).expect("config is JSON");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([busybox.diff_id, extra.diff_id])
    );
    assert_eq!(config["config"]["User"], "1000:1000");
    assert_eq!(config["architecture"], host_oci_arch());

    // The index: raw bytes hash to the digest we computed, and oci-client resolves the
    // host platform's entry.
    let ri = reference(&addr, "smoke", "multi");
    let (bytes, digest) = client
        .pull_manifest_raw(&ri, &anon, ACCEPT)
        .await
        .expect("pull index");
    assert_eq!(digest, index_digest);
    assert_eq!(sha256_digest(&bytes), index_digest);
    // pull_manifest returns the index itself; pull_image_manifest resolves the platform.
    let (resolved, digest) = client
        .pull_image_manifest(&ri, &anon)
        .await
        .expect("pull image manifest via index");
    assert_eq!(resolved.config.digest, host.config_digest);
    assert_eq!(digest, host.manifest_digest);

    // Blobs come back byte-identical, served directly (200, no redirect).
    let mut pulled = Vec::new();
    client
        .pull_blob(&r, &manifest.layers[1], &mut pulled)
        .await
        .expect("pull zstd layer");
    assert_eq!(pulled, extra.blob);
    let resp =
        http::get(&addr, &format!("/v2/smoke/blobs/{}", busybox.digest), &[]).expect("GET blob");
    assert_eq!(
        resp.status, 200,
        "blob GET should be served directly, headers {:?}",
        resp.headers
    );
    assert_eq!(resp.body, busybox.blob);
}

#[test]
fn docker_schema2_and_manifest_list() {
    let registry = Registry::start();
    let addr = registry.addr();
    let spec = ImageSpec {
        layers: vec![LayerBuilder::busybox_layer(Compression::Gzip).with_docker_media_type()],
        docker_schema2: true,
        ..ImageSpec::default()
    };
    assert_eq!(
        spec.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let image = support::block_on(push_image(&addr, "docker", "v2", &spec));
    let list = support::block_on(support::push_index_with(
        &addr,
        "docker",
        "list",
        &[(image.clone(), "linux", host_oci_arch(), None)],
        support::IndexKind::DockerManifestList,
        None,
    ));

    let accept = [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
    .join(", ");
    let m =
        http::get(&addr, "/v2/docker/manifests/v2", &[("Accept", &accept)]).expect("GET manifest");
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
    assert_eq!(
        m.header("docker-content-digest"),
        Some(image.manifest_digest.as_str())
    );
    assert_eq!(m.body, image.manifest_bytes);
    let l =
        http::get(&addr, "/v2/docker/manifests/list", &[("Accept", &accept)]).expect("GET list");
    assert_eq!(l.header("docker-content-digest"), Some(list.as_str()));
    assert_eq!(sha256_digest(&l.body), list);
    let (resolved, digest) = support::block_on(async {
        client_for(&addr)
            .pull_image_manifest(
                &reference(&addr, "docker", "list"),
                &RegistryAuth::Anonymous,
            )
            .await
            .expect("resolve manifest list")
    });
    assert_eq!(digest, image.manifest_digest);
    assert_eq!(
        resolved.config.media_type,
        "application/vnd.docker.container.image.v1+json"
    );
}

#[test]
fn layer_contents_read_back_with_tar_crate() {
    let mut b = LayerBuilder::new();
    b.busybox();
    let tar_bytes = b.build_tar();
    let layer = LayerBuilder::busybox_layer(Compression::Gzip);
    assert_eq!(
        layer.diff_id,
        sha256_digest(&tar_bytes),
        "builds are deterministic"
    );
    assert_eq!(layer.uncompressed_size, tar_bytes.len() as u64);
    let mut gz = Vec::new();
    flate2::read::GzDecoder::new(&layer.blob[..])
        .read_to_end(&mut gz)
        .expect("gunzip");
    assert_eq!(gz, tar_bytes);

    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().expect("entries") {
        let entry = entry.expect("entry");
        let h = entry.header();
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        match path.as_str() {
            "bin/busybox" => assert_eq!(
                h.size().unwrap(),
                std::fs::metadata("/bin/busybox").unwrap().len()
            ),
            "bin/sh" => assert_eq!(
                entry.link_name().unwrap().unwrap().to_str(),
                Some("busybox")
            ),
            "tmp/" => assert_eq!(h.mode().unwrap(), 0o1777),
            "home/app/" => assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (1000, 1000)),
            _ => {}
        }
        assert_eq!(h.mtime().unwrap(), 1_700_000_000);
        seen.push(path);
    }
    for p in [
        "bin/",
        "bin/busybox",
        "bin/stat",
        "etc/passwd",
        "etc/group",
        "root/",
        "home/app/",
    ] {
        assert!(seen.iter().any(|s| s == p), "{p} missing from {seen:?}");
    }

    // Hostile and special entries survive byte for byte.
    let long = format!("{}/file", "d".repeat(120));
    let mut b = LayerBuilder::new();
    b.raw("../evil", tar::EntryType::Regular, "", "pwned")
        .raw("/etc/evil", tar::EntryType::Regular, "", "")
        .raw("a/../../x", tar::EntryType::Regular, "", "")
        .raw(".wh...", tar::EntryType::Regular, "", "")
        .raw("link", tar::EntryType::Symlink, "../../outside", "")
        .raw("hard", tar::EntryType::Link, "/etc/passwd", "")
        .raw(long.as_bytes(), tar::EntryType::Regular, "", "long")
        .file("x", "data", 0o644)
        .xattr("x", "security.capability", [1u8, 2, 0, 3])
        .char_device("dev/null", 1, 3)
        .hardlink("y", "x")
        .whiteout("gone")
        .opaque("");
    let tar_bytes = b.build_tar();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut names = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path_bytes().into_owned();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        if name == b"x" {
            let pax: Vec<(String, Vec<u8>)> = entry
                .pax_extensions()
                .expect("pax")
                .expect("x has PAX records")
                .map(|e| {
                    let e = e.expect("pax record");
                    (e.key().unwrap().to_string(), e.value_bytes().to_vec())
                })
                .collect();
            assert_eq!(
                pax,
                [(
                    "SCHILY.xattr.security.capability".to_string(),
                    vec![1, 2, 0, 3]
                )]
            );
        }
        if name == b"dev/null" {
            assert_eq!(entry.header().device_major().unwrap(), Some(1));
            assert_eq!(entry.header().device_minor().unwrap(), Some(3));
        }
        names.push((
            String::from_utf8(name).unwrap(),
            link.map(|l| String::from_utf8(l).unwrap()),
        ));
    }
    let expected: Vec<(String, Option<String>)> = [
        ("../evil", None),
        ("/etc/evil", None),
        ("a/../../x", None),
        (".wh...", None),
        ("link", Some("../../outside")),
        ("hard", Some("/etc/passwd")),
        (long.as_str(), None),
        ("x", None),
        ("dev/null", None),
        ("y", Some("x")),
        (".wh.gone", None),
        (".wh..wh..opq", None),
    ]
    .iter()
    .map(|(n, l)| (n.to_string(), l.map(str::to_string)))
    .collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn basic_auth_registry() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret");
    let addr = registry.addr();

    // Anonymous: the registry challenges, oci-client surfaces the failure.
    let anon = http::get(&addr, "/v2/", &[]).expect("GET /v2/");
    assert_eq!(anon.status, 401);
    let wrong = http::get(
        &addr,
        "/v2/",
        &[("Authorization", &http::basic_auth("alice", "nope"))],
    )
    .expect("GET /v2/");
    assert_eq!(wrong.status, 401);
    let right = http::get(
        &addr,
        "/v2/",
        &[("Authorization", &http::basic_auth("alice", "s3cret"))],
    )
    .expect("GET /v2/");
    assert_eq!(right.status, 200);

    let spec = ImageSpec {
        layers: vec![small_zstd_layer()],
        ..ImageSpec::default()
    };
    let pushed = push_image_with_auth(&addr, "private", "v1", &spec, "alice", "s3cret").await;

    let r = reference(&addr, "private", "v1");
    let err = client_for(&addr)
        .pull_manifest_raw(&r, &RegistryAuth::Anonymous, ACCEPT)
        .await
        .expect_err("anonymous pull must be refused");
    assert!(
        err.to_string().contains("401") || err.to_string().to_lowercase().contains("auth"),
        "unexpected error: {err}"
    );
    let basic = RegistryAuth::Basic("alice".into(), "s3cret".into());
    let (_, digest) = client_for(&addr)
        .pull_manifest_raw(&r, &basic, ACCEPT)
        .await
        .expect("pull with password");
    assert_eq!(digest, pushed.manifest_digest);
}

#[test]
fn dropping_proxy_cuts_blob_downloads() {
    let registry = Registry::start();
    let spec = ImageSpec::busybox();
    let pushed = support::block_on(push_image(&registry.addr(), "proxied", "latest", &spec));
    let layer = &spec.layers[0];
    let path = format!("/v2/proxied/blobs/{}", layer.digest);

    let proxy = DroppingProxy::start(&registry.addr(), 1000, 1);
    // Non-blob requests pass through untouched and do not use up the drop.
    let resp = http::get(
        &proxy.addr(),
        &format!("/v2/proxied/manifests/{}", pushed.manifest_digest),
        &[("Accept", OCI_IMAGE_MEDIA_TYPE)],
    )
    .expect("manifest GET");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, pushed.manifest_bytes);
    assert_eq!(proxy.drops_done(), 0);

    let cut = http::get(&proxy.addr(), &path, &[]).expect("blob GET through proxy");
    assert_eq!(cut.status, 200);
    assert_eq!(cut.content_length(), Some(layer.size()));
    assert_eq!(
        cut.body.len(),
        1000,
        "the body must stop after drop_after_bytes"
    );
    assert_eq!(cut.body[..], layer.blob[..1000]);
    assert_eq!(proxy.drops_done(), 1);

    // Drops used up: the next download is whole.
    let whole = http::get(&proxy.addr(), &path, &[]).expect("second blob GET");
    assert_eq!(whole.body, layer.blob);
    assert_eq!(proxy.drops_done(), 1);
    assert_eq!(proxy.blob_gets(), 2);

    // The registry honours Range, so a client can resume where the cut left it.
    let rest = http::get(&proxy.addr(), &path, &[("Range", "bytes=1000-")]).expect("range GET");
    assert_eq!(rest.status, 206);
    assert_eq!(rest.body[..], layer.blob[1000..]);

    // Range responses (206) are cut as well while drops remain.
    let proxy2 = DroppingProxy::start(&registry.addr(), 10, 1);
    let partial =
        http::get(&proxy2.addr(), &path, &[("Range", "bytes=1000-")]).expect("range GET cut");
    assert_eq!((partial.status, partial.body.len()), (206, 10));
    assert_eq!(proxy2.drops_done(), 1);

    // oci-client through a fresh proxy sees the cut as an error.
    let proxy = DroppingProxy::start(&registry.addr(), 4096, 1);
    let r = reference(&proxy.addr(), "proxied", "latest");
    let desc = oci_client::manifest::OciDescriptor {
        media_type: layer.media_type.clone(),
        digest: layer.digest.clone(),
        size: layer.size() as i64,
        ..Default::default()
    };
    let result = support::block_on(async {
        let client = client_for(&proxy.addr());
        let mut out = Vec::new();
        let first = client.pull_blob(&r, &desc, &mut out).await;
        (first.is_err(), out.len())
    });
    assert!(
        result.0,
        "pull_blob through a cutting proxy should fail (got {} bytes)",
        result.1
    );
    assert_eq!(proxy.drops_done(), 1);
}

#[test]
fn oci_layout_and_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ImageSpec::busybox();
    let layout = dir.path().join("layout");
    let image = support::write_oci_layout(&layout, &spec, "v1");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], image.manifest_digest);
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    let manifest_path = layout
        .join("blobs/sha256")
        .join(image.manifest_digest.trim_start_matches("sha256:"));
    assert_eq!(std::fs::read(manifest_path).unwrap(), image.manifest_bytes);
    let layer_path = layout
        .join("blobs/sha256")
        .join(spec.layers[0].digest.trim_start_matches("sha256:"));
    assert_eq!(std::fs::read(layer_path).unwrap(), spec.layers[0].blob);

    let archive_path = dir.path().join("image.tar");
    let same = support::write_oci_archive(&archive_path, &spec, "v1");
    assert_eq!(same.manifest_digest, image.manifest_digest);
    let file = std::fs::File::open(&archive_path).unwrap();
    let names: Vec<String> = tar::Archive::new(file)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"oci-layout".to_string()) && names.contains(&"index.json".to_string()),
        "{names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("blobs/sha256/") && n.len() > 20)
            .count(),
        3
    );
}

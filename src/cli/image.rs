//! pull, images, history, df, rmi, gc, image import.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use layerlet::image::gc_policy::Watermarks;
use layerlet::image::manifest::Platform;
use layerlet::image::pull::{pull as pull_image, PullOptions};
use layerlet::image::registry::RegistryOptions;
use layerlet::image::report::{disk_usage, history_rows, human_size, image_rows, StoreSnapshot};
use layerlet::image::store::{file_sharing_default, InstalledImage, Store, StoreOptions};
use layerlet::reference::ImageRef;

use super::context::{runtime, Context};
use super::output::{print_json, print_table, Output};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference: [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]; `busybox` means
    /// docker.io/library/busybox:latest.
    pub image: String,
    /// Platform to pick from a multi-platform image (OS/ARCH[/VARIANT]); the node's own by
    /// default.
    #[arg(long)]
    pub platform: Option<String>,
    /// Registry (HOST:PORT) to reach over plain HTTP; loopback registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// Docker-style config.json with credentials (default $DOCKER_CONFIG/config.json, then
    /// ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    pub auth_file: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Largest unpacked size of one layer in bytes; bigger layers are refused as possible
    /// decompression bombs.
    #[arg(long, value_name = "BYTES", default_value_t = StoreOptions::default().max_layer_bytes)]
    pub max_layer_size: u64,
    /// Keep each regular file once in the store's objects/ and hard-link it into layers;
    /// `--file-sharing=false` keeps every file private to its layer (default: on unless
    /// LAYERLET_FILE_SHARING=false).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set, default_value_t = file_sharing_default())]
    pub file_sharing: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub image: String,
    /// Show full digests and commands.
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout directory or oci-archive tar (for air-gapped nodes).
    Import(ImportArgs),
    /// Same as `layerlet images`.
    Ls,
    /// Re-read every object of file-level sharing; a damaged one is removed with the layers
    /// holding it, which the next pull of their images fetches again.
    Verify,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    pub path: PathBuf,
    /// Name to record (default: the layout's org.opencontainers.image.ref.name).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn open_store(ctx: &Context, args: Option<&StoreArgs>) -> anyhow::Result<Store> {
    let mut options = StoreOptions::default();
    if let Some(args) = args {
        options.max_layer_bytes = args.max_layer_size;
        options.file_sharing = args.file_sharing;
    }
    Ok(Store::open(&ctx.layout, options)?)
}

/// The records plus file-level sharing measured on disk (a walk of every layer).
fn snapshot_with_files(store: &Store) -> anyhow::Result<StoreSnapshot> {
    let mut snapshot = StoreSnapshot::load(&store.db())?;
    snapshot.files = store.file_sharing(&snapshot)?;
    Ok(snapshot)
}

fn parse_platform(value: Option<&str>) -> anyhow::Result<Option<Platform>> {
    Ok(value.map(Platform::parse).transpose()?)
}

fn print_installed(ctx: &Context, installed: &[InstalledImage]) -> anyhow::Result<()> {
    if ctx.output == Output::Json {
        return print_json(&installed);
    }
    for image in installed {
        let name = image.names.first().map(String::as_str).unwrap_or("<none>");
        println!(
            "{name}: pulled {} layers ({} fetched, {} downloaded)",
            image.layers,
            image.fetched_layers,
            human_size(image.fetched_bytes)
        );
        println!("Digest: {}", image.digest);
        println!("Platform: {}", image.platform);
    }
    Ok(())
}

pub fn pull(ctx: &Context, args: PullArgs) -> anyhow::Result<ExitCode> {
    let options = PullOptions {
        registry: RegistryOptions {
            insecure: args.insecure_registries.clone(),
            auth_file: args.auth_file.clone(),
        },
        platform: parse_platform(args.platform.as_deref())?,
    };
    let store = open_store(ctx, Some(&args.store))?;
    let image = ImageRef::parse(&args.image)?;
    let installed = runtime()?.block_on(pull_image(&store, &image, &options))?;
    print_installed(ctx, &[installed])?;
    Ok(ExitCode::SUCCESS)
}

pub fn images(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx, None)?;
    let snapshot = snapshot_with_files(&store)?;
    let rows = image_rows(&snapshot);
    if ctx.output == Output::Json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.repository.clone(),
                r.tag.clone(),
                r.image_id.clone(),
                human_size(r.size),
                human_size(r.shared_size),
                human_size(r.file_shared_size),
                human_size(r.unique_size),
                r.containers.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "SIZE",
            "SHARED SIZE",
            "FILE SHARED",
            "UNIQUE SIZE",
            "CONTAINERS",
        ],
        &table,
    );
    Ok(ExitCode::SUCCESS)
}

pub fn history(ctx: &Context, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx, None)?;
    let image = store.resolve(&args.image)?;
    let config = store.image_config(&image)?;
    let snapshot = StoreSnapshot::load(&store.db())?;
    let rows = history_rows(&snapshot, &image, &config);
    if ctx.output == Output::Json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let diff = match (&r.diff_id, args.no_trunc) {
                (Some(d), true) => d.to_string(),
                (Some(d), false) => d.short().to_string(),
                (None, _) => "<empty>".into(),
            };
            let mut created_by = r.created_by.replace('\n', " ");
            if !args.no_trunc && created_by.chars().count() > 45 {
                created_by = created_by.chars().take(44).collect::<String>() + "…";
            }
            vec![
                diff,
                human_size(r.compressed_size),
                human_size(r.unpacked_size),
                if r.diff_id.is_some() {
                    r.images_sharing.to_string()
                } else {
                    "-".into()
                },
                created_by,
            ]
        })
        .collect();
    print_table(
        &[
            "DIFF ID",
            "COMPRESSED",
            "UNPACKED",
            "SHARED BY",
            "CREATED BY",
        ],
        &table,
    );
    Ok(ExitCode::SUCCESS)
}

pub fn df(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx, None)?;
    let usage = disk_usage(&snapshot_with_files(&store)?);
    if ctx.output == Output::Json {
        print_json(&usage)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_table(
        &[
            "IMAGES",
            "LAYERS",
            "PHYSICAL",
            "LOGICAL",
            "SAVED BY SHARING",
            "BY LAYERS",
            "BY FILES",
            "OBJECTS",
            "RECLAIMABLE",
        ],
        &[vec![
            usage.images.to_string(),
            usage.layers.to_string(),
            human_size(usage.physical_bytes),
            human_size(usage.logical_bytes),
            human_size(usage.saved_bytes),
            human_size(usage.layer_saved_bytes),
            human_size(usage.file_saved_bytes),
            format!("{} ({})", usage.objects, human_size(usage.object_bytes)),
            human_size(usage.reclaimable_bytes),
        ]],
    );
    Ok(ExitCode::SUCCESS)
}

pub fn rmi(ctx: &Context, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx, None)?;
    let mut failed = false;
    for name in &args.images {
        match store.remove_image(name) {
            Ok(removed) => {
                println!("Untagged: {name}");
                for digest in removed {
                    println!("Deleted: {digest}");
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if !failed {
        println!("Layers stay until `layerlet gc` removes those no image uses.");
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// kubelet's image garbage collection thresholds (percent of the data root's filesystem).
#[derive(Debug, Clone, Args)]
pub struct ImageGcArgs {
    /// Above this disk usage, least recently used images no container uses are removed...
    #[arg(
        long = "image-gc-high-threshold",
        default_value_t = 85,
        value_name = "PERCENT"
    )]
    pub high: u8,
    /// ...until usage is down to this.
    #[arg(
        long = "image-gc-low-threshold",
        default_value_t = 80,
        value_name = "PERCENT"
    )]
    pub low: u8,
}

impl ImageGcArgs {
    pub fn watermarks(&self) -> anyhow::Result<Watermarks> {
        Ok(Watermarks::new(self.high, self.low)?)
    }
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Also remove least recently used images that no container uses while the disk holding
    /// the data root is above --image-gc-high-threshold.
    #[arg(long)]
    pub free_space: bool,
    #[command(flatten)]
    pub thresholds: ImageGcArgs,
}

pub fn gc(ctx: &Context, args: GcArgs) -> anyhow::Result<ExitCode> {
    let marks = args.thresholds.watermarks()?;
    let store = open_store(ctx, None)?;
    if args.free_space {
        let report = store.free_space(marks, &BTreeSet::new())?;
        if ctx.output == Output::Json {
            print_json(&report)?;
        } else {
            println!(
                "Disk {:.1}% used before, {:.1}% after (thresholds {}%/{}%); removed {} images, \
                 {} layers, {} blobs; freed {}",
                report.usage_percent_before,
                report.usage_percent_after,
                marks.high(),
                marks.low(),
                report.images_removed.len(),
                report.collected.layers_removed.len(),
                report.collected.blobs_removed,
                human_size(report.collected.bytes_freed)
            );
            if report.short_of_target() {
                println!(
                    "Could not reach {}%: the remaining images are in use",
                    marks.low()
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = store.collect_garbage()?;
    // Sealed copies of older layerlet binaries no process runs from (one per upgrade).
    let copies = layerlet::sys::exe::prune_sealed_copies()?;
    if ctx.output == Output::Json {
        print_json(&report)?;
    } else {
        println!(
            "Removed {} layers, {} blobs, {} shared files and {} leftovers of interrupted pulls; freed {}",
            report.layers_removed.len(),
            report.blobs_removed,
            report.objects_removed,
            report.debris_removed,
            human_size(report.bytes_freed)
        );
        if !copies.is_empty() {
            println!(
                "Removed {} sealed copies of older layerlet binaries",
                copies.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx, None)?;
    let report = store.verify_objects()?;
    let code = if report.damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if ctx.output == Output::Json {
        print_json(&report)?;
        return Ok(code);
    }
    for d in &report.damaged {
        println!(
            "damaged object {} (its content or metadata now hashes to {})",
            d.object.path.display(),
            d.object.actual
        );
        for layer in &d.layers_removed {
            println!(
                "  removed layer {}: fetched again by the next pull",
                layer.short()
            );
        }
        for layer in &d.layers_in_use {
            println!(
                "  layer {} kept: a container uses it; remove the container, then run verify again",
                layer.short()
            );
        }
        for image in &d.images {
            println!("  pull again: layerlet pull {image}");
        }
    }
    println!(
        "{} objects checked, {} damaged",
        report.objects_checked,
        report.damaged.len()
    );
    Ok(code)
}

pub fn image_command(ctx: &Context, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::Ls => images(ctx),
        ImageCommand::Verify => verify(ctx),
        ImageCommand::Import(args) => {
            let store = open_store(ctx, Some(&args.store))?;
            let platform = parse_platform(args.platform.as_deref())?;
            let installed = runtime()?.block_on(layerlet::image::import::import(
                &store,
                &args.path,
                args.name.as_deref(),
                platform.as_ref(),
            ))?;
            print_installed(ctx, &installed)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

//! volume ls, inspect, rm: the node-local named volumes pods claim by name.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use layerlet::image::report::human_size;
use layerlet::image::store::{Store, StoreOptions};
use layerlet::pod::spec::PodSpec;
use layerlet::runtime::pods::pod_spec;
use layerlet::runtime::storage::volumes::{list_named, remove_named};

use super::context::Context;
use super::output::{print_json, print_table, Output};

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List named volumes, their size and the pods using them.
    Ls,
    /// Show one named volume as JSON.
    Inspect { name: String },
    /// Remove named volumes and their data (refused while a pod uses one).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn pods(ctx: &Context) -> anyhow::Result<Vec<PodSpec>> {
    let store = Store::open(&ctx.layout, StoreOptions::default())?;
    let records = store.db().pods()?;
    Ok(records.iter().filter_map(|r| pod_spec(r).ok()).collect())
}

pub fn volume(ctx: &Context, cmd: VolumeCommand) -> anyhow::Result<ExitCode> {
    let pods = pods(ctx)?;
    match cmd {
        VolumeCommand::Ls => {
            let volumes = list_named(&ctx.layout, &pods)?;
            if ctx.output == Output::Json {
                print_json(&volumes)?;
            } else {
                let rows: Vec<Vec<String>> = volumes
                    .iter()
                    .map(|v| vec![v.name.clone(), human_size(v.bytes), v.used_by.join(",")])
                    .collect();
                print_table(&["NAME", "SIZE", "USED BY"], &rows);
            }
        }
        VolumeCommand::Inspect { name } => {
            let volumes = list_named(&ctx.layout, &pods)?;
            let v = volumes.iter().find(|v| v.name == name).with_context(|| {
                format!("no volume named {name:?}; `layerlet volume ls` lists them")
            })?;
            print_json(v)?;
        }
        VolumeCommand::Rm { names } => {
            for name in names {
                remove_named(&ctx.layout, &name, &pods)?;
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

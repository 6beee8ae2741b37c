//! `layerlet validate FILE...`: the agent's manifest checks, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use layerlet::pod::{parse_manifest_file, Limits, ParsedObject};

use super::Context;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest files (YAML or JSON; several documents per file).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn validate(_ctx: &Context, args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits::default();
    let mut failed = false;
    for file in &args.files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        match parse_manifest_file(file, &bytes, &limits) {
            Ok(objects) => {
                for object in &objects {
                    if let ParsedObject::Pod(pod) = object {
                        for w in &pod.warnings {
                            eprintln!(
                                "warning: {}: pod {}: {}: {}",
                                file.display(),
                                pod.spec.key(),
                                w.field,
                                w.message
                            );
                        }
                    }
                    println!("{}: {} {} ok", file.display(), object.kind(), object.key());
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

//! The image a container runs, as its imagePullPolicy says: the one present, a pull, or a
//! refusal. The one implementation of the pull policy, for the agent and `layerlet run`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use super::host::{About, Host, StepEvent};
use crate::image::digest::Digest;
use crate::image::pull::{pull, PullError, PullOptions};
use crate::image::store::Store;
use crate::pod::spec::{ContainerSpec, PullPolicy};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {image} is not present with pull policy Never")]
    NotPresent { image: String },
    #[error("{source}")]
    Pull {
        image: String,
        #[source]
        source: Box<PullError>,
    },
    #[error("pull {image}: cannot start the async runtime for it: {source}")]
    Runtime {
        image: String,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// The image the container names.
    pub fn image(&self) -> &str {
        match self {
            ImageError::NotPresent { image }
            | ImageError::Pull { image, .. }
            | ImageError::Runtime { image, .. } => image,
        }
    }
}

/// Where a pull runs: carried out from a blocking thread, either on the agent's runtime or
/// on one made at the first pull (a `layerlet run` that pulls nothing never makes one).
pub enum PullRuntime {
    Handle(tokio::runtime::Handle),
    Lazy(OnceLock<tokio::runtime::Runtime>),
}

pub struct Images {
    pub options: PullOptions,
    runtime: PullRuntime,
    /// Images resolved before the pod was created, by container name: not resolved again
    /// (a foreground run pulls once, up front).
    pinned: BTreeMap<String, Digest>,
}

impl Images {
    pub fn new(options: PullOptions, runtime: PullRuntime) -> Images {
        Images {
            options,
            runtime,
            pinned: BTreeMap::new(),
        }
    }

    pub fn pin(&mut self, container: &str, digest: Digest) {
        self.pinned.insert(container.to_string(), digest);
    }

    fn block_on<F: std::future::Future>(
        &self,
        image: &str,
        future: F,
    ) -> Result<F::Output, ImageError> {
        match &self.runtime {
            PullRuntime::Handle(handle) => Ok(handle.block_on(future)),
            PullRuntime::Lazy(cell) => {
                if cell.get().is_none() {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .map_err(|source| ImageError::Runtime {
                            image: image.to_string(),
                            source,
                        })?;
                    let _ = cell.set(runtime);
                }
                match cell.get() {
                    Some(runtime) => Ok(runtime.block_on(future)),
                    None => Err(ImageError::Runtime {
                        image: image.to_string(),
                        source: std::io::Error::other("the runtime was not kept"),
                    }),
                }
            }
        }
    }

    /// The image `container` runs: present (IfNotPresent, Never), refused (Never and
    /// missing) or pulled (Always, or IfNotPresent and missing). Call from a blocking thread.
    pub fn ensure(
        &self,
        store: &Store,
        host: &dyn Host,
        about: About<'_>,
        container: &ContainerSpec,
    ) -> Result<Digest, ImageError> {
        if let Some(digest) = self.pinned.get(&container.name) {
            return Ok(digest.clone());
        }
        let reference = &container.image;
        let image = &reference.to_string();
        let present = store.resolve_reference(reference).ok();
        match (container.image_pull_policy, present) {
            (PullPolicy::IfNotPresent | PullPolicy::Never, Some(d)) => Ok(d),
            (PullPolicy::Never, None) => Err(ImageError::NotPresent {
                image: image.clone(),
            }),
            _ => {
                host.event(
                    about,
                    StepEvent::Pulling {
                        image: image.clone(),
                    },
                );
                let started = Instant::now();
                let result = self.block_on(image, pull(store, reference, &self.options))?;
                let seconds = started.elapsed().as_secs_f64();
                match result {
                    Ok(installed) => {
                        host.event(
                            about,
                            StepEvent::Pulled {
                                image: image.clone(),
                                seconds,
                                bytes: installed.fetched_bytes,
                            },
                        );
                        Ok(installed.digest)
                    }
                    Err(source) => {
                        host.event(
                            about,
                            StepEvent::PullFailed {
                                image: image.clone(),
                                seconds,
                            },
                        );
                        Err(ImageError::Pull {
                            image: image.clone(),
                            source: Box::new(source),
                        })
                    }
                }
            }
        }
    }
}

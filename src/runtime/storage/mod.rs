//! What a container sees as files: the overlay rootfs over the shared image layers, the
//! pod's volumes, projected volumes written atomically, the termination-message file.

pub mod projected;
pub mod rootfs;
pub mod termination;
pub mod volumes;

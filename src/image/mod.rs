//! Images: registry pulls, the content-addressed store of blobs and unpacked
//! layers, imports from archives, and the reports `images`, `history` and `df` print.

pub mod auth;
pub mod content;
pub mod db;
pub mod digest;
pub mod gc;
pub mod gc_policy;
pub mod import;
pub mod layers;
pub mod manifest;
pub mod objects;
pub mod pull;
pub mod registry;
pub mod report;
pub mod store;
pub mod unpack;
pub mod users;
pub mod verify;

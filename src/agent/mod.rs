//! The node agent: watches pod YAML, reconciles it with what runs, reports status.

pub mod plan;

//! What a refused manifest says: one field's problem ([`FieldError`]), a field accepted but
//! ignored ([`Warning`]), and the error of a whole file ([`PodError`]), each naming the file,
//! the document and the field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One problem with one field: `spec.containers[1].image: required`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Joined(field, reason))]
pub struct FieldError {
    /// Kubernetes-style path (`spec.volumes[2].hostPath.path`); empty for the whole document.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A field layerlet accepts but ignores because it means nothing on a single node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub field: String,
    pub message: String,
}

/// The message of a field only the scheduler acts on.
pub const SCHEDULING_ONLY: &str = "ignored: scheduling has no meaning on a single node";

impl Warning {
    /// A scheduling field: in kube mode the scheduler already applied it, so it is no news.
    pub fn scheduling_only(&self) -> bool {
        self.message == SCHEDULING_ONLY
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Joined(&self.field, &self.message).fmt(f)
    }
}

struct Joined<'a>(&'a str, &'a str);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(self.1)
        } else {
            write!(f, "{}: {}", self.0, self.1)
        }
    }
}

/// `pods/web.yaml: document 2: ` (each part only when known).
struct Location<'a>(&'a Option<PathBuf>, &'a Option<usize>);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = self.0 {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(document) = self.1 {
            write!(f, "document {document}: ")?;
        }
        Ok(())
    }
}

struct More<'a>(&'a [FieldError]);

impl fmt::Display for More<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in self.0 {
            write!(f, "; {error}")?;
        }
        Ok(())
    }
}

/// Why a manifest was refused. Documents are counted from 1 in the order YAML sees them
/// (empty documents count, so the number matches the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    #[error("{}manifest is {size} bytes, over the limit of {limit} bytes", Location(file, &None))]
    TooLarge {
        file: Option<PathBuf>,
        size: usize,
        limit: usize,
    },
    #[error("{}invalid YAML: {message}", Location(file, document))]
    Syntax {
        file: Option<PathBuf>,
        document: Option<usize>,
        message: String,
    },
    #[error("{}nested deeper than {limit} levels", Location(file, &Some(*document)))]
    TooDeep {
        file: Option<PathBuf>,
        document: usize,
        limit: usize,
    },
    #[error(
        "{}more than {limit} values once YAML aliases are expanded; anchors and aliases may not inflate a manifest",
        Location(file, &Some(*document))
    )]
    TooManyValues {
        file: Option<PathBuf>,
        document: usize,
        limit: usize,
    },
    /// A field is wrong. `more` holds further problems found in the same document.
    #[error("{}{}{}", Location(file, document), Joined(field, reason), More(more))]
    Invalid {
        file: Option<PathBuf>,
        document: Option<usize>,
        field: String,
        reason: String,
        more: Vec<FieldError>,
    },
}

impl PodError {
    pub(crate) fn invalid(document: Option<usize>, error: FieldError) -> PodError {
        PodError::Invalid {
            file: None,
            document,
            field: error.field,
            reason: error.reason,
            more: Vec::new(),
        }
    }

    /// The same error without a document number (for objects that come from no file).
    pub(crate) fn without_document(self) -> PodError {
        match self {
            PodError::Invalid {
                file,
                field,
                reason,
                more,
                ..
            } => PodError::Invalid {
                file,
                document: None,
                field,
                reason,
                more,
            },
            other => other,
        }
    }

    /// None when `errors` is empty.
    pub(super) fn from_field_errors(document: usize, errors: Vec<FieldError>) -> Option<PodError> {
        let mut errors = errors.into_iter();
        let first = errors.next()?;
        Some(PodError::Invalid {
            file: None,
            document: Some(document),
            field: first.field,
            reason: first.reason,
            more: errors.collect(),
        })
    }

    pub fn file(&self) -> Option<&Path> {
        match self {
            PodError::TooLarge { file, .. }
            | PodError::Syntax { file, .. }
            | PodError::TooDeep { file, .. }
            | PodError::TooManyValues { file, .. }
            | PodError::Invalid { file, .. } => file.as_deref(),
        }
    }

    pub fn document(&self) -> Option<usize> {
        match self {
            PodError::TooLarge { .. } => None,
            PodError::Syntax { document, .. } | PodError::Invalid { document, .. } => *document,
            PodError::TooDeep { document, .. } | PodError::TooManyValues { document, .. } => {
                Some(*document)
            }
        }
    }

    /// The field path of an `Invalid` error.
    pub fn field(&self) -> Option<&str> {
        match self {
            PodError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(super) fn with_file(mut self, path: &Path) -> PodError {
        match &mut self {
            PodError::TooLarge { file, .. }
            | PodError::Syntax { file, .. }
            | PodError::TooDeep { file, .. }
            | PodError::TooManyValues { file, .. }
            | PodError::Invalid { file, .. } => *file = Some(path.to_path_buf()),
        }
        self
    }
}

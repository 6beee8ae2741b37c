//! Which images to remove when the data root's filesystem fills up: kubelet's image
//! garbage collection (high and low watermarks, least recently used first), with the bytes an
//! image frees counted exactly — a layer shared with an image that stays frees nothing.
//! Pure: the store feeds it records and the filesystem's figures.

use std::collections::{BTreeMap, BTreeSet};

use super::digest::Digest;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GcPolicyError {
    #[error(
        "image GC thresholds: the low threshold ({low}%) must be below the high threshold \
         ({high}%), and the high one at most 100%"
    )]
    Thresholds { high: u8, low: u8 },
}

/// kubelet's `--image-gc-high-threshold` / `--image-gc-low-threshold`, in percent of the
/// filesystem holding the data root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    high: u8,
    low: u8,
}

impl Default for Watermarks {
    fn default() -> Self {
        Watermarks { high: 85, low: 80 }
    }
}

impl Watermarks {
    pub fn new(high: u8, low: u8) -> Result<Self, GcPolicyError> {
        if high > 100 || low >= high {
            return Err(GcPolicyError::Thresholds { high, low });
        }
        Ok(Watermarks { high, low })
    }

    pub fn high(&self) -> u8 {
        self.high
    }

    pub fn low(&self) -> u8 {
        self.low
    }
}

/// Size and usage of the filesystem holding the data root (from statvfs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    pub capacity_bytes: u64,
    pub used_bytes: u64,
}

impl FsUsage {
    fn percent_used(&self) -> f64 {
        if self.capacity_bytes == 0 {
            return 0.0;
        }
        self.used_bytes as f64 * 100.0 / self.capacity_bytes as f64
    }
}

/// One image as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcCandidate {
    pub digest: Digest,
    /// Unix seconds of the last container start or stop with this image (or its pull).
    pub last_used: i64,
    pub created_at: i64,
    /// Chain IDs of its unpacked layers.
    pub layers: Vec<Digest>,
    /// A container uses it or a pod the node runs names it: never removed.
    pub protected: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcPlan {
    /// Images to remove, in order (least recently used first).
    pub remove: Vec<Digest>,
    /// Bytes those removals free (each layer counted once, shared layers that stay excluded).
    pub frees_bytes: u64,
    /// Bytes the low watermark asked for; more than `frees_bytes` when protected images
    /// hold the rest.
    pub wanted_bytes: u64,
}

/// Nothing to do below the high watermark; above it, least recently used unprotected images
/// until the usage would be at or below the low watermark.
pub fn plan_image_gc(
    usage: FsUsage,
    marks: Watermarks,
    images: &[GcCandidate],
    layer_sizes: &BTreeMap<Digest, u64>,
) -> GcPlan {
    if usage.percent_used() < f64::from(marks.high) {
        return GcPlan::default();
    }
    let low_bytes = usage.capacity_bytes / 100 * u64::from(marks.low)
        + usage.capacity_bytes % 100 * u64::from(marks.low) / 100;
    let wanted = usage.used_bytes.saturating_sub(low_bytes);
    let mut users: BTreeMap<&Digest, usize> = BTreeMap::new();
    for image in images {
        for layer in image.layers.iter().collect::<BTreeSet<_>>() {
            *users.entry(layer).or_insert(0) += 1;
        }
    }
    let mut order: Vec<&GcCandidate> = images.iter().filter(|i| !i.protected).collect();
    order.sort_by(|a, b| {
        (a.last_used, a.created_at, &a.digest).cmp(&(b.last_used, b.created_at, &b.digest))
    });
    let mut plan = GcPlan {
        wanted_bytes: wanted,
        ..GcPlan::default()
    };
    for image in order {
        if plan.frees_bytes >= wanted {
            break;
        }
        for layer in image.layers.iter().collect::<BTreeSet<_>>() {
            if let Some(n) = users.get_mut(layer) {
                *n -= 1;
                if *n == 0 {
                    plan.frees_bytes += layer_sizes.get(layer).copied().unwrap_or(0);
                }
            }
        }
        plan.remove.push(image.digest.clone());
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn image(n: u8, last_used: i64, layers: &[u8], protected: bool) -> GcCandidate {
        GcCandidate {
            digest: d(n),
            last_used,
            created_at: 0,
            layers: layers.iter().map(|l| d(*l)).collect(),
            protected,
        }
    }

    fn sizes(list: &[(u8, u64)]) -> BTreeMap<Digest, u64> {
        list.iter().map(|(l, s)| (d(*l), *s)).collect()
    }

    const GB: u64 = 1 << 30;

    #[test]
    fn nothing_is_removed_below_the_high_watermark() {
        let usage = FsUsage {
            capacity_bytes: 100 * GB,
            used_bytes: 84 * GB,
        };
        let plan = plan_image_gc(
            usage,
            Watermarks::default(),
            &[image(1, 0, &[10], false)],
            &sizes(&[(10, 50 * GB)]),
        );
        assert_eq!(plan, GcPlan::default());
    }

    #[test]
    fn least_recently_used_images_go_first_until_the_low_watermark() {
        let usage = FsUsage {
            capacity_bytes: 100 * GB,
            used_bytes: 90 * GB,
        };
        let images = [
            image(1, 300, &[11], false),
            image(2, 100, &[12], false),
            image(3, 200, &[13], false),
        ];
        let plan = plan_image_gc(
            usage,
            Watermarks::default(),
            &images,
            &sizes(&[(11, 6 * GB), (12, 4 * GB), (13, 4 * GB)]),
        );
        // 10 GB wanted: image 2 (4 GB), then image 3 (4 GB), then image 1 (6 GB).
        assert_eq!(plan.remove, vec![d(2), d(3), d(1)]);
        assert_eq!(plan.wanted_bytes, 10 * GB);
        assert_eq!(plan.frees_bytes, 14 * GB);
    }

    #[test]
    fn stops_as_soon_as_enough_is_freed() {
        let usage = FsUsage {
            capacity_bytes: 100 * GB,
            used_bytes: 86 * GB,
        };
        let images = [image(1, 300, &[11], false), image(2, 100, &[12], false)];
        let plan = plan_image_gc(
            usage,
            Watermarks::default(),
            &images,
            &sizes(&[(11, 6 * GB), (12, 7 * GB)]),
        );
        assert_eq!(plan.remove, vec![d(2)]);
    }

    #[test]
    fn protected_images_are_never_chosen() {
        let usage = FsUsage {
            capacity_bytes: 100 * GB,
            used_bytes: 99 * GB,
        };
        let images = [image(1, 0, &[11], true), image(2, 50, &[12], false)];
        let plan = plan_image_gc(
            usage,
            Watermarks::default(),
            &images,
            &sizes(&[(11, 60 * GB), (12, GB)]),
        );
        assert_eq!(plan.remove, vec![d(2)]);
        assert_eq!(plan.frees_bytes, GB);
        assert_eq!(plan.wanted_bytes, 19 * GB);
    }

    #[test]
    fn a_layer_shared_with_a_remaining_image_frees_nothing() {
        let usage = FsUsage {
            capacity_bytes: 100 * GB,
            used_bytes: 90 * GB,
        };
        // Base layer 10 shared by images 1 (protected) and 2; image 2 frees only its top.
        let images = [image(1, 0, &[10, 11], true), image(2, 0, &[10, 12], false)];
        let plan = plan_image_gc(
            usage,
            Watermarks::default(),
            &images,
            &sizes(&[(10, 30 * GB), (11, GB), (12, 2 * GB)]),
        );
        assert_eq!(plan.remove, vec![d(2)]);
        assert_eq!(plan.frees_bytes, 2 * GB);
    }

    #[test]
    fn a_shared_layer_is_freed_with_the_last_image_using_it() {
        let usage = FsUsage {
            capacity_bytes: 100 * GB,
            used_bytes: 100 * GB,
        };
        let images = [image(1, 1, &[10, 11], false), image(2, 2, &[10, 12], false)];
        let plan = plan_image_gc(
            usage,
            Watermarks::default(),
            &images,
            &sizes(&[(10, 30 * GB), (11, GB), (12, 2 * GB)]),
        );
        assert_eq!(plan.remove, vec![d(1), d(2)]);
        assert_eq!(plan.frees_bytes, 33 * GB);
    }

    #[test]
    fn ties_in_last_use_are_broken_by_age_then_digest() {
        let usage = FsUsage {
            capacity_bytes: 100,
            used_bytes: 100,
        };
        let mut older = image(2, 5, &[12], false);
        older.created_at = 1;
        let mut newer = image(1, 5, &[11], false);
        newer.created_at = 2;
        let plan = plan_image_gc(
            usage,
            Watermarks::default(),
            &[newer, older],
            &sizes(&[(11, 1), (12, 1)]),
        );
        assert_eq!(plan.remove, vec![d(2), d(1)]);
    }

    #[test]
    fn thresholds_must_leave_a_gap_and_stay_within_a_hundred_percent() {
        assert!(Watermarks::new(85, 80).is_ok());
        assert_eq!(
            Watermarks::new(80, 80),
            Err(GcPolicyError::Thresholds { high: 80, low: 80 })
        );
        assert!(Watermarks::new(101, 80).is_err());
        assert!(Watermarks::new(100, 0).is_ok());
    }
}

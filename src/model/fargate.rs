//! Fargate task sizes: which `cpu`/`memory` pairs Fargate accepts.
//!
//! Source: AWS documentation "Fargate task sizes" (see `shared/FACTS.md`).

use std::fmt;

/// A valid Fargate task size: CPU units (1024 = 1 vCPU) and memory in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FargateSize {
    pub cpu: u32,
    pub memory_mib: u32,
}

impl fmt::Display for FargateSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpu {} / memory {} MiB", self.cpu, self.memory_mib)
    }
}

/// CPU units with the memory sizes (MiB) Fargate allows for each, as
/// (first, last, step).
const TABLE: [(u32, u32, u32, u32); 7] = [
    (256, 512, 2048, 0), // special-cased below: 512, 1024, 2048
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

/// The valid memory sizes for a CPU value, ascending; empty for an invalid CPU value.
pub fn memory_options(cpu: u32) -> Vec<u32> {
    match TABLE.iter().find(|row| row.0 == cpu) {
        None => Vec::new(),
        Some(&(256, ..)) => vec![512, 1024, 2048],
        Some(&(_, first, last, step)) => (first..=last).step_by(step as usize).collect(),
    }
}

/// The valid CPU values, ascending.
pub fn cpu_options() -> impl Iterator<Item = u32> {
    TABLE.iter().map(|row| row.0)
}

/// Whether Fargate accepts this exact pair.
pub fn is_valid(cpu: u32, memory_mib: u32) -> bool {
    memory_options(cpu).contains(&memory_mib)
}

/// The smallest Fargate size that gives at least `cpu` units and `memory_mib`
/// MiB, preferring the least CPU and then the least memory. `None` when the
/// request exceeds the largest size.
pub fn smallest_fitting(cpu: u32, memory_mib: u32) -> Option<FargateSize> {
    cpu_options().filter(|&c| c >= cpu).find_map(|c| {
        memory_options(c)
            .into_iter()
            .find(|&m| m >= memory_mib)
            .map(|m| FargateSize {
                cpu: c,
                memory_mib: m,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_vcpu_half_gib_is_the_smallest_size() {
        assert_eq!(
            smallest_fitting(256, 512),
            Some(FargateSize {
                cpu: 256,
                memory_mib: 512
            })
        );
        assert_eq!(
            smallest_fitting(1, 1),
            Some(FargateSize {
                cpu: 256,
                memory_mib: 512
            })
        );
    }

    #[test]
    fn memory_beyond_a_cpu_row_moves_to_more_cpu() {
        // 256 CPU allows at most 2 GiB; 3 GiB needs 512 CPU.
        assert_eq!(
            smallest_fitting(256, 3000),
            Some(FargateSize {
                cpu: 512,
                memory_mib: 3072
            })
        );
        // 6 GiB, the "large" ActiveGate size, fits 1024 CPU.
        assert_eq!(
            smallest_fitting(1024, 6144),
            Some(FargateSize {
                cpu: 1024,
                memory_mib: 6144
            })
        );
    }

    #[test]
    fn rounds_up_between_rows_and_steps() {
        assert_eq!(
            smallest_fitting(257, 512),
            Some(FargateSize {
                cpu: 512,
                memory_mib: 1024
            })
        );
        assert_eq!(
            smallest_fitting(8192, 16385),
            Some(FargateSize {
                cpu: 8192,
                memory_mib: 20480
            })
        );
    }

    #[test]
    fn beyond_the_largest_size_is_none() {
        assert_eq!(smallest_fitting(16385, 1), None);
        assert_eq!(smallest_fitting(256, 122881), None);
    }

    #[test]
    fn validity_follows_the_table() {
        assert!(is_valid(256, 512));
        assert!(!is_valid(256, 1536));
        assert!(is_valid(4096, 30720));
        assert!(!is_valid(4096, 31744));
        assert!(!is_valid(300, 1024));
        assert_eq!(memory_options(512), vec![1024, 2048, 3072, 4096]);
    }
}

//! Multi-dimensional resource vectors with integer units.
//!
//! A [`Resources`] value is a small fixed vector with one slot per [`Dim`]:
//! CPU in millicores, memory in MiB, GPUs as whole devices. Adding a kind of
//! resource is one new `Dim` variant and one bump of [`NDIMS`].

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use serde::{Deserialize, Serialize};

/// Number of resource dimensions.
pub const NDIMS: usize = 3;

/// One kind of resource.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// CPU, in millicores (1000 = one core or one SWF processor).
    Cpu,
    /// Memory, in MiB.
    Mem,
    /// GPUs, whole devices.
    Gpu,
}

impl Dim {
    /// All dimensions, in slot order.
    pub const ALL: [Dim; NDIMS] = [Dim::Cpu, Dim::Mem, Dim::Gpu];

    /// Slot index of this dimension.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Short lower-case name used in tables, JSON and prompts.
    pub const fn name(self) -> &'static str {
        match self {
            Dim::Cpu => "cpu",
            Dim::Mem => "mem",
            Dim::Gpu => "gpu",
        }
    }

    /// Unit of the integer amounts in this dimension.
    pub const fn unit(self) -> &'static str {
        match self {
            Dim::Cpu => "millicores",
            Dim::Mem => "MiB",
            Dim::Gpu => "devices",
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An amount of every resource kind, in integer units (see [`Dim`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources(pub [u64; NDIMS]);

impl Resources {
    /// Nothing of anything.
    pub const ZERO: Resources = Resources([0; NDIMS]);

    /// CPU millicores and memory MiB, no GPUs.
    pub const fn new(cpu_milli: u64, mem_mib: u64) -> Self {
        Resources([cpu_milli, mem_mib, 0])
    }

    /// Whole CPUs (1 CPU = 1000 millicores) and memory MiB.
    pub const fn cpus(cpus: u64, mem_mib: u64) -> Self {
        Resources([cpus * 1000, mem_mib, 0])
    }

    /// Builder: set the GPU count.
    pub const fn with_gpus(mut self, gpus: u64) -> Self {
        self.0[Dim::Gpu.index()] = gpus;
        self
    }

    /// Amount in one dimension.
    pub const fn get(&self, d: Dim) -> u64 {
        self.0[d.index()]
    }

    /// Set the amount in one dimension.
    pub fn set(&mut self, d: Dim, v: u64) {
        self.0[d.index()] = v;
    }

    /// CPU millicores.
    pub const fn cpu_milli(&self) -> u64 {
        self.0[0]
    }

    /// Memory MiB.
    pub const fn mem_mib(&self) -> u64 {
        self.0[1]
    }

    /// True when every dimension of `self` is ≤ the same dimension of `avail`.
    #[inline]
    pub fn fits_in(&self, avail: &Resources) -> bool {
        self.0.iter().zip(avail.0.iter()).all(|(a, b)| a <= b)
    }

    /// The first dimension in which `self` exceeds `avail`, if any.
    pub fn first_shortfall(&self, avail: &Resources) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| self.get(*d) > avail.get(*d))
    }

    /// Subtraction that returns `None` instead of wrapping below zero.
    pub fn checked_sub(&self, rhs: &Resources) -> Option<Resources> {
        let mut out = [0; NDIMS];
        for i in 0..NDIMS {
            out[i] = self.0[i].checked_sub(rhs.0[i])?;
        }
        Some(Resources(out))
    }

    /// Saturating subtraction per dimension.
    pub fn saturating_sub(&self, rhs: &Resources) -> Resources {
        let mut out = [0; NDIMS];
        for i in 0..NDIMS {
            out[i] = self.0[i].saturating_sub(rhs.0[i]);
        }
        Resources(out)
    }

    /// True when every dimension is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }

    /// Per-dimension fraction `self / cap`, 0 where `cap` is 0.
    pub fn fractions_of(&self, cap: &Resources) -> [f64; NDIMS] {
        let mut out = [0.0; NDIMS];
        for i in 0..NDIMS {
            if cap.0[i] > 0 {
                out[i] = self.0[i] as f64 / cap.0[i] as f64;
            }
        }
        out
    }

    /// Largest per-dimension fraction of `cap` (the dominant share).
    pub fn dominant_share(&self, cap: &Resources) -> f64 {
        self.fractions_of(cap).into_iter().fold(0.0, f64::max)
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(mut self, rhs: Resources) -> Resources {
        self += rhs;
        self
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, rhs: Resources) {
        for i in 0..NDIMS {
            self.0[i] += rhs.0[i];
        }
    }
}

impl Sub for Resources {
    type Output = Resources;
    /// Panics in debug builds on underflow; use [`Resources::checked_sub`] for untrusted values.
    fn sub(mut self, rhs: Resources) -> Resources {
        self -= rhs;
        self
    }
}

impl SubAssign for Resources {
    fn sub_assign(&mut self, rhs: Resources) {
        for i in 0..NDIMS {
            self.0[i] -= rhs.0[i];
        }
    }
}

impl fmt::Display for Resources {
    /// `cpu=2000m mem=512MiB` (GPUs only when non-zero).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpu={}m mem={}MiB", self.cpu_milli(), self.mem_mib())?;
        if self.get(Dim::Gpu) > 0 {
            write!(f, " gpu={}", self.get(Dim::Gpu))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_and_shortfall() {
        let cap = Resources::cpus(8, 16);
        assert!(Resources::cpus(8, 16).fits_in(&cap));
        assert!(!Resources::cpus(9, 1).fits_in(&cap));
        assert_eq!(Resources::cpus(1, 17).first_shortfall(&cap), Some(Dim::Mem));
        assert_eq!(
            Resources::cpus(1, 1).with_gpus(1).first_shortfall(&cap),
            Some(Dim::Gpu)
        );
        assert_eq!(cap.checked_sub(&Resources::cpus(9, 0)), None);
        assert_eq!(cap - Resources::cpus(3, 6), Resources::cpus(5, 10));
    }

    #[test]
    fn dominant_share_picks_largest() {
        let cap = Resources::new(1000, 100);
        assert_eq!(Resources::new(250, 50).dominant_share(&cap), 0.5);
        assert_eq!(Resources::ZERO.dominant_share(&Resources::ZERO), 0.0);
    }
}

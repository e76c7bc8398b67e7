//! How configuration files spell sizes and durations: a key names its unit (`_mb`, `_s`,
//! `_hours`) and holds a whole number, while the field behind it holds bytes or a
//! [`Duration`], so that code never converts units and files never carry fractions.
//!
//! Each module is a serde `with` adapter: `#[serde(rename = "retention_hours", with =
//! "crate::serde_units::hours")] retention: Duration`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Whole seconds as a [`Duration`].
pub mod seconds {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// Whole hours as a [`Duration`].
pub mod hours {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs() / 3600)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        // Saturating: an absurd retention means "forever", not an overflow panic.
        Ok(Duration::from_secs(
            u64::deserialize(d)?.saturating_mul(3600),
        ))
    }
}

/// Whole MiB as a number of bytes.
pub mod mib {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &usize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64((*bytes >> 20) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        Ok(usize::deserialize(d)?.saturating_mul(1 << 20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Units {
        #[serde(rename = "timeout_s", with = "seconds")]
        timeout: Duration,
        #[serde(rename = "retention_hours", with = "hours")]
        retention: Duration,
        #[serde(rename = "memory_mb", with = "mib")]
        memory_bytes: usize,
    }

    #[test]
    fn t10_units_round_trip() {
        let units = Units {
            timeout: Duration::from_secs(60),
            retention: Duration::from_secs(7 * 24 * 3600),
            memory_bytes: 4096 << 20,
        };
        let json = serde_json::to_string(&units).unwrap();
        assert_eq!(
            json,
            r#"{"timeout_s":60,"retention_hours":168,"memory_mb":4096}"#
        );
        assert_eq!(serde_json::from_str::<Units>(&json).unwrap(), units);
    }
}

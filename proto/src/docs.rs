//! Descriptive column and table metadata as it travels from the loader to the
//! coordinator: Arrow field metadata (keys [`UNIT`], [`UCD`], [`DESCRIPTION`], [`UTYPE`],
//! [`PRINCIPAL`]) and schema metadata ([`DESCRIPTION`]) of the schema in `BeginLoad`. Both
//! sides read and write it through [`ColumnDocs`], so the keys are defined once.

use std::collections::HashMap;

use serde::Deserialize;

/// Field metadata key: the unit (VOUnit).
pub const UNIT: &str = "unit";
/// Field metadata key: the UCD.
pub const UCD: &str = "ucd";
/// Field (and schema) metadata key: the description.
pub const DESCRIPTION: &str = "description";
/// Field metadata key: the utype.
pub const UTYPE: &str = "utype";
/// Field metadata key: "true" or "false", whether the column is principal.
pub const PRINCIPAL: &str = "almagest:principal";

/// Descriptive metadata of one column; `None` leaves the attribute to the next source
/// (or unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDocs {
    pub unit: Option<String>,
    pub ucd: Option<String>,
    pub description: Option<String>,
    pub utype: Option<String>,
    pub principal: Option<bool>,
}

impl ColumnDocs {
    /// Every attribute of `over` that is set replaces ours.
    pub fn overlay(&mut self, over: ColumnDocs) {
        fn take<T>(mine: &mut Option<T>, theirs: Option<T>) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        take(&mut self.unit, over.unit);
        take(&mut self.ucd, over.ucd);
        take(&mut self.description, over.description);
        take(&mut self.utype, over.utype);
        take(&mut self.principal, over.principal);
    }

    /// Reads our keys from Arrow field metadata (empty values count as unset).
    pub fn from_field_metadata(md: &HashMap<String, String>) -> Self {
        let get = |k: &str| md.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        ColumnDocs {
            unit: get(UNIT).map(str::to_string),
            ucd: get(UCD).map(str::to_string),
            description: get(DESCRIPTION).map(str::to_string),
            utype: get(UTYPE).map(str::to_string),
            principal: get(PRINCIPAL).and_then(|v| v.parse().ok()),
        }
    }

    pub fn to_field_metadata(&self) -> HashMap<String, String> {
        let mut md = HashMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                md.insert(k.to_string(), v.clone());
            }
        };
        put(UNIT, &self.unit);
        put(UCD, &self.ucd);
        put(DESCRIPTION, &self.description);
        put(UTYPE, &self.utype);
        if let Some(p) = self.principal {
            md.insert(PRINCIPAL.to_string(), p.to_string());
        }
        md
    }

    pub fn is_empty(&self) -> bool {
        *self == ColumnDocs::default()
    }
}

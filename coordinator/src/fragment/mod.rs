//! Fragments: the part of a query that runs on the workers, chunk-locally. [`spec`] says
//! what a fragment is ([`FragmentSpec`]: its SQL, chunks and region, made with
//! [`FragmentBuilder`]); [`exec`] runs it ([`FragmentTable`], [`FragmentExec`]).

pub mod exec;
mod keys;
pub mod spec;

pub use exec::{FragmentExec, FragmentTable};
pub use spec::{
    unqualify, FragmentBuilder, FragmentSpec, KeepRows, NearSide, CHUNK_TABLE, HPX_COLUMN,
    NEAR_TABLE,
};

//! Pure decisions about a cell: tier policy, desired cloud resources, desired Kubernetes objects.
//!
//! Nothing here performs I/O; the GameCell controller observes, calls these, and applies.

pub mod connections;
pub mod policy;
pub mod resources;
pub mod tenancy;
pub mod tenant_sql;

#[cfg(test)]
mod properties;

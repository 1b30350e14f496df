//! Deterministic, length-safe cloud identifiers for a cell's resources (pure).
//!
//! An identifier depends only on the cell's name and UID (both immutable) and the store's
//! logical name, so every reconcile, before or after a crash, looks for the same resource and
//! never creates a second one. The UID suffix keeps a recreated cell of the same name from
//! colliding with resources its predecessor retained.

use sha2::{Digest, Sha256};

/// ElastiCache replication group ids: the tightest AWS limit a cell identifier must fit.
pub const CACHE_ID_MAX: usize = 40;
/// RDS instance / cluster identifiers, S3 bucket names, EKS node group names.
pub const SQL_ID_MAX: usize = 63;

/// Six hex characters derived from the cell's UID.
#[must_use]
pub fn uid_suffix(uid: &str) -> String {
    let digest = Sha256::digest(uid.as_bytes());
    digest.iter().take(3).map(|b| format!("{b:02x}")).collect()
}

/// Lowercase letters, digits and single hyphens only, no leading or trailing hyphen: the
/// intersection of what RDS, ElastiCache, S3 and EKS accept.
fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end_matches('-').to_owned()
}

/// `gc-<cell>-<uid6>[-<part>]`, shortened to `max` by trimming the cell name (never the suffix,
/// which carries the uniqueness). Starts with a letter, as RDS requires.
#[must_use]
pub fn identifier(cell: &str, uid: &str, part: Option<&str>, max: usize) -> String {
    let suffix = uid_suffix(uid);
    let part = part.map(sanitize).filter(|p| !p.is_empty());
    let tail = match &part {
        Some(p) => format!("-{suffix}-{p}"),
        None => format!("-{suffix}"),
    };
    let budget = max.saturating_sub("gc-".len() + tail.len());
    let mut cell = sanitize(cell);
    cell.truncate(budget);
    let cell = cell.trim_end_matches('-');
    let id = if cell.is_empty() {
        format!("gc{tail}")
    } else {
        format!("gc-{cell}{tail}")
    };
    let mut id = id;
    id.truncate(max);
    id.trim_end_matches('-').to_owned()
}

/// The SQL store of a cell.
#[must_use]
pub fn sql(cell: &str, uid: &str) -> String {
    identifier(cell, uid, None, SQL_ID_MAX)
}

/// The cache of a cell.
#[must_use]
pub fn cache(cell: &str, uid: &str) -> String {
    identifier(cell, uid, None, CACHE_ID_MAX)
}

/// A document table of a cell.
#[must_use]
pub fn table(cell: &str, uid: &str, table: &str) -> String {
    identifier(cell, uid, Some(table), 255)
}

/// A bucket of a cell (bucket names are global, hence the UID suffix).
#[must_use]
pub fn bucket(cell: &str, uid: &str, bucket: &str) -> String {
    identifier(cell, uid, Some(bucket), SQL_ID_MAX)
}

/// The node group of a cell.
#[must_use]
pub fn node_group(cell: &str, uid: &str) -> String {
    identifier(cell, uid, None, SQL_ID_MAX)
}

/// The final snapshot taken before a SQL store is deleted under `deletionPolicy: Snapshot`.
#[must_use]
pub fn final_snapshot(sql_identifier: &str) -> String {
    let mut id = format!("{sql_identifier}-final");
    id.truncate(255);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "3f0c9d4e-8a1b-4c2d-9e3f-0123456789ab";

    fn valid_rds(id: &str) -> bool {
        id.len() <= SQL_ID_MAX
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && !id.ends_with('-')
            && !id.contains("--")
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    #[test]
    fn identifiers_are_deterministic_and_depend_on_the_uid() {
        assert_eq!(sql("starfall", UID), sql("starfall", UID));
        assert_ne!(sql("starfall", UID), sql("starfall", "another-uid"));
        assert!(sql("starfall", UID).starts_with("gc-starfall-"));
        assert_eq!(
            table("starfall", UID, "saves"),
            format!("gc-starfall-{}-saves", uid_suffix(UID))
        );
    }

    #[test]
    fn identifiers_fit_aws_limits_for_the_longest_names() {
        let cell = "a".repeat(30);
        let bucket_name = "b".repeat(20);
        assert!(
            cache(&cell, UID).len() <= CACHE_ID_MAX,
            "{}",
            cache(&cell, UID)
        );
        assert!(valid_rds(&sql(&cell, UID)));
        assert!(valid_rds(&bucket(&cell, UID, &bucket_name)));
        assert!(bucket(&cell, UID, &bucket_name).len() >= 3);
        // Even a name longer than the API allows stays within limits and keeps the suffix.
        let huge = "x".repeat(200);
        let id = cache(&huge, UID);
        assert!(
            id.len() <= CACHE_ID_MAX && id.ends_with(&uid_suffix(UID)),
            "{id}"
        );
    }

    #[test]
    fn odd_characters_never_produce_invalid_identifiers() {
        for name in ["a--b", "-a-", "A_B.C", "9lives", "---"] {
            let id = sql(name, UID);
            assert!(valid_rds(&id), "{name:?} -> {id:?}");
        }
    }
}

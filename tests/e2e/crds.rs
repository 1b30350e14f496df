//! The committed CRD YAML installs into a real API server and becomes Established.

use crate::support::{client, install_crds};

#[tokio::test]
async fn crds_install_and_become_established() {
    let client = client().await;
    let names = install_crds(&client).await;
    assert_eq!(
        names,
        [
            "gamecells.gamecell.dev",
            "matchmakingpools.gamecell.dev",
            "playerservices.gamecell.dev"
        ]
    );
}

//! `AwsCloud` against the AWS emulator (moto) that `make e2e` starts: every resource kind is
//! created, described, refused a second time and deleted, through the operator's own identity
//! and through an assumed role.
//!
//! Without `AWS_ENDPOINT_URL` every test fails with a message saying how to start the emulator:
//! these tests never talk to real AWS. Identifiers carry a per-test suffix, so the tests share
//! one emulator without colliding.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use gamecell_operator::cloud::aws::AwsCloud;
use gamecell_operator::cloud::{
    AssumeRole, BucketParams, CacheParams, CloudError, CloudProvider, DeleteProgress,
    DesiredResource, NodeGroupParams, ObservedResource, ResourceKind, ResourceParams,
    STATE_INCOMPLETE, Scope, SqlParams, TableParams, tags,
};

const REGION: &str = "us-east-1";

/// The emulator's endpoint, or a panic that says how to get one.
fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: run the e2e suite with `make e2e` (it starts the AWS emulator and \
             points AWS_ENDPOINT_URL at it); these tests never talk to real AWS"
        )
    })
}

async fn cloud() -> AwsCloud {
    let url = endpoint();
    assert!(
        url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL={url} is not a local emulator; these tests never talk to real AWS"
    );
    AwsCloud::from_env().await
}

async fn sdk_config(region: &str) -> aws_config::SdkConfig {
    endpoint();
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .load()
        .await
}

fn scope() -> Scope {
    Scope {
        region: REGION.to_owned(),
        assume_role: None,
    }
}

/// A lowercase suffix unique to this test run and call.
fn unique() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{n}", (nanos as u64) & 0xff_ffff_ffff)
}

fn ownership_tags(cell: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (tags::CELL.to_owned(), cell.to_owned()),
        (tags::CELL_UID.to_owned(), format!("uid-{cell}")),
        (tags::MANAGED_BY.to_owned(), tags::MANAGER.to_owned()),
    ])
}

fn desired(kind: ResourceKind, identifier: &str, params: ResourceParams) -> DesiredResource {
    DesiredResource {
        kind,
        logical_name: kind.as_str().to_lowercase(),
        identifier: identifier.to_owned(),
        tags: ownership_tags(identifier),
        adopt: false,
        params,
    }
}

fn assert_owned(observed: &ObservedResource, desired: &DesiredResource) {
    for (key, value) in &desired.tags {
        assert_eq!(
            observed.tags.get(key),
            Some(value),
            "tag {key} of {}: {observed:?}",
            desired.identifier
        );
    }
}

/// Asserts what every kind must show once created: ready, not public, owned (and encrypted
/// where the kind stores data).
async fn assert_ready(
    cloud: &AwsCloud,
    scope: &Scope,
    desired: &DesiredResource,
) -> ObservedResource {
    let observed = cloud
        .describe(scope, desired.kind, &desired.identifier)
        .await
        .expect("describe")
        .unwrap_or_else(|| {
            panic!(
                "{} {} not found after create",
                desired.kind.as_str(),
                desired.identifier
            )
        });
    assert_eq!(observed.identifier, desired.identifier);
    assert!(observed.ready, "not ready: {observed:?}");
    assert!(!observed.publicly_accessible, "public: {observed:?}");
    if desired.kind != ResourceKind::NodeGroup {
        assert!(observed.encrypted, "not encrypted: {observed:?}");
    }
    assert_owned(&observed, desired);
    observed
}

/// A second create of the same identifier is refused (the resource exists), never a duplicate.
async fn assert_second_create_refused(cloud: &AwsCloud, scope: &Scope, desired: &DesiredResource) {
    let err = cloud
        .create(scope, desired)
        .await
        .expect_err("a second create must fail");
    assert!(
        matches!(err, CloudError::Busy { .. }),
        "second create of {}: {err:?}",
        desired.identifier
    );
    assert!(
        err.to_string().contains(&desired.identifier) || err.to_string().contains("exist"),
        "{err}"
    );
}

/// Deletes until the cloud reports it gone (the emulator is immediate; a few rounds at most).
async fn delete_until_gone(
    cloud: &AwsCloud,
    scope: &Scope,
    kind: ResourceKind,
    identifier: &str,
    final_snapshot: Option<&str>,
) {
    for _ in 0..10 {
        match cloud
            .delete(scope, kind, identifier, final_snapshot)
            .await
            .expect("delete")
        {
            DeleteProgress::Gone => {
                assert_eq!(
                    cloud
                        .describe(scope, kind, identifier)
                        .await
                        .expect("describe after delete"),
                    None
                );
                return;
            }
            DeleteProgress::InProgress => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("{} {identifier} not gone after 10 deletes", kind.as_str());
}

async fn full_lifecycle(
    cloud: &AwsCloud,
    scope: &Scope,
    desired: &DesiredResource,
    final_snapshot: Option<&str>,
) {
    assert_eq!(
        cloud
            .describe(scope, desired.kind, &desired.identifier)
            .await
            .expect("describe before"),
        None
    );
    let created = cloud.create(scope, desired).await.expect("create");
    assert_eq!(created.identifier, desired.identifier);
    assert_ready(cloud, scope, desired).await;
    assert_second_create_refused(cloud, scope, desired).await;
    delete_until_gone(
        cloud,
        scope,
        desired.kind,
        &desired.identifier,
        final_snapshot,
    )
    .await;
    // Deleting what is gone is not an error.
    assert_eq!(
        cloud
            .delete(scope, desired.kind, &desired.identifier, final_snapshot)
            .await
            .expect("delete again"),
        DeleteProgress::Gone
    );
}

fn sql_params(aurora: bool) -> SqlParams {
    SqlParams {
        engine: if aurora {
            "aurora-postgresql"
        } else {
            "postgres"
        }
        .to_owned(),
        engine_version: "16.3".to_owned(),
        instance_class: "db.t4g.medium".to_owned(),
        storage_gib: 20,
        multi_az: true,
        backup_retention_days: 7,
        kms_key_id: None,
        deletion_protection: true,
        aurora,
        maintenance_window: Some("sun:03:30-sun:04:30".to_owned()),
    }
}

#[tokio::test]
async fn sql_instance_lifecycle_with_final_snapshot() {
    let cloud = cloud().await;
    let id = format!("gc-e2e-sql-{}", unique());
    let snapshot = format!("{id}-final");
    let desired = desired(
        ResourceKind::Sql,
        &id,
        ResourceParams::Sql(sql_params(false)),
    );

    assert_eq!(
        cloud
            .describe(&scope(), ResourceKind::Sql, &id)
            .await
            .expect("describe"),
        None
    );
    cloud.create(&scope(), &desired).await.expect("create");
    let observed = assert_ready(&cloud, &scope(), &desired).await;
    assert_eq!(observed.state, "available");
    assert!(observed.endpoint.is_some(), "{observed:?}");
    assert_eq!(observed.port, Some(5432));
    let secret = observed.secret_arn.expect("RDS-managed master secret");
    assert!(secret.starts_with("arn:aws:secretsmanager:"), "{secret}");
    assert_second_create_refused(&cloud, &scope(), &desired).await;

    // Deletion protection is on: the delete turns it off first.
    delete_until_gone(&cloud, &scope(), ResourceKind::Sql, &id, Some(&snapshot)).await;
    let rds = aws_sdk_rds::Client::new(&sdk_config(REGION).await);
    let snapshots = rds
        .describe_db_snapshots()
        .db_snapshot_identifier(&snapshot)
        .send()
        .await
        .expect("snapshots");
    assert_eq!(
        snapshots.db_snapshots().len(),
        1,
        "final snapshot {snapshot}"
    );
}

#[tokio::test]
async fn sql_instance_without_snapshot() {
    let cloud = cloud().await;
    let id = format!("gc-e2e-sqlns-{}", unique());
    let params = SqlParams {
        deletion_protection: false,
        multi_az: false,
        ..sql_params(false)
    };
    full_lifecycle(
        &cloud,
        &scope(),
        &desired(ResourceKind::Sql, &id, ResourceParams::Sql(params)),
        None,
    )
    .await;
    let rds = aws_sdk_rds::Client::new(&sdk_config(REGION).await);
    let snapshots = rds
        .describe_db_snapshots()
        .db_instance_identifier(&id)
        .send()
        .await
        .expect("snapshots");
    assert!(
        snapshots
            .db_snapshots()
            .iter()
            .all(|s| s.snapshot_type() != Some("manual")),
        "no final snapshot was asked for: {:?}",
        snapshots.db_snapshots()
    );
}

#[tokio::test]
async fn aurora_cluster_lifecycle() {
    let cloud = cloud().await;
    let id = format!("gc-e2e-aurora-{}", unique());
    let snapshot = format!("{id}-final");
    let desired = desired(
        ResourceKind::Sql,
        &id,
        ResourceParams::Sql(sql_params(true)),
    );

    cloud.create(&scope(), &desired).await.expect("create");
    let observed = assert_ready(&cloud, &scope(), &desired).await;
    assert!(observed.endpoint.is_some(), "{observed:?}");
    assert!(observed.secret_arn.is_some(), "{observed:?}");
    // A writer and (multi_az) a reader.
    let rds = aws_sdk_rds::Client::new(&sdk_config(REGION).await);
    let cluster = rds
        .describe_db_clusters()
        .db_cluster_identifier(&id)
        .send()
        .await
        .expect("cluster");
    let members = cluster.db_clusters()[0].db_cluster_members();
    assert_eq!(members.len(), 2, "{members:?}");
    // A second create is refused before any call that could change the cluster (moto 5.2.5
    // would replace an existing cluster on CreateDBCluster), and the cluster is left as it was.
    assert_second_create_refused(&cloud, &scope(), &desired).await;
    assert_ready(&cloud, &scope(), &desired).await;
    let after = rds
        .describe_db_clusters()
        .db_cluster_identifier(&id)
        .send()
        .await
        .expect("cluster after the refused create");
    assert_eq!(
        after.db_clusters()[0].db_cluster_members().len(),
        2,
        "the refused create changed the cluster"
    );

    delete_until_gone(&cloud, &scope(), ResourceKind::Sql, &id, Some(&snapshot)).await;
    let snapshots = rds
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier(&snapshot)
        .send()
        .await
        .expect("snapshots");
    assert_eq!(
        snapshots.db_cluster_snapshots().len(),
        1,
        "final cluster snapshot {snapshot}"
    );
    for n in 1..=2 {
        let instance = format!("{id}-{n}");
        let err = rds
            .describe_db_instances()
            .db_instance_identifier(&instance)
            .send()
            .await;
        assert!(err.is_err(), "instance {instance} should be gone");
    }
}

/// An Aurora cluster whose instances were never requested (the operator stopped between the two
/// calls, or the instance call failed) is reported incomplete, and `create` finishes that same
/// cluster: the missing instances are added, nothing is deleted or created twice.
#[tokio::test]
async fn an_incomplete_aurora_cluster_is_finished_not_replaced() {
    let cloud = cloud().await;
    let id = format!("gc-e2e-aurora-half-{}", unique());
    let desired = desired(
        ResourceKind::Sql,
        &id,
        ResourceParams::Sql(SqlParams {
            deletion_protection: false,
            ..sql_params(true)
        }),
    );
    // The first half of a create, as an interrupted operator would have left it.
    let rds = aws_sdk_rds::Client::new(&sdk_config(REGION).await);
    let created = rds
        .create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-postgresql")
        .engine_version("16.3")
        .master_username("gamecell")
        .manage_master_user_password(true)
        .storage_encrypted(true)
        .set_tags(Some(
            desired
                .tags
                .iter()
                .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .send()
        .await
        .expect("half-created cluster");
    let arn = created
        .db_cluster()
        .and_then(|c| c.db_cluster_arn())
        .expect("arn")
        .to_owned();

    let observed = cloud
        .describe(&scope(), ResourceKind::Sql, &id)
        .await
        .expect("describe")
        .expect("the cluster exists");
    assert_eq!(observed.state, STATE_INCOMPLETE, "{observed:?}");
    assert!(!observed.ready);

    cloud.create(&scope(), &desired).await.expect("finish");
    assert_ready(&cloud, &scope(), &desired).await;
    let clusters = rds
        .describe_db_clusters()
        .db_cluster_identifier(&id)
        .send()
        .await
        .expect("cluster");
    assert_eq!(clusters.db_clusters().len(), 1);
    assert_eq!(
        clusters.db_clusters()[0].db_cluster_arn(),
        Some(arn.as_str()),
        "the same cluster, not a new one"
    );
    assert_eq!(clusters.db_clusters()[0].db_cluster_members().len(), 2);
    // Finished: a further create is refused like any second create.
    assert_second_create_refused(&cloud, &scope(), &desired).await;

    delete_until_gone(&cloud, &scope(), ResourceKind::Sql, &id, None).await;
}

#[tokio::test]
async fn cache_lifecycle() {
    let cloud = cloud().await;
    let id = format!("gc-e2e-c-{}", unique());
    let params = CacheParams {
        node_type: "cache.t4g.micro".to_owned(),
        replicas: 1,
        engine_version: Some("7.1".to_owned()),
        kms_key_id: None,
        maintenance_window: Some("sun:05:00-sun:06:00".to_owned()),
    };
    let desired = desired(ResourceKind::Cache, &id, ResourceParams::Cache(params));

    assert_eq!(
        cloud
            .describe(&scope(), ResourceKind::Cache, &id)
            .await
            .expect("describe"),
        None
    );
    cloud.create(&scope(), &desired).await.expect("create");
    let observed = assert_ready(&cloud, &scope(), &desired).await;
    assert!(
        observed
            .endpoint
            .as_deref()
            .is_some_and(|e| e.contains(&id)),
        "{observed:?}"
    );
    assert_eq!(observed.port, Some(6379));
    assert_second_create_refused(&cloud, &scope(), &desired).await;

    // moto marks a deleted replication group `deleting` and keeps it for ever (it has no
    // lifecycle), so deletion is "in progress" here; AWS removes it after a few minutes.
    assert_eq!(
        cloud
            .delete(&scope(), ResourceKind::Cache, &id, None)
            .await
            .expect("delete"),
        DeleteProgress::InProgress
    );
    match cloud
        .describe(&scope(), ResourceKind::Cache, &id)
        .await
        .expect("describe after delete")
    {
        None => {}
        Some(observed) => {
            assert_eq!(observed.state, "deleting", "{observed:?}");
            assert!(!observed.ready);
            // A delete already under way is not repeated (AWS would refuse it).
            assert_eq!(
                cloud
                    .delete(&scope(), ResourceKind::Cache, &id, None)
                    .await
                    .expect("delete again"),
                DeleteProgress::InProgress
            );
        }
    }
}

fn table_params(deletion_protection: bool) -> TableParams {
    TableParams {
        partition_key: ("pk".to_owned(), "S".to_owned()),
        sort_key: Some(("sk".to_owned(), "N".to_owned())),
        provisioned: None,
        kms_key_id: None,
        deletion_protection,
    }
}

#[tokio::test]
async fn document_table_lifecycle_with_final_backup() {
    let cloud = cloud().await;
    let id = format!("gc-e2e-t-{}-saves", unique());
    let backup = format!("{id}-final");
    let desired = desired(
        ResourceKind::DocumentTable,
        &id,
        ResourceParams::DocumentTable(table_params(true)),
    );
    full_lifecycle(&cloud, &scope(), &desired, Some(&backup)).await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(REGION).await);
    let backups = ddb
        .list_backups()
        .table_name(&id)
        .send()
        .await
        .expect("backups");
    let names: Vec<_> = backups
        .backup_summaries()
        .iter()
        .filter_map(|b| b.backup_name())
        .collect();
    assert_eq!(names, [backup.as_str()], "exactly one final backup");
}

#[tokio::test]
async fn provisioned_document_table_lifecycle() {
    let cloud = cloud().await;
    let id = format!("gc-e2e-t-{}-prov", unique());
    let params = TableParams {
        sort_key: None,
        provisioned: Some((5, 5)),
        ..table_params(false)
    };
    let desired = desired(
        ResourceKind::DocumentTable,
        &id,
        ResourceParams::DocumentTable(params),
    );
    cloud.create(&scope(), &desired).await.expect("create");
    assert_ready(&cloud, &scope(), &desired).await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(REGION).await);
    let table = ddb
        .describe_table()
        .table_name(&id)
        .send()
        .await
        .expect("table");
    let throughput = table
        .table()
        .and_then(|t| t.provisioned_throughput())
        .expect("throughput");
    assert_eq!(throughput.read_capacity_units(), Some(5));
    delete_until_gone(&cloud, &scope(), ResourceKind::DocumentTable, &id, None).await;
}

fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

#[tokio::test]
async fn bucket_lifecycle_empties_versions_first() {
    let cloud = cloud().await;
    let id = format!("gc-e2e-b-{}-assets", unique());
    let params = BucketParams {
        versioning: true,
        expire_after_days: Some(365),
        transition_to_ia_after_days: Some(30),
        noncurrent_expiration_days: Some(7),
        kms_key_id: None,
    };
    let desired = desired(ResourceKind::Bucket, &id, ResourceParams::Bucket(params));

    assert_eq!(
        cloud
            .describe(&scope(), ResourceKind::Bucket, &id)
            .await
            .expect("describe"),
        None
    );
    cloud.create(&scope(), &desired).await.expect("create");
    let observed = assert_ready(&cloud, &scope(), &desired).await;
    assert_eq!(observed.state, "available");
    assert_second_create_refused(&cloud, &scope(), &desired).await;

    let s3 = s3_client(&sdk_config(REGION).await);
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&id)
        .send()
        .await
        .expect("lifecycle");
    assert_eq!(lifecycle.rules().len(), 1);
    // Two versions of one object, a delete marker on another, and a plain object.
    for (key, body) in [
        ("saves/a", "v1"),
        ("saves/a", "v2"),
        ("saves/b", "b"),
        ("c", "c"),
    ] {
        s3.put_object()
            .bucket(&id)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put");
    }
    s3.delete_object()
        .bucket(&id)
        .key("saves/b")
        .send()
        .await
        .expect("delete marker");
    // Versioning is on: both versions of saves/a and the delete marker of saves/b are kept.
    // (moto's GetBucketVersioning answer does not parse with this SDK: no direct check.)
    let listed = s3
        .list_object_versions()
        .bucket(&id)
        .send()
        .await
        .expect("versions");
    let versions_of_a = listed
        .versions()
        .iter()
        .filter(|v| v.key() == Some("saves/a"))
        .count();
    assert_eq!(versions_of_a, 2, "{listed:?}");
    assert_eq!(listed.delete_markers().len(), 1, "{listed:?}");

    delete_until_gone(&cloud, &scope(), ResourceKind::Bucket, &id, None).await;
    assert!(
        s3.head_bucket().bucket(&id).send().await.is_err(),
        "bucket {id} still there"
    );
}

#[tokio::test]
async fn node_group_lifecycle_and_describe_cluster() {
    let cloud = cloud().await;
    let config = sdk_config(REGION).await;
    let eks = aws_sdk_eks::Client::new(&config);
    let cluster = format!("gc-e2e-eks-{}", unique());

    assert_eq!(
        cloud
            .describe_cluster(&scope(), &cluster)
            .await
            .expect("describe missing cluster"),
        None
    );
    eks.create_cluster()
        .name(&cluster)
        .version("1.31")
        .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .subnet_ids("subnet-2")
                .build(),
        )
        .send()
        .await
        .expect("create EKS cluster");
    let observed = cloud
        .describe_cluster(&scope(), &cluster)
        .await
        .expect("describe cluster")
        .expect("cluster");
    assert_eq!(observed.name, cluster);
    assert_eq!(observed.status, "ACTIVE");
    assert_eq!(observed.version, "1.31");
    assert_eq!(observed.region, REGION);

    let id = format!("{cluster}/gc-e2e-ng-{}", unique());
    let params = NodeGroupParams {
        cluster_name: cluster.clone(),
        instance_types: vec!["m7g.large".to_owned(), "m6g.large".to_owned()],
        min_size: 1,
        max_size: 4,
        desired_size: 2,
        spot: true,
        labels: BTreeMap::from([("gamecell.dev/cell".to_owned(), "e2e".to_owned())]),
        taint: ("gamecell.dev/cell".to_owned(), "e2e".to_owned()),
        node_role_arn: "arn:aws:iam::123456789012:role/eks-node".to_owned(),
        subnets: vec!["subnet-1".to_owned(), "subnet-2".to_owned()],
    };
    let desired = desired(
        ResourceKind::NodeGroup,
        &id,
        ResourceParams::NodeGroup(params),
    );
    assert_eq!(
        cloud
            .describe(&scope(), ResourceKind::NodeGroup, &id)
            .await
            .expect("describe"),
        None
    );
    cloud.create(&scope(), &desired).await.expect("create");
    let observed = assert_ready(&cloud, &scope(), &desired).await;
    assert_eq!(observed.state, "ACTIVE");

    let name = id.split_once('/').expect("cluster/nodegroup").1;
    let ng = eks
        .describe_nodegroup()
        .cluster_name(&cluster)
        .nodegroup_name(name)
        .send()
        .await
        .expect("nodegroup");
    let ng = ng.nodegroup().expect("nodegroup");
    assert_eq!(ng.capacity_type().map(|c| c.as_str()), Some("SPOT"));
    assert_eq!(ng.scaling_config().and_then(|s| s.desired_size()), Some(2));
    assert_eq!(
        ng.labels()
            .and_then(|l| l.get("gamecell.dev/cell"))
            .map(String::as_str),
        Some("e2e")
    );
    let taint = &ng.taints()[0];
    assert_eq!(taint.effect().map(|e| e.as_str()), Some("NO_SCHEDULE"));
    assert_eq!(taint.key(), Some("gamecell.dev/cell"));

    assert_second_create_refused(&cloud, &scope(), &desired).await;
    delete_until_gone(&cloud, &scope(), ResourceKind::NodeGroup, &id, None).await;

    // An identifier without its cluster is a request to fix, not a "not found".
    let err = cloud
        .describe(&scope(), ResourceKind::NodeGroup, name)
        .await
        .expect_err("no cluster in id");
    assert!(err.is_permanent(), "{err:?}");
    eks.delete_cluster()
        .name(&cluster)
        .send()
        .await
        .expect("delete EKS cluster");
    assert_eq!(
        cloud
            .describe_cluster(&scope(), &cluster)
            .await
            .expect("describe deleted cluster"),
        None
    );
}

#[tokio::test]
async fn assumed_role_scope_acts_in_the_customer_account() {
    let cloud = cloud().await;
    let customer = Scope {
        region: "eu-west-1".to_owned(),
        assume_role: Some(AssumeRole {
            role_arn: "arn:aws:iam::111122223333:role/gamecell-customer".to_owned(),
            external_id: "tenant-external-id".to_owned(),
        }),
    };
    let suffix = unique();

    let table = format!("gc-e2e-byoc-{suffix}-saves");
    let desired_table = desired(
        ResourceKind::DocumentTable,
        &table,
        ResourceParams::DocumentTable(table_params(false)),
    );
    cloud
        .create(&customer, &desired_table)
        .await
        .expect("create table as the customer");
    assert_ready(&cloud, &customer, &desired_table).await;
    // The table lives in the customer's account and region, not the operator's.
    assert_eq!(
        cloud
            .describe(&scope(), ResourceKind::DocumentTable, &table)
            .await
            .expect("describe"),
        None
    );
    let own_region = Scope {
        region: "eu-west-1".to_owned(),
        assume_role: None,
    };
    assert_eq!(
        cloud
            .describe(&own_region, ResourceKind::DocumentTable, &table)
            .await
            .expect("describe"),
        None
    );

    let bucket = format!("gc-e2e-byoc-{suffix}-assets");
    let params = BucketParams {
        versioning: false,
        expire_after_days: None,
        transition_to_ia_after_days: None,
        noncurrent_expiration_days: None,
        kms_key_id: Some(
            "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
                .to_owned(),
        ),
    };
    let desired_bucket = desired(
        ResourceKind::Bucket,
        &bucket,
        ResourceParams::Bucket(params),
    );
    cloud
        .create(&customer, &desired_bucket)
        .await
        .expect("create bucket as the customer");
    assert_ready(&cloud, &customer, &desired_bucket).await;

    let customer_config = sdk_config("eu-west-1").await;
    let sts = aws_sdk_sts::Client::new(&customer_config);
    let assumed = sts
        .assume_role()
        .role_arn("arn:aws:iam::111122223333:role/gamecell-customer")
        .role_session_name("e2e")
        .send()
        .await
        .expect("assume role");
    let creds = assumed.credentials().expect("credentials");
    let customer_s3 = s3_client(
        &customer_config
            .to_builder()
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                aws_sdk_s3::config::Credentials::new(
                    creds.access_key_id(),
                    creds.secret_access_key(),
                    Some(creds.session_token().to_owned()),
                    None,
                    "e2e",
                ),
            ))
            .build(),
    );
    let location = customer_s3
        .get_bucket_location()
        .bucket(&bucket)
        .send()
        .await
        .expect("location");
    assert_eq!(
        location.location_constraint().map(|l| l.as_str()),
        Some("eu-west-1")
    );
    let encryption = customer_s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .expect("encryption");
    let rule = &encryption
        .server_side_encryption_configuration()
        .expect("sse")
        .rules()[0];
    let default = rule
        .apply_server_side_encryption_by_default()
        .expect("default");
    assert_eq!(default.sse_algorithm().as_str(), "aws:kms");
    assert!(
        default
            .kms_master_key_id()
            .is_some_and(|k| k.contains("11111111-2222"))
    );

    delete_until_gone(&cloud, &customer, ResourceKind::DocumentTable, &table, None).await;
    delete_until_gone(&cloud, &customer, ResourceKind::Bucket, &bucket, None).await;
}

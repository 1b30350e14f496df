//! Every CEL rule of the API, exercised client-side with `validate_cel()`: each accepts a good
//! object and refuses a bad one with the message that tells the user what to fix.

use kube::core::cel::ValidationErrors;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{GameCell, MatchmakingPool, PlayerService};

fn object<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("fixture deserializes")
}

fn set(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let target = base.pointer_mut(parent).expect("parent exists");
    match target {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
        _ => panic!("cannot set {pointer}"),
    }
    base
}

fn remove(mut base: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    base.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent object")
        .remove(key);
    base
}

fn messages(errors: &ValidationErrors) -> Vec<String> {
    errors
        .as_slice()
        .iter()
        .map(|e| e.message.clone())
        .collect()
}

fn assert_refused(result: Result<(), ValidationErrors>, fragment: &str) {
    match result {
        Ok(()) => {
            panic!("expected refusal with a message containing {fragment:?}, but it was accepted")
        }
        Err(errors) => {
            let msgs = messages(&errors);
            assert!(
                msgs.iter().any(|m| m.contains(fragment)),
                "expected a message containing {fragment:?}, got {msgs:?}"
            );
        }
    }
}

fn assert_accepted<T: Serialize>(result: Result<(), ValidationErrors>, what: &T) {
    if let Err(errors) = result {
        panic!(
            "expected acceptance of {}, got {:?}",
            serde_json::to_string(what).unwrap_or_default(),
            messages(&errors)
        );
    }
}

fn shared_cell() -> Value {
    json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": "eu-shared-1"},
        "spec": {
            "tier": "Shared",
            "provider": {"aws": {"region": "eu-west-1"}},
            "tenants": [
                {"name": "alpha", "namespace": "game-alpha", "quota": {"cpu": "8", "memory": "16Gi", "pods": 50, "maxConcurrentPlayers": 5000}},
                {"name": "beta", "namespace": "game-beta", "quota": {"cpu": "4", "memory": "8Gi"}}
            ],
            "dataStores": {
                "sql": {"engine": "Postgres", "version": "16.4"},
                "cache": {"nodeType": "cache.t4g.small", "replicas": 1},
                "documentTables": [{"name": "saves", "partitionKey": {"name": "pk", "type": "S"}}],
                "buckets": [{"name": "assets", "versioning": true, "lifecycle": {"expireAfterDays": 365, "transitionToInfrequentAccessAfterDays": 30}}]
            },
            "maintenanceWindows": [{"day": "Sun", "startTime": "03:30", "durationMinutes": 60}]
        }
    })
}

fn enterprise_cell() -> Value {
    json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": "acme-prod"},
        "spec": {
            "tier": "Enterprise",
            "provider": {"aws": {
                "region": "eu-central-1",
                "accountRoleArn": "arn:aws:iam::123456789012:role/gamecell-operator",
                "externalId": "acme-7f3a",
                "clusterName": "acme-games"
            }},
            "tenants": [{"name": "acme", "namespace": "acme-games"}],
            "compliance": {
                "allowedRegions": ["eu-central-1", "eu-west-1"],
                "kmsKeyArn": "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "minBackupRetentionDays": 14,
                "deletionProtection": true
            },
            "nodes": {"instanceTypes": ["c7g.2xlarge"], "minSize": 2, "maxSize": 10, "desiredSize": 3,
                      "nodeRoleArn": "arn:aws:iam::123456789012:role/nodes", "subnetIds": ["subnet-0123456789abcdef0"]},
            "deletionPolicy": "Snapshot"
        }
    })
}

fn dedicated_cell() -> Value {
    json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "GameCell",
        "metadata": {"name": "starfall"},
        "spec": {
            "tier": "Dedicated",
            "provider": {"aws": {"region": "us-east-1", "clusterName": "games-use1"}},
            "tenants": [{"name": "starfall", "namespace": "starfall"}],
            "nodes": {"instanceTypes": ["c7g.4xlarge", "c6g.4xlarge"], "minSize": 3, "maxSize": 30,
                      "nodeRoleArn": "arn:aws:iam::123456789012:role/nodes", "subnetIds": ["subnet-0123456789abcdef0"]}
        }
    })
}

fn player_service() -> Value {
    json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "PlayerService",
        "metadata": {"name": "profiles", "namespace": "game-alpha"},
        "spec": {
            "cellRef": {"name": "eu-shared-1"},
            "image": "registry.example.com/profiles:1.2.0",
            "autoscaling": {"minReplicas": 2, "maxReplicas": 10},
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "dataStores": {"sql": true, "documentTables": ["saves"]},
            "auth": {"issuer": "https://auth.example.com", "audience": "players"},
            "playersPerReplica": 500
        }
    })
}

fn matchmaking_pool() -> Value {
    json!({
        "apiVersion": "gamecell.dev/v1alpha1", "kind": "MatchmakingPool",
        "metadata": {"name": "ranked", "namespace": "game-alpha"},
        "spec": {
            "cellRef": {"name": "eu-shared-1"},
            "queues": [{
                "name": "ranked-5v5", "playersPerMatch": 10, "teams": 2,
                "skillWindow": {"initial": 50, "wideningPerSecond": 10, "maximum": 400},
                "maxLatencyMs": 80, "regions": ["eu-west-1"], "timeoutSeconds": 180, "backfill": true
            }],
            "replicas": 2
        }
    })
}

fn check_cell(value: Value) -> Result<(), ValidationErrors> {
    object::<GameCell>(value).validate_cel()
}

fn check_cell_update(old: Value, new: Value) -> Result<(), ValidationErrors> {
    object::<GameCell>(new).validate_cel_update(&object::<GameCell>(old))
}

#[test]
fn good_cells_of_every_tier_are_accepted() {
    for value in [shared_cell(), enterprise_cell(), dedicated_cell()] {
        let cell: GameCell = object(value);
        assert_accepted(cell.validate_cel(), &cell);
        assert_accepted(cell.validate_cel_update(&cell), &cell);
    }
}

#[test]
fn cell_name_must_fit_cloud_identifiers() {
    let long = "a".repeat(31);
    assert_refused(
        check_cell(set(shared_cell(), "/metadata/name", json!(long))),
        "at most 30 characters",
    );
    assert_refused(
        check_cell(set(shared_cell(), "/metadata/name", json!("9lives"))),
        "starting with a letter",
    );
    assert_accepted(
        check_cell(set(shared_cell(), "/metadata/name", json!("a".repeat(30)))),
        &"30 chars",
    );
}

#[test]
fn dedicated_and_enterprise_have_exactly_one_tenant() {
    let two = json!([{"name": "a", "namespace": "ns-a"}, {"name": "b", "namespace": "ns-b"}]);
    assert_refused(
        check_cell(set(dedicated_cell(), "/spec/tenants", two.clone())),
        "exactly one tenant",
    );
    assert_refused(
        check_cell(set(enterprise_cell(), "/spec/tenants", two.clone())),
        "exactly one tenant",
    );
    assert_accepted(
        check_cell(set(shared_cell(), "/spec/tenants", two)),
        &"shared",
    );
}

#[test]
fn shared_tenants_have_distinct_namespaces() {
    let clash = json!([{"name": "a", "namespace": "same"}, {"name": "b", "namespace": "same"}]);
    assert_refused(
        check_cell(set(shared_cell(), "/spec/tenants", clash)),
        "its own namespace",
    );
}

#[test]
fn tenant_names_and_namespaces_are_bounded_and_not_system() {
    assert_refused(
        check_cell(set(shared_cell(), "/spec/tenants/0/name", json!("Alpha"))),
        "tenants[].name",
    );
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/tenants/0/namespace",
            json!("kube-system"),
        )),
        "system namespace",
    );
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/tenants/0/namespace",
            json!("Bad_NS"),
        )),
        "DNS label",
    );
}

#[test]
fn tenant_quota_must_be_positive_quantities() {
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/tenants/0/quota/cpu",
            json!("lots"),
        )),
        "quota.cpu",
    );
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/tenants/0/quota/memory",
            json!("0"),
        )),
        "quota.memory",
    );
}

#[test]
fn enterprise_requires_the_customer_account_and_compliance() {
    assert_refused(
        check_cell(remove(
            enterprise_cell(),
            "/spec/provider/aws/accountRoleArn",
        )),
        "accountRoleArn",
    );
    assert_refused(
        check_cell(remove(enterprise_cell(), "/spec/provider/aws/externalId")),
        "externalId",
    );
    assert_refused(
        check_cell(remove(enterprise_cell(), "/spec/compliance")),
        "spec.compliance block",
    );
}

#[test]
fn region_must_be_allowed_by_compliance() {
    assert_refused(
        check_cell(set(
            enterprise_cell(),
            "/spec/provider/aws/region",
            json!("us-east-1"),
        )),
        "one of compliance.allowedRegions",
    );
    assert_refused(
        check_cell(set(
            enterprise_cell(),
            "/spec/compliance/allowedRegions",
            json!(["europe"]),
        )),
        "allowedRegions entries",
    );
}

#[test]
fn region_and_arn_formats_are_checked() {
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/provider/aws/region",
            json!("moon-base-one"),
        )),
        "AWS region name",
    );
    assert_refused(
        check_cell(set(
            enterprise_cell(),
            "/spec/provider/aws/accountRoleArn",
            json!("arn:aws:iam::12:user/x"),
        )),
        "IAM role ARN",
    );
    assert_refused(
        check_cell(set(
            enterprise_cell(),
            "/spec/compliance/kmsKeyArn",
            json!("my-key"),
        )),
        "kmsKeyArn",
    );
    assert_refused(
        check_cell(set(
            enterprise_cell(),
            "/spec/provider/aws/clusterName",
            json!("-bad"),
        )),
        "clusterName must be an EKS cluster name",
    );
    assert_refused(
        check_cell(set(
            enterprise_cell(),
            "/spec/provider/aws/externalId",
            json!("has space"),
        )),
        "externalId may contain",
    );
}

#[test]
fn deletion_protection_forbids_delete_policy() {
    assert_refused(
        check_cell(set(
            enterprise_cell(),
            "/spec/deletionPolicy",
            json!("Delete"),
        )),
        "forbids deletionPolicy Delete",
    );
    assert_accepted(
        check_cell(set(
            enterprise_cell(),
            "/spec/deletionPolicy",
            json!("Retain"),
        )),
        &"retain",
    );
}

#[test]
fn shared_cells_have_no_node_group() {
    let nodes = json!({"instanceTypes": ["m7g.large"], "minSize": 1, "maxSize": 2,
        "nodeRoleArn": "arn:aws:iam::123456789012:role/nodes", "subnetIds": ["subnet-0123456789abcdef0"]});
    assert_refused(
        check_cell(set(shared_cell(), "/spec/nodes", nodes)),
        "Shared cells run on the shared node pool",
    );
}

#[test]
fn node_group_ranges_are_ordered() {
    assert_refused(
        check_cell(set(dedicated_cell(), "/spec/nodes/minSize", json!(40))),
        "minSize must not exceed",
    );
    assert_refused(
        check_cell(set(dedicated_cell(), "/spec/nodes/desiredSize", json!(50))),
        "desiredSize must lie between",
    );
    assert_refused(
        check_cell(set(
            dedicated_cell(),
            "/spec/nodes/instanceTypes",
            json!(["huge"]),
        )),
        "EC2 instance types",
    );
}

#[test]
fn tier_region_and_account_are_immutable() {
    let old = shared_cell();
    assert_refused(
        check_cell_update(
            old.clone(),
            set(old.clone(), "/spec/tier", json!("Dedicated")),
        ),
        "spec.tier is immutable",
    );
    assert_refused(
        check_cell_update(
            old.clone(),
            set(old, "/spec/provider/aws/region", json!("eu-west-2")),
        ),
        "region is immutable",
    );
    let old = enterprise_cell();
    assert_refused(
        check_cell_update(
            old.clone(),
            set(
                old.clone(),
                "/spec/provider/aws/accountRoleArn",
                json!("arn:aws:iam::210987654321:role/other"),
            ),
        ),
        "accountRoleArn is immutable",
    );
    assert_refused(
        check_cell_update(
            old.clone(),
            remove(old.clone(), "/spec/provider/aws/clusterName"),
        ),
        "clusterName is immutable",
    );
    assert_accepted(
        check_cell_update(
            old.clone(),
            set(old, "/spec/provider/aws/externalId", json!("rotated-1")),
        ),
        &"external id rotation",
    );
}

#[test]
fn sql_store_rules() {
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/dataStores/sql/version",
            json!("latest"),
        )),
        "sql.version",
    );
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/dataStores/sql/instanceClass",
            json!("m5.large"),
        )),
        "RDS instance class",
    );
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/dataStores/sql/adoptInstanceIdentifier",
            json!("1-bad--id"),
        )),
        "adoptInstanceIdentifier",
    );
    let old = shared_cell();
    assert_refused(
        check_cell_update(
            old.clone(),
            set(old.clone(), "/spec/dataStores/sql/engine", json!("MySQL")),
        ),
        "engine is immutable",
    );
    assert_refused(
        check_cell_update(
            old.clone(),
            set(old, "/spec/dataStores/sql/aurora", json!(true)),
        ),
        "aurora is immutable",
    );
}

#[test]
fn cache_table_and_bucket_rules() {
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/dataStores/cache/nodeType",
            json!("r7g.large"),
        )),
        "ElastiCache node type",
    );
    let table = "/spec/dataStores/documentTables/0";
    assert_refused(
        check_cell(set(
            shared_cell(),
            &format!("{table}/billing"),
            json!("Provisioned"),
        )),
        "needs readCapacityUnits",
    );
    assert_refused(
        check_cell(set(
            shared_cell(),
            &format!("{table}/readCapacityUnits"),
            json!(5),
        )),
        "apply only to billing Provisioned",
    );
    assert_refused(
        check_cell(set(
            shared_cell(),
            &format!("{table}/sortKey"),
            json!({"name": "pk", "type": "N"}),
        )),
        "sortKey.name must differ",
    );
    assert_refused(
        check_cell(set(shared_cell(), &format!("{table}/name"), json!("Saves"))),
        "documentTables[].name",
    );
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/dataStores/buckets/0/name",
            json!("-x-"),
        )),
        "buckets[].name",
    );
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/dataStores/buckets/0/lifecycle/transitionToInfrequentAccessAfterDays",
            json!(400),
        )),
        "must be less than lifecycle.expireAfterDays",
    );
}

#[test]
fn maintenance_window_time_format() {
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/maintenanceWindows/0/startTime",
            json!("25:00"),
        )),
        "HH:MM",
    );
}

#[test]
fn workload_role_must_be_an_arn() {
    assert_refused(
        check_cell(set(
            shared_cell(),
            "/spec/workloads",
            json!({"roleArn": "admin"}),
        )),
        "workloads.roleArn",
    );
}

fn check_service(value: Value) -> Result<(), ValidationErrors> {
    object::<PlayerService>(value).validate_cel()
}

#[test]
fn player_service_rules() {
    let good: PlayerService = object(player_service());
    assert_accepted(good.validate_cel(), &good);
    assert_refused(
        check_service(set(player_service(), "/spec/replicas", json!(3))),
        "either spec.replicas or spec.autoscaling",
    );
    assert_refused(
        check_service(set(
            player_service(),
            "/spec/autoscaling/minReplicas",
            json!(20),
        )),
        "minReplicas must not exceed",
    );
    assert_refused(
        check_service(set(player_service(), "/spec/env/0/name", json!("1BAD"))),
        "C identifier",
    );
    assert_refused(
        check_service(set(
            player_service(),
            "/spec/auth/issuer",
            json!("http://auth"),
        )),
        "https:// URL",
    );
    assert_refused(
        check_service(set(player_service(), "/spec/image", json!("bad image"))),
        "must not contain spaces",
    );
    assert_refused(
        check_service(set(
            player_service(),
            "/spec/cellRef/name",
            json!("Not_A_Cell"),
        )),
        "cellRef.name",
    );
    assert_refused(
        check_service(set(
            player_service(),
            "/metadata/name",
            json!("x".repeat(41)),
        )),
        "at most 40 characters",
    );
    let old: PlayerService = object(player_service());
    let moved: PlayerService = object(set(player_service(), "/spec/cellRef/name", json!("other")));
    assert_refused(moved.validate_cel_update(&old), "cellRef is immutable");
}

fn check_pool(value: Value) -> Result<(), ValidationErrors> {
    object::<MatchmakingPool>(value).validate_cel()
}

#[test]
fn matchmaking_pool_rules() {
    let good: MatchmakingPool = object(matchmaking_pool());
    assert_accepted(good.validate_cel(), &good);
    let q = "/spec/queues/0";
    assert_refused(
        check_pool(set(matchmaking_pool(), &format!("{q}/teams"), json!(3))),
        "multiple of queues[].teams",
    );
    assert_refused(
        check_pool(set(
            matchmaking_pool(),
            &format!("{q}/skillWindow/initial"),
            json!(500),
        )),
        "skillWindow.initial must not exceed",
    );
    assert_refused(
        check_pool(set(
            matchmaking_pool(),
            &format!("{q}/name"),
            json!("Ranked"),
        )),
        "queues[].name",
    );
    assert_refused(
        check_pool(set(
            matchmaking_pool(),
            "/spec/autoscaling",
            json!({"minReplicas": 1, "maxReplicas": 3}),
        )),
        "either spec.replicas or spec.autoscaling",
    );
    let old: MatchmakingPool = object(matchmaking_pool());
    let moved: MatchmakingPool = object(set(
        matchmaking_pool(),
        "/spec/cellRef/name",
        json!("other"),
    ));
    assert_refused(moved.validate_cel_update(&old), "cellRef is immutable");
}

//! The lease table in a DynamoDB server (moto, started by scripts/test.sh at
//! `$AWS_ENDPOINT_URL_DYNAMODB`): created if missing, conditional writes refused when
//! the lease changed, the KCL's attribute names, and the protocol end to end.
#![cfg(feature = "dynamodb-integration-tests")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use tenantflow_cluster::dynamo::DynamoLeaseStore;
use tenantflow_cluster::shard_sync::{ShardSpec, sync_leases};
use tenantflow_cluster::{
    Change, Checkpoint, LeaseCoordinator, LeaseError, LeaseSettings, LeaseStore,
};

async fn fresh_table(test: &str) -> DynamoLeaseStore {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some(),
        "AWS_ENDPOINT_URL_DYNAMODB is set by scripts/test.sh, which starts moto"
    );
    let store = DynamoLeaseStore::connect(&format!("leases-{test}-{}", std::process::id())).await;
    store.prepare().await.unwrap();
    // A second prepare finds the table.
    store.prepare().await.unwrap();
    store
}

/// A lease's item as DynamoDB holds it, read with the SDK (not through the store).
async fn raw_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(table)
        .key("leaseKey", AttributeValue::S(key.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

fn shards(n: usize) -> Vec<ShardSpec> {
    (0..n)
        .map(|i| ShardSpec {
            id: format!("shardId-{i:012}"),
            parents: Vec::new(),
            hash_range: (i.to_string(), (i + 1).to_string()),
        })
        .collect()
}

#[tokio::test]
async fn writes_are_conditional_on_the_counter_and_owner() {
    let store = fresh_table("conditional").await;
    assert_eq!(
        sync_leases(&store, &shards(1), &Checkpoint::TrimHorizon)
            .await
            .unwrap(),
        1
    );
    let read = store.list().await.unwrap().remove(0);
    let taken = store
        .update(&read, &Change::Take { owner: "a".into() })
        .await
        .unwrap();
    assert_eq!(store.list().await.unwrap(), vec![taken.clone()]);
    // A second taker that read the same version loses.
    let lost = store
        .update(&read, &Change::Take { owner: "b".into() })
        .await;
    assert!(matches!(lost, Err(LeaseError::Conflict { .. })), "{lost:?}");
    // The same lease under a stale counter cannot be checkpointed.
    let checkpoint = Change::Checkpoint {
        checkpoint: Checkpoint::Sequence {
            sequence: "49660".into(),
            sub_sequence: 1,
        },
        state: Some("shards/shardId-000000000000/manifest-1.json".into()),
    };
    assert!(matches!(
        store.update(&read, &checkpoint).await,
        Err(LeaseError::Conflict { .. })
    ));
    let done = store.update(&taken, &checkpoint).await.unwrap();
    let released = store.update(&done, &Change::Release).await.unwrap();
    assert_eq!(store.list().await.unwrap(), vec![released.clone()]);
    assert_eq!(released.owner, None);
    assert_eq!(released.counter, 3);
}

#[tokio::test]
async fn the_table_holds_the_kcls_attributes() {
    let store = fresh_table("attributes").await;
    let mut specs = shards(2);
    specs.push(ShardSpec {
        id: "shardId-000000000002".into(),
        parents: vec!["shardId-000000000000".into(), "shardId-000000000001".into()],
        hash_range: ("0".into(), "2".into()),
    });
    sync_leases(&store, &specs, &Checkpoint::Latest)
        .await
        .unwrap();
    let mut worker = LeaseCoordinator::new(
        "worker-1",
        Arc::new(store.clone()),
        LeaseSettings::default(),
        7,
    );
    assert_eq!(worker.take(0).await.unwrap().len(), 2, "the child waits");

    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let item = raw_item(&client, store.table(), "shardId-000000000000").await;
    assert_eq!(item["leaseOwner"], AttributeValue::S("worker-1".into()));
    assert_eq!(item["leaseCounter"], AttributeValue::N("1".into()));
    assert_eq!(item["checkpoint"], AttributeValue::S("LATEST".into()));
    assert_eq!(
        item["checkpointSubSequenceNumber"],
        AttributeValue::N("0".into())
    );
    assert_eq!(
        item["ownerSwitchesSinceCheckpoint"],
        AttributeValue::N("0".into())
    );
    let child = raw_item(&client, store.table(), "shardId-000000000002").await;
    let mut parents = child["parentShardId"].as_ss().unwrap().clone();
    parents.sort();
    assert_eq!(parents, ["shardId-000000000000", "shardId-000000000001"]);
    assert_eq!(
        child["checkpoint"],
        AttributeValue::S("TRIM_HORIZON".into())
    );
    assert!(!child.contains_key("leaseOwner"));

    worker
        .finish("shardId-000000000000", None, 1)
        .await
        .unwrap();
    worker
        .finish("shardId-000000000001", None, 1)
        .await
        .unwrap();
    let taken = worker.take(2).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].key, "shardId-000000000002");
    assert!(worker.release_all().await.is_empty());
    // Released: the open lease has no owner; the finished ones keep theirs (as the
    // KCL leaves them) and are never taken again.
    for lease in store.list().await.unwrap() {
        assert_eq!(lease.owner.is_some(), lease.is_finished(), "{lease:?}");
    }
}

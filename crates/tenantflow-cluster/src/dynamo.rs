//! The lease table in DynamoDB, through the official SDK: created if missing (on-demand
//! billing, `leaseKey` as its hash key, like the KCL's), every write a conditional
//! `UpdateItem` on the lease's counter and owner.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use futures_util::future::{BoxFuture, FutureExt};

use crate::error::LeaseError;
use crate::lease::{Checkpoint, Lease, attr};
use crate::store::{Change, LeaseStore};

/// How long [`DynamoLeaseStore::prepare`] waits for a new table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// A lease table in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoLeaseStore {
    client: Client,
    table: String,
}

impl DynamoLeaseStore {
    /// The table `table`, with a client from the standard AWS chain (`AWS_ENDPOINT_URL`
    /// or `AWS_ENDPOINT_URL_DYNAMODB` for a local server).
    pub async fn connect(table: &str) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self {
            client: Client::new(&config),
            table: table.to_owned(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn error<E>(&self, operation: &'static str, error: SdkError<E>) -> LeaseError
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        let message = match error.as_service_error() {
            Some(service) => format!(
                "{}: {}",
                service.code().unwrap_or("error"),
                service.message().unwrap_or("no message")
            ),
            None => DisplayErrorContext(&error).to_string(),
        };
        LeaseError::Store {
            table: self.table.clone(),
            operation,
            message,
        }
    }

    async fn table_status(&self) -> Result<Option<TableStatus>, LeaseError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(out) => Ok(out.table().and_then(|t| t.table_status()).cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error("DescribeTable", e)),
        }
    }

    async fn create_table(&self) -> Result<(), LeaseError> {
        let attribute = AttributeDefinition::builder()
            .attribute_name(attr::LEASE_KEY)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| self.built("CreateTable", &e))?;
        let key = KeySchemaElement::builder()
            .attribute_name(attr::LEASE_KEY)
            .key_type(KeyType::Hash)
            .build()
            .map_err(|e| self.built("CreateTable", &e))?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attribute)
            .key_schema(key)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {
                tracing::info!(table = %self.table, "Created the lease table.");
                Ok(())
            }
            // Another worker created it first.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(self.error("CreateTable", e)),
        }
    }

    fn built(&self, operation: &'static str, e: &dyn std::fmt::Display) -> LeaseError {
        LeaseError::Store {
            table: self.table.clone(),
            operation,
            message: e.to_string(),
        }
    }

    fn malformed(&self, key: &str, reason: impl Into<String>) -> LeaseError {
        LeaseError::Malformed {
            table: self.table.clone(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// A lease from a table item.
    fn lease(&self, item: &HashMap<String, AttributeValue>) -> Result<Lease, LeaseError> {
        let key = item
            .get(attr::LEASE_KEY)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| self.malformed("?", "no leaseKey string"))?;
        let string = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let number = |name: &str| -> Result<u64, LeaseError> {
            match item.get(name) {
                None => Ok(0),
                Some(v) => v
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| self.malformed(key, format!("{name} is not a count"))),
            }
        };
        let checkpoint = Checkpoint::from_attributes(
            string(attr::CHECKPOINT)
                .as_deref()
                .unwrap_or("TRIM_HORIZON"),
            number(attr::CHECKPOINT_SUB_SEQUENCE)?,
        )
        .map_err(|reason| self.malformed(key, reason))?;
        let parents = match item.get(attr::PARENT_SHARD_IDS) {
            None => Vec::new(),
            Some(AttributeValue::Ss(set)) => {
                let mut set = set.clone();
                set.sort();
                set
            }
            Some(AttributeValue::S(one)) => vec![one.clone()],
            Some(_) => return Err(self.malformed(key, "parentShardId is not a string set")),
        };
        let hash_range = string(attr::STARTING_HASH_KEY).zip(string(attr::ENDING_HASH_KEY));
        Ok(Lease {
            key: key.clone(),
            owner: string(attr::LEASE_OWNER),
            counter: number(attr::LEASE_COUNTER)?,
            checkpoint,
            owner_switches: number(attr::OWNER_SWITCHES)?,
            parents,
            hash_range,
            state: string(attr::STATE),
        })
    }
}

fn item(lease: &Lease) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert(attr::LEASE_KEY.into(), AttributeValue::S(lease.key.clone()));
    if let Some(owner) = &lease.owner {
        item.insert(attr::LEASE_OWNER.into(), AttributeValue::S(owner.clone()));
    }
    item.insert(attr::LEASE_COUNTER.into(), number(lease.counter));
    item.insert(
        attr::CHECKPOINT.into(),
        AttributeValue::S(lease.checkpoint.as_attribute().to_owned()),
    );
    item.insert(
        attr::CHECKPOINT_SUB_SEQUENCE.into(),
        number(lease.checkpoint.sub_sequence()),
    );
    item.insert(attr::OWNER_SWITCHES.into(), number(lease.owner_switches));
    if !lease.parents.is_empty() {
        item.insert(
            attr::PARENT_SHARD_IDS.into(),
            AttributeValue::Ss(lease.parents.clone()),
        );
    }
    if let Some((start, end)) = &lease.hash_range {
        item.insert(
            attr::STARTING_HASH_KEY.into(),
            AttributeValue::S(start.clone()),
        );
        item.insert(attr::ENDING_HASH_KEY.into(), AttributeValue::S(end.clone()));
    }
    if let Some(state) = &lease.state {
        item.insert(attr::STATE.into(), AttributeValue::S(state.clone()));
    }
    item
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// The update and condition expressions of a change, with their names and values.
struct Expression {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

fn expression(read: &Lease, change: &Change, next: &Lease) -> Expression {
    let mut names = HashMap::from([
        ("#counter".to_owned(), attr::LEASE_COUNTER.to_owned()),
        ("#owner".to_owned(), attr::LEASE_OWNER.to_owned()),
    ]);
    let mut values = HashMap::from([
        (":read".to_owned(), number(read.counter)),
        (":next".to_owned(), number(next.counter)),
    ]);
    let condition = match &read.owner {
        Some(owner) => {
            values.insert(":was".into(), AttributeValue::S(owner.clone()));
            "#counter = :read AND #owner = :was".to_owned()
        }
        None => "#counter = :read AND attribute_not_exists(#owner)".to_owned(),
    };
    let update = match change {
        Change::Renew => "SET #counter = :next".to_owned(),
        Change::Take { owner } => {
            names.insert("#switches".into(), attr::OWNER_SWITCHES.into());
            values.insert(":owner".into(), AttributeValue::S(owner.clone()));
            values.insert(":switches".into(), number(next.owner_switches));
            "SET #counter = :next, #owner = :owner, #switches = :switches".to_owned()
        }
        Change::Checkpoint { checkpoint, state } => {
            names.insert("#switches".into(), attr::OWNER_SWITCHES.into());
            names.insert("#checkpoint".into(), attr::CHECKPOINT.into());
            names.insert("#sub".into(), attr::CHECKPOINT_SUB_SEQUENCE.into());
            names.insert("#state".into(), attr::STATE.into());
            values.insert(
                ":checkpoint".into(),
                AttributeValue::S(checkpoint.as_attribute().to_owned()),
            );
            values.insert(":sub".into(), number(checkpoint.sub_sequence()));
            values.insert(":zero".into(), number(0));
            let set =
                "SET #counter = :next, #checkpoint = :checkpoint, #sub = :sub, #switches = :zero";
            match state {
                Some(state) => {
                    values.insert(":state".into(), AttributeValue::S(state.clone()));
                    format!("{set}, #state = :state")
                }
                None => format!("{set} REMOVE #state"),
            }
        }
        Change::Release => "SET #counter = :next REMOVE #owner".to_owned(),
    };
    Expression {
        update,
        condition,
        names,
        values,
    }
}

impl LeaseStore for DynamoLeaseStore {
    fn prepare(&self) -> BoxFuture<'_, Result<(), LeaseError>> {
        async move {
            if self.table_status().await?.is_none() {
                self.create_table().await?;
            }
            let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
            loop {
                match self.table_status().await? {
                    Some(TableStatus::Active) => return Ok(()),
                    status if tokio::time::Instant::now() >= deadline => {
                        return Err(LeaseError::Store {
                            table: self.table.clone(),
                            operation: "DescribeTable",
                            message: format!(
                                "the table is not active after {}s (status {status:?})",
                                TABLE_ACTIVE_TIMEOUT.as_secs()
                            ),
                        });
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Lease>, LeaseError>> {
        async move {
            let mut leases = Vec::new();
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let out = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| self.error("Scan", e))?;
                for item in out.items() {
                    leases.push(self.lease(item)?);
                }
                match out.last_evaluated_key() {
                    Some(key) if !key.is_empty() => start = Some(key.clone()),
                    _ => break,
                }
            }
            leases.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(leases)
        }
        .boxed()
    }

    fn create_if_absent<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<bool, LeaseError>> {
        async move {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item(lease)))
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", attr::LEASE_KEY)
                .send()
                .await;
            match put {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(self.error("PutItem", e)),
            }
        }
        .boxed()
    }

    fn update<'a>(
        &'a self,
        read: &'a Lease,
        change: &'a Change,
    ) -> BoxFuture<'a, Result<Lease, LeaseError>> {
        async move {
            let next = change.apply(read);
            let expression = expression(read, change, &next);
            let updated = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(attr::LEASE_KEY, AttributeValue::S(read.key.clone()))
                .update_expression(expression.update)
                .condition_expression(expression.condition)
                .set_expression_attribute_names(Some(expression.names))
                .set_expression_attribute_values(Some(expression.values))
                .send()
                .await;
            match updated {
                Ok(_) => Ok(next),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Err(LeaseError::Conflict {
                        key: read.key.clone(),
                        change: change.name(),
                    })
                }
                Err(e) => Err(self.error("UpdateItem", e)),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_round_trips_through_an_item() {
        let store = DynamoLeaseStore {
            client: Client::from_conf(
                aws_sdk_dynamodb::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .build(),
            ),
            table: "t".into(),
        };
        let lease = Lease {
            key: "shardId-000000000002".into(),
            owner: Some("worker-a".into()),
            counter: 17,
            checkpoint: Checkpoint::Sequence {
                sequence: "4959".into(),
                sub_sequence: 2,
            },
            owner_switches: 1,
            parents: vec!["shardId-000000000000".into(), "shardId-000000000001".into()],
            hash_range: Some(("0".into(), "170141183460469231731687303715884105727".into())),
            state: Some("shards/shardId-000000000002/manifest-3.json".into()),
        };
        assert_eq!(store.lease(&item(&lease)).unwrap(), lease);
        let bare = Lease::new("shardId-000000000000", Checkpoint::Latest);
        assert_eq!(store.lease(&item(&bare)).unwrap(), bare);
    }
}

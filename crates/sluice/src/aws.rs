//! `sluice aws provision`: the AWS data path's queues and tables, created over the standard AWS
//! configuration (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials), so `sluice serve --backend aws`
//! runs on moto, on any SQS- and DynamoDB-compatible service a team runs itself, or on an account
//! without SAM. The settings are the template's: the dead-letter queue with its redrive policy,
//! the queue's visibility and retention, the tables' keys, TTL and streams (see
//! `sluice_aws::provision`). Idempotent: what exists is left as it is. It prints the `SLUICE_*`
//! variables to export, one `export` line each, for `eval "$(sluice aws provision)"`.

use crate::exit::{Classify, CliError};
use clap::Subcommand;
use sluice_aws::provision::{self, QueueSettings, ResourceNames};
use sluice_host::env::vars;
use std::time::Duration;

/// `sluice aws …`.
#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Create the queue, its dead-letter queue and the four tables (leaving any that exist), and
    /// print `export SLUICE_…=…` lines for `sluice serve --backend aws`.
    Provision {
        /// Names are `<prefix>-events` (queue and table), `<prefix>-events-dlq`,
        /// `<prefix>-idempotency`, `<prefix>-keys` and `<prefix>-sources`.
        #[arg(long, default_value = "sluice")]
        prefix: String,
        /// Receives before a message moves to the dead-letter queue (the template's
        /// `MaxReceiveCount`).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        max_receive_count: u32,
        /// The queue's visibility timeout (the template's: six times the process timeout).
        #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
        visibility_timeout: Duration,
        /// How long the queue keeps a message (the template's `QueueRetentionSeconds`).
        #[arg(long, default_value = "4days", value_parser = humantime::parse_duration)]
        retention: Duration,
    },
}

/// A name SQS and DynamoDB both accept: letters, digits, `-` and `_`.
fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 40
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Runs `sluice aws …`.
pub async fn run(cmd: AwsCommand) -> Result<(), CliError> {
    let AwsCommand::Provision {
        prefix,
        max_receive_count,
        visibility_timeout,
        retention,
    } = cmd;
    if !valid_prefix(&prefix) {
        return Err(anyhow::anyhow!(
            "--prefix is 1 to 40 letters, digits, '-' or '_' (it starts every queue and table name)"
        ))
        .refused();
    }
    if !(60..=1_209_600).contains(&retention.as_secs()) {
        return Err(anyhow::anyhow!("--retention is 60 s to 14 days (SQS's range)")).refused();
    }
    if visibility_timeout.as_secs() > 43_200 {
        return Err(anyhow::anyhow!(
            "--visibility-timeout is at most 12 hours (SQS's limit)"
        ))
        .refused();
    }
    let clients = crate::serve::aws_clients().await.refused()?;
    let settings = QueueSettings {
        max_receive_count,
        visibility_timeout,
        retention,
    };
    let names = ResourceNames::with_prefix(&prefix);
    let r = provision::provision(&clients.sqs(), &clients.dynamodb(), &names, settings)
        .await
        .unavailable()?;
    for (name, value) in [
        (vars::QUEUE_URL, r.queue_url.as_str()),
        (vars::DLQ_URL, r.dlq_url.as_str()),
        (vars::TABLE, r.table.as_str()),
        (vars::IDEMPOTENCY_TABLE, r.idempotency_table.as_str()),
        (vars::KEYS_TABLE, r.keys_table.as_str()),
        (vars::SOURCES_TABLE, r.sources_table.as_str()),
    ] {
        println!("export {name}='{}'", value.replace('\'', r"'\''"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_names_both_services_take() {
        for ok in ["sluice", "my-team_2"] {
            assert!(valid_prefix(ok), "{ok}");
        }
        for bad in ["", "a b", "x/y", "é", &"p".repeat(41)] {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
    }
}

//! The CloudWatch alarms that guard a ramp: every name must exist before anything changes, and
//! their states decide whether the ramp goes on, holds or rolls back.

use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use crate::error::{AwsError, CtlError};

/// What to do while an alarm has `INSUFFICIENT_DATA` (a new metric, or no traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InsufficientData {
    /// Do not take the next step until the alarm has data (the default: never ramp blind);
    /// keep checking, and roll back if it goes to `ALARM`.
    #[default]
    Hold,
    /// Treat it as `OK`.
    Proceed,
    /// Treat it as `ALARM`: roll back.
    Rollback,
}

/// The guard's verdict on the alarms' current states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every alarm is OK (or has no data, under [`InsufficientData::Proceed`]).
    Clear,
    /// Some alarm has no data and the policy is to hold: `name`.
    Hold(String),
    /// Some alarm fires: `name: reason`.
    Alarm(String),
}

/// The named alarms.
#[derive(Debug, Clone)]
pub struct Guard {
    client: aws_sdk_cloudwatch::Client,
    names: Vec<String>,
    policy: InsufficientData,
}

impl Guard {
    /// A guard on `names` (metric or composite alarms); checks they all exist.
    pub async fn new(
        client: aws_sdk_cloudwatch::Client,
        names: Vec<String>,
        policy: InsufficientData,
    ) -> Result<Self, CtlError> {
        let guard = Self {
            client,
            names,
            policy,
        };
        let states = guard.states().await?;
        let missing: Vec<&String> = guard
            .names
            .iter()
            .filter(|name| !states.iter().any(|(found, _, _)| found == *name))
            .collect();
        if !missing.is_empty() {
            return Err(CtlError::usage(format!(
                "no CloudWatch alarm named {} in this account and region: nothing was changed",
                missing
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(guard)
    }

    /// The alarms' names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Each alarm found: name, state, reason.
    async fn states(&self) -> Result<Vec<(String, StateValue, String)>, CtlError> {
        let mut found = Vec::new();
        if self.names.is_empty() {
            return Ok(found);
        }
        let resource = format!("alarm {}", self.names.join(", "));
        let mut pages = self
            .client
            .describe_alarms()
            .set_alarm_names(Some(self.names.clone()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| AwsError::from_sdk("cloudwatch:DescribeAlarms", &resource, e))?;
            let metric = page
                .metric_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
            let composite = page
                .composite_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
            for (name, state, reason) in metric.chain(composite) {
                found.push((
                    name.unwrap_or_default().to_owned(),
                    state.cloned().unwrap_or(StateValue::InsufficientData),
                    reason.unwrap_or_default().to_owned(),
                ));
            }
        }
        Ok(found)
    }

    /// The verdict now. An alarm that has disappeared since the start counts as firing.
    pub async fn verdict(&self) -> Result<Verdict, CtlError> {
        let states = self.states().await?;
        let mut hold = None;
        for name in &self.names {
            let Some((_, state, reason)) = states.iter().find(|(found, _, _)| found == name) else {
                return Ok(Verdict::Alarm(format!(
                    "{name}: the alarm no longer exists"
                )));
            };
            match (state, self.policy) {
                (StateValue::Ok, _) | (StateValue::InsufficientData, InsufficientData::Proceed) => {
                }
                (StateValue::InsufficientData, InsufficientData::Hold) => {
                    hold.get_or_insert_with(|| name.clone());
                }
                (StateValue::InsufficientData, InsufficientData::Rollback) => {
                    return Ok(Verdict::Alarm(format!(
                        "{name}: INSUFFICIENT_DATA (--insufficient-data rollback)"
                    )));
                }
                _ => return Ok(Verdict::Alarm(format!("{name}: ALARM: {reason}"))),
            }
        }
        Ok(hold.map_or(Verdict::Clear, Verdict::Hold))
    }
}

//! Flag evaluation: who gets a flag, and why.
//!
//! A JSON flag is on for a [`Context`] only when every rule holds, checked in this order (the
//! first that fails is the [`Reason`] it is off):
//! 1. `enabled` is `true`;
//! 2. the user is not in `excluded_user_ids`;
//! 3. the region is in `allowed_regions`, when present;
//! 4. the user is in `allowed_user_ids`, when present;
//! 5. each attribute named in `allowed_attributes` has one of its listed values, when present;
//! 6. the user's [`bucket`] is within `rollout_percentage`, when present.

use std::borrow::Cow;
use std::fmt;

use md5::{Digest, Md5};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::flagd::{self, Data, Val};
use crate::model::Rules;

/// Who a flag is evaluated for: a user (the targeting key), a region, string attributes, and
/// typed fields of any JSON type (numbers, booleans, lists, nested objects) for flagd targeting.
///
/// It borrows everything it holds: building one never allocates.
///
/// A flagd rule's `{"var": "k"}` reads, in order: the user id for `targetingKey`; the field `k`;
/// the string attribute `k`; the region for `region`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context<'a> {
    user_id: Option<&'a str>,
    region: Option<&'a str>,
    attributes: &'a [(&'a str, &'a str)],
    fields: Option<&'a Map<String, Value>>,
}

impl<'a> Context<'a> {
    /// An empty context: no user, no region (the snapshot's default region applies), no
    /// attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context for one user.
    pub fn user(user_id: &'a str) -> Self {
        Self::new().with_user(user_id)
    }

    /// Sets the user id (bucketing, allow- and exclude-lists use it). An empty id is no user:
    /// anonymous traffic must not become one shared bucket.
    pub fn with_user(mut self, user_id: &'a str) -> Self {
        self.user_id = (!user_id.is_empty()).then_some(user_id);
        self
    }

    /// Sets the region; without one, the snapshot's default region (the function's own
    /// `AWS_REGION` for [`crate::get`]) is used.
    pub fn with_region(mut self, region: &'a str) -> Self {
        self.region = Some(region);
        self
    }

    /// Sets the attributes (name, value) matched by `allowed_attributes` rules.
    pub fn with_attributes(mut self, attributes: &'a [(&'a str, &'a str)]) -> Self {
        self.attributes = attributes;
        self
    }

    /// Sets typed fields (any JSON value by name) that flagd targeting reads, e.g. from
    /// `serde_json::json!({"tier": "gold", "app": {"version": "2.3.1"}})`. A string
    /// `targetingKey` among them is the user id, unless one is set.
    pub fn with_fields(mut self, fields: &'a Map<String, Value>) -> Self {
        self.fields = Some(fields);
        if self.user_id.is_none()
            && let Some(Value::String(key)) = fields.get("targetingKey")
        {
            self = self.with_user(key);
        }
        self
    }

    /// The typed fields, if set.
    pub fn fields(&self) -> Option<&'a Map<String, Value>> {
        self.fields
    }

    /// The user id, if any.
    pub fn user_id(&self) -> Option<&'a str> {
        self.user_id
    }

    /// The region set, if any.
    pub fn region(&self) -> Option<&'a str> {
        self.region
    }

    /// The value of an attribute, if set (the last one listed wins).
    pub fn attribute(&self, name: &str) -> Option<&'a str> {
        self.attributes
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

impl Data for Context<'_> {
    // Inlined into the evaluator: a value returned through memory costs a stall on reading it
    // back (measured: a tenth of a rule's time).
    #[inline(always)]
    fn attribute(&self, key: &str) -> Option<Val<'_>> {
        if let Some(value) = self.fields.and_then(|fields| fields.get(key)) {
            return Some(Val::of(value));
        }
        if let Some(value) = self.attribute(key) {
            return Some(Val::Str(Cow::Borrowed(value)));
        }
        match (key, self.region) {
            ("region", Some(region)) => Some(Val::Str(Cow::Borrowed(region))),
            _ => None,
        }
    }

    /// The user id; a field `targetingKey` counts only when it is not a string (a string one is
    /// the user id, or empty: none).
    #[inline]
    fn targeting_key(&self) -> Option<Val<'_>> {
        if let Some(user) = self.user_id {
            return Some(Val::Str(Cow::Borrowed(user)));
        }
        match self.fields.and_then(|f| f.get("targetingKey")) {
            Some(value) if !value.is_string() => Some(Val::of(value)),
            _ => None,
        }
    }

    fn object(&self) -> Map<String, Value> {
        let mut object = Map::new();
        if let Some(region) = self.region {
            object.insert("region".into(), Value::from(region));
        }
        for (name, value) in self.attributes {
            object.insert((*name).to_owned(), Value::from(*value));
        }
        if let Some(fields) = self.fields {
            object.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(user) = self.user_id {
            object.insert("targetingKey".into(), Value::from(user));
        }
        object
    }
}

/// Why an evaluation came out as it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// A boolean flag: its value.
    Static,
    /// A JSON flag whose `enabled` is false or absent.
    Disabled,
    /// The user is in `excluded_user_ids`.
    Excluded,
    /// The region is not in `allowed_regions` (or the context has no region).
    Region,
    /// The user's presence in `allowed_user_ids` decided (or the context has no user).
    AllowList,
    /// An `allowed_attributes` rule decided.
    Attribute,
    /// The percentage rollout decided; `bucket` is `None` when the context has no user.
    Rollout {
        /// The user's bucket, 1–100.
        bucket: Option<u8>,
        /// The flag's `rollout_percentage`.
        percentage: f64,
    },
    /// A JSON flag that is enabled with no rule restricting it.
    Enabled,
    /// The flag does not exist: the default applied.
    Default,
    /// The flag is a config value (a string or list), not a toggle: the default applied.
    Config,
    /// The flag's value is invalid: the default applied.
    Error,
    /// A flagd flag: OpenFeature's reason and error code as flagd gives them.
    Flagd {
        /// The reason.
        reason: flagd::Reason,
        /// The error, with [`flagd::Reason::Error`].
        error: Option<flagd::ErrorCode>,
        /// Whether the flag decided (a variant applied) rather than the caller's default.
        decided: bool,
        /// Whether every context, at every time, gets this answer (no targeting, or disabled).
        constant: bool,
    },
}

impl Reason {
    /// Whether the flag's default applied (missing, not a toggle, or invalid) rather than the
    /// flag deciding.
    pub fn is_default(&self) -> bool {
        match self {
            Self::Flagd { decided, .. } => !decided,
            _ => matches!(self, Self::Default | Self::Config | Self::Error),
        }
    }

    /// Whether every context would get the same answer: a boolean flag, a disabled JSON flag
    /// (`enabled: false` decides before any rule looks at the context), or a default.
    pub fn ignores_context(&self) -> bool {
        match self {
            Self::Flagd { constant, .. } => *constant,
            _ => matches!(self, Self::Static | Self::Disabled) || self.is_default(),
        }
    }

    /// Whether the answer holds for as long as the snapshot does: every seed flag's does, a
    /// flagd flag's only without targeting (a rule may read the context or `$flagd.timestamp`,
    /// so its answer is worked out at every read, never remembered).
    pub fn is_lasting(&self) -> bool {
        match self {
            Self::Flagd { constant, .. } => *constant,
            _ => true,
        }
    }

    /// The OpenFeature resolution reason: `STATIC` (a boolean flag, an enabled flag with no rule
    /// restricting it, a config value), `DISABLED`, `TARGETING_MATCH` (allow-list, exclusion,
    /// region or attribute decided), `SPLIT` (the rollout decided), `DEFAULT` (missing) or
    /// `ERROR` (invalid). One mapping for the Rust provider and OFREP.
    pub fn openfeature(&self) -> &'static str {
        match self {
            Self::Static | Self::Enabled | Self::Config => "STATIC",
            Self::Disabled => "DISABLED",
            Self::Excluded | Self::Region | Self::AllowList | Self::Attribute => "TARGETING_MATCH",
            Self::Rollout { .. } => "SPLIT",
            Self::Default => "DEFAULT",
            Self::Error => "ERROR",
            Self::Flagd { reason, .. } => reason.as_str(),
        }
    }

    /// A stable machine-readable code: `static`, `disabled`, `excluded`, `region`, `allow_list`,
    /// `attribute`, `rollout`, `enabled`, `default`, `config`, `error` or `flagd`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Disabled => "disabled",
            Self::Excluded => "excluded",
            Self::Region => "region",
            Self::AllowList => "allow_list",
            Self::Attribute => "attribute",
            Self::Rollout { .. } => "rollout",
            Self::Enabled => "enabled",
            Self::Default => "default",
            Self::Config => "config",
            Self::Error => "error",
            Self::Flagd { .. } => "flagd",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static => f.write_str("boolean flag: its value"),
            Self::Disabled => f.write_str("`enabled` is false or absent"),
            Self::Excluded => f.write_str("user is in `excluded_user_ids`"),
            Self::Region => f.write_str("region checked against `allowed_regions`"),
            Self::AllowList => f.write_str("user checked against `allowed_user_ids`"),
            Self::Attribute => f.write_str("attributes checked against `allowed_attributes`"),
            Self::Rollout {
                bucket: Some(bucket),
                percentage,
            } => write!(f, "rollout: bucket {bucket} against {percentage}%"),
            Self::Rollout {
                bucket: None,
                percentage,
            } => write!(f, "rollout at {percentage}%: no user id to bucket"),
            Self::Enabled => f.write_str("enabled, no rule restricts it"),
            Self::Default => f.write_str("flag not found: default used"),
            Self::Config => f.write_str("config value, not a toggle: default used"),
            Self::Error => f.write_str("invalid value: default used"),
            Self::Flagd {
                reason,
                error: Some(error),
                ..
            } => write!(f, "flagd flag: {}, {error}: default used", reason.as_str()),
            Self::Flagd { reason, .. } => write!(f, "flagd flag: {}", reason.as_str()),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// The outcome of evaluating a flag: on or off, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Whether the flag is on.
    pub enabled: bool,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Evaluation {
    /// The outcome in words, e.g. `bucket 29 is outside the 25% rollout`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = self.enabled;
        match self.reason {
            Reason::Static => write!(f, "boolean flag set to {on}"),
            Reason::AllowList if on => f.write_str("user is in `allowed_user_ids`"),
            Reason::AllowList => f.write_str("user is not in `allowed_user_ids`"),
            Reason::Region => f.write_str("region is not in `allowed_regions`"),
            Reason::Attribute if on => f.write_str("attributes match `allowed_attributes`"),
            Reason::Attribute => f.write_str("attributes do not match `allowed_attributes`"),
            Reason::Rollout {
                bucket: Some(bucket),
                percentage,
            } => {
                let side = if on { "within" } else { "outside" };
                write!(f, "bucket {bucket} is {side} the {percentage}% rollout")
            }
            Reason::Default | Reason::Config | Reason::Error => {
                write!(f, "{}, read as {on}", self.reason)
            }
            reason => reason.fmt(f),
        }
    }
}

impl Evaluation {
    const fn new(enabled: bool, reason: Reason) -> Self {
        Self { enabled, reason }
    }
}

/// The rollout bucket (1–100) of a user, exactly as the seed article computes it, so services in
/// Python, Node and Rust put every user on the same side of a rollout:
/// `(int(md5(user_id).hexdigest(), 16) % 100) + 1`.
///
/// With a `salt`, the hashed text is `"{salt}:{user_id}"`, which buckets the flag independently of
/// every unsalted (or differently salted) flag.
pub fn bucket(user_id: &str, salt: Option<&str>) -> u8 {
    let mut hasher = Md5::new();
    if let Some(salt) = salt {
        hasher.update(salt.as_bytes());
        hasher.update(b":");
    }
    hasher.update(user_id.as_bytes());
    let digest: [u8; 16] = hasher.finalize().into();
    // `% 100` is below 100, so the narrowing cannot truncate.
    (u128::from_be_bytes(digest) % 100) as u8 + 1
}

/// Evaluates a JSON flag's rules for a context; a context without a region is evaluated in
/// `default_region`. A pure function: it reads nothing but its arguments.
pub fn evaluate(rules: &Rules, context: &Context<'_>, default_region: Option<&str>) -> Evaluation {
    if !rules.enabled {
        return Evaluation::new(false, Reason::Disabled);
    }
    let user = context.user_id();
    if let (Some(excluded), Some(user)) = (&rules.excluded_user_ids, user)
        && excluded.contains(user)
    {
        return Evaluation::new(false, Reason::Excluded);
    }
    if let Some(regions) = &rules.allowed_regions {
        let allowed = context
            .region()
            .or(default_region)
            .is_some_and(|region| regions.iter().any(|r| r == region));
        if !allowed {
            return Evaluation::new(false, Reason::Region);
        }
    }
    let mut deciding = Reason::Enabled;
    if let Some(allowed) = &rules.allowed_user_ids {
        if !user.is_some_and(|user| allowed.contains(user)) {
            return Evaluation::new(false, Reason::AllowList);
        }
        deciding = Reason::AllowList;
    }
    if let Some(attributes) = &rules.allowed_attributes {
        let all_match = attributes.iter().all(|(name, values)| {
            context
                .attribute(name)
                .is_some_and(|value| values.iter().any(|v| v == value))
        });
        if !all_match {
            return Evaluation::new(false, Reason::Attribute);
        }
        if deciding == Reason::Enabled {
            deciding = Reason::Attribute;
        }
    }
    if let Some(percentage) = rules.rollout_percentage {
        let bucket = user.map(|user| bucket(user, rules.salt.as_deref()));
        let enabled = bucket.is_some_and(|b| f64::from(b) <= percentage);
        return Evaluation::new(enabled, Reason::Rollout { bucket, percentage });
    }
    Evaluation::new(true, deciding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FlagValue, ParameterKind};

    fn rules(raw: &str) -> Rules {
        match FlagValue::parse(ParameterKind::String, raw) {
            Ok(FlagValue::Json(flag)) => flag.rules().clone(),
            other => panic!("not a JSON flag: {other:?}"),
        }
    }

    fn eval(raw: &str, context: &Context<'_>) -> Evaluation {
        evaluate(&rules(raw), context, None)
    }

    #[test]
    fn seed_examples_bucket_as_in_python() {
        assert_eq!(bucket("user-123", None), 29);
        assert_eq!(bucket("user-456", None), 68);
        assert_eq!(bucket("alice", None), 1);
        assert_eq!(bucket("bob", None), 33);
    }

    #[test]
    fn salt_changes_the_bucket_deterministically() {
        assert_eq!(bucket("alice", Some("s1")), bucket("alice", Some("s1")));
        let differs = (0..100)
            .filter(|i| {
                let id = format!("user-{i}");
                bucket(&id, None) != bucket(&id, Some("new-flow"))
            })
            .count();
        assert!(
            differs > 80,
            "salted buckets should be independent, only {differs} differ"
        );
    }

    #[test]
    fn disabled_wins_over_everything() {
        let e = eval(
            r#"{"enabled": false, "allowed_user_ids": ["alice"], "rollout_percentage": 100}"#,
            &Context::user("alice"),
        );
        assert_eq!(e, Evaluation::new(false, Reason::Disabled));
        assert_eq!(
            eval("{}", &Context::user("alice")),
            Evaluation::new(false, Reason::Disabled)
        );
    }

    #[test]
    fn enabled_alone_is_on_for_everyone() {
        assert_eq!(
            eval(r#"{"enabled": true}"#, &Context::new()),
            Evaluation::new(true, Reason::Enabled)
        );
    }

    #[test]
    fn excluded_users_are_off_even_at_full_rollout_and_allow_listed() {
        let flag = r#"{"enabled": true, "rollout_percentage": 100,
                       "allowed_user_ids": ["user-123"], "excluded_user_ids": ["user-123"]}"#;
        assert_eq!(
            eval(flag, &Context::user("user-123")),
            Evaluation::new(false, Reason::Excluded)
        );
        // No user: nobody to exclude, but the allow-list then fails.
        assert_eq!(
            eval(
                r#"{"enabled": true, "excluded_user_ids": ["x"]}"#,
                &Context::new()
            ),
            Evaluation::new(true, Reason::Enabled)
        );
    }

    #[test]
    fn regions_restrict_when_listed() {
        let flag = r#"{"enabled": true, "allowed_regions": ["us-east-1", "us-west-2"]}"#;
        assert_eq!(
            eval(flag, &Context::new().with_region("us-west-2")),
            Evaluation::new(true, Reason::Enabled)
        );
        assert_eq!(
            eval(flag, &Context::new().with_region("eu-west-1")),
            Evaluation::new(false, Reason::Region)
        );
        // Region names compare exactly.
        assert_eq!(
            eval(flag, &Context::new().with_region("US-EAST-1")),
            Evaluation::new(false, Reason::Region)
        );
    }

    #[test]
    fn an_empty_user_id_is_no_user() {
        assert_eq!(Context::user("").user_id(), None);
        let rollout = r#"{"enabled": true, "rollout_percentage": 99}"#;
        assert_eq!(
            eval(rollout, &Context::user("")),
            Evaluation::new(
                false,
                Reason::Rollout {
                    bucket: None,
                    percentage: 99.0
                }
            )
        );
        let listed = r#"{"enabled": true, "allowed_user_ids": [""]}"#;
        assert_eq!(
            eval(listed, &Context::user("")),
            Evaluation::new(false, Reason::AllowList)
        );
        let excluded = r#"{"enabled": true, "excluded_user_ids": [""]}"#;
        assert_eq!(
            eval(excluded, &Context::user("")),
            Evaluation::new(true, Reason::Enabled)
        );
    }

    #[test]
    fn a_context_without_a_region_uses_the_default_region_given() {
        let flag = rules(r#"{"enabled": true, "allowed_regions": ["us-west-2"]}"#);
        let nowhere = Context::new();
        assert_eq!(
            evaluate(&flag, &nowhere, None),
            Evaluation::new(false, Reason::Region)
        );
        assert_eq!(
            evaluate(&flag, &nowhere, Some("us-west-2")),
            Evaluation::new(true, Reason::Enabled)
        );
        // A region in the context wins over the default.
        assert_eq!(
            evaluate(&flag, &nowhere.with_region("eu-west-1"), Some("us-west-2")),
            Evaluation::new(false, Reason::Region)
        );
    }

    #[test]
    fn allow_list_restricts_when_listed() {
        let flag = r#"{"enabled": true, "allowed_user_ids": ["alice", "bob"]}"#;
        assert_eq!(
            eval(flag, &Context::user("bob")),
            Evaluation::new(true, Reason::AllowList)
        );
        assert_eq!(
            eval(flag, &Context::user("carol")),
            Evaluation::new(false, Reason::AllowList)
        );
        assert_eq!(
            eval(flag, &Context::new()),
            Evaluation::new(false, Reason::AllowList)
        );
        // An empty allow-list lets nobody in.
        assert_eq!(
            eval(
                r#"{"enabled": true, "allowed_user_ids": []}"#,
                &Context::user("bob")
            ),
            Evaluation::new(false, Reason::AllowList)
        );
    }

    #[test]
    fn attributes_must_all_match() {
        let flag = r#"{"enabled": true, "allowed_attributes": {"plan": ["pro", "team"], "beta": ["yes"]}}"#;
        let both = Context::user("u").with_attributes(&[("plan", "team"), ("beta", "yes")]);
        assert_eq!(eval(flag, &both), Evaluation::new(true, Reason::Attribute));
        let one = Context::user("u").with_attributes(&[("plan", "pro")]);
        assert_eq!(eval(flag, &one), Evaluation::new(false, Reason::Attribute));
        let wrong = Context::user("u").with_attributes(&[("plan", "free"), ("beta", "yes")]);
        assert_eq!(
            eval(flag, &wrong),
            Evaluation::new(false, Reason::Attribute)
        );
    }

    #[test]
    fn rollout_splits_on_the_seed_bucket() {
        // user-123 is bucket 29, user-456 is bucket 68.
        let flag = r#"{"enabled": true, "rollout_percentage": 29}"#;
        let rollout = |bucket| Reason::Rollout {
            bucket: Some(bucket),
            percentage: 29.0,
        };
        assert_eq!(
            eval(flag, &Context::user("user-123")),
            Evaluation::new(true, rollout(29))
        );
        assert_eq!(
            eval(flag, &Context::user("user-456")),
            Evaluation::new(false, rollout(68))
        );
        // Fractions: bucket 29 is not within 28.9%.
        assert!(
            !eval(
                r#"{"enabled": true, "rollout_percentage": 28.9}"#,
                &Context::user("user-123")
            )
            .enabled
        );
    }

    #[test]
    fn rollout_extremes() {
        let zero = r#"{"enabled": true, "rollout_percentage": 0}"#;
        let full = r#"{"enabled": true, "rollout_percentage": 100}"#;
        for i in 0..500 {
            let id = format!("u{i}");
            assert!(!eval(zero, &Context::user(&id)).enabled);
            assert!(eval(full, &Context::user(&id)).enabled);
        }
    }

    #[test]
    fn rollout_without_a_user_is_off() {
        assert_eq!(
            eval(
                r#"{"enabled": true, "rollout_percentage": 100}"#,
                &Context::new()
            ),
            Evaluation::new(
                false,
                Reason::Rollout {
                    bucket: None,
                    percentage: 100.0
                }
            )
        );
    }

    #[test]
    fn rollout_share_is_close_to_the_percentage() {
        let flag = rules(r#"{"enabled": true, "rollout_percentage": 25}"#);
        let on = (0..10_000)
            .filter(|i| evaluate(&flag, &Context::user(&format!("user-{i}")), None).enabled)
            .count();
        assert!((2_300..=2_700).contains(&on), "{on} of 10000 at 25%");
    }

    #[test]
    fn the_seed_new_analytics_flag_combines_all_rules() {
        let flag = r#"{"enabled": true, "rollout_percentage": 25,
                       "allowed_regions": ["us-east-1", "us-west-2"],
                       "excluded_user_ids": ["user-123", "user-456"]}"#;
        let in_region = |user| Context::user(user).with_region("us-east-1");
        // Excluded beats a bucket (29) that would be out anyway, and region.
        assert_eq!(eval(flag, &in_region("user-123")).reason, Reason::Excluded);
        assert_eq!(
            eval(flag, &Context::user("alice").with_region("eu-west-1")).reason,
            Reason::Region
        );
        // alice is bucket 1: in; bob is bucket 33: out.
        assert!(eval(flag, &in_region("alice")).enabled);
        assert!(!eval(flag, &in_region("bob")).enabled);
    }

    #[test]
    fn allow_list_and_rollout_both_apply() {
        let flag =
            r#"{"enabled": true, "allowed_user_ids": ["alice", "bob"], "rollout_percentage": 10}"#;
        assert!(eval(flag, &Context::user("alice")).enabled); // bucket 1
        assert!(!eval(flag, &Context::user("bob")).enabled); // bucket 33
        assert_eq!(
            eval(flag, &Context::user("carol")).reason,
            Reason::AllowList
        );
    }

    #[test]
    fn reasons_have_stable_codes_and_readable_text() {
        let r = Reason::Rollout {
            bucket: Some(29),
            percentage: 50.0,
        };
        assert_eq!(r.code(), "rollout");
        assert_eq!(r.to_string(), "rollout: bucket 29 against 50%");
        assert_eq!(
            serde_json::to_string(&Reason::AllowList).expect("serialize"),
            "\"allow_list\""
        );
    }

    #[test]
    fn evaluations_say_which_side_in_words() {
        let say = |enabled, reason| Evaluation::new(enabled, reason).to_string();
        let rollout = Reason::Rollout {
            bucket: Some(29),
            percentage: 25.0,
        };
        assert_eq!(say(false, rollout), "bucket 29 is outside the 25% rollout");
        assert_eq!(say(true, rollout), "bucket 29 is within the 25% rollout");
        assert_eq!(
            say(true, Reason::AllowList),
            "user is in `allowed_user_ids`"
        );
        assert_eq!(
            say(false, Reason::AllowList),
            "user is not in `allowed_user_ids`"
        );
        assert_eq!(say(false, Reason::Static), "boolean flag set to false");
        assert_eq!(
            say(true, Reason::Default),
            "flag not found: default used, read as true"
        );
        assert_eq!(
            say(false, Reason::Excluded),
            "user is in `excluded_user_ids`"
        );
    }

    #[test]
    fn context_attribute_lookup_takes_the_last_value() {
        let c = Context::new().with_attributes(&[("plan", "free"), ("plan", "pro")]);
        assert_eq!(c.attribute("plan"), Some("pro"));
        assert_eq!(c.attribute("other"), None);
    }
}

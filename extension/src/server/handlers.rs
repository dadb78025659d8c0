//! The local API's endpoints, each a function of the snapshot served and the request:
//! the whole snapshot (`all_flags`, with its ETag and 304), one flag evaluated (`one_flag`),
//! health (`health`), the long poll that holds a current client's request until the snapshot
//! changes ([`Api::respond`]) and OFREP's two endpoints ([`Api::respond_ofrep`], answering the
//! documents of [`crate::ofrep::wire`]). Which one answers a request is [`super`]'s business.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flags::Context;
use flags::wire::{
    ErrorDoc, EvaluationDoc, FETCHED_AT_HEADER, HealthDoc, MAX_TRACK_BODY_BYTES, PREFER_HEADER,
    PREFERENCE_APPLIED_HEADER as PREFERENCE_APPLIED, TrackDoc, TrackedDoc, rfc3339,
};
use http::header::{ETAG, IF_NONE_MATCH};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value};

use super::{Api, BODY_TIMEOUT, MAX_WAIT, closing, error, json_doc, json_response};
use crate::ofrep;
use crate::snapshot::Served;

impl Api {
    /// Answers a `POST` on the OFREP paths (see [`crate::ofrep`]): the same Host and token
    /// rules as every request, a body of at most [`ofrep::MAX_BODY_BYTES`].
    pub async fn respond_ofrep<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if let Some(refused) = self.refusal(&request, "configure your OFREP provider to send it") {
            return refused;
        }
        let (parts, body) = request.into_parts();
        let body =
            match read_body(&parts, body, ofrep::MAX_BODY_BYTES, "OFREP request bodies").await {
                Ok(body) => body,
                Err(refused) => return refused,
            };
        let served = self.shared.load();
        let path = parts.uri.path();
        let key = match path.strip_prefix(ofrep::EVALUATE_FLAG_PREFIX) {
            Some(encoded) => match percent_encoding::percent_decode_str(encoded).decode_utf8() {
                Ok(key) => Some(key.into_owned()),
                Err(_) => {
                    return error(StatusCode::BAD_REQUEST, "the flag key is not valid UTF-8");
                }
            },
            None if path == ofrep::EVALUATE_FLAGS => None,
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "no such OFREP endpoint: use {}{{key}} or {}",
                        ofrep::EVALUATE_FLAG_PREFIX,
                        ofrep::EVALUATE_FLAGS
                    ),
                );
            }
        };
        let context = match ofrep::RequestContext::from_body(&body) {
            Ok(context) => context,
            Err(bad) => return json_doc(StatusCode::BAD_REQUEST, &bad.into_doc(key)),
        };
        match key {
            Some(key) => {
                let (status, doc) = self
                    .experiments
                    .counted(|| ofrep::evaluate_one(&served.snapshot, &key, &context));
                json_doc(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), &doc)
            }
            None => {
                let body = ofrep::evaluate_all(&served.snapshot, &context);
                let etag = ofrep::bulk_etag(&served.snapshot, &served.etag, &context, &body);
                let matches = if_none_match(&parts.headers).any(|tag| tag == etag);
                let mut response = if matches {
                    not_modified()
                } else {
                    json_doc(StatusCode::OK, &body)
                };
                if let Ok(value) = HeaderValue::from_str(&etag) {
                    response.headers_mut().insert(ETAG, value);
                }
                response
            }
        }
    }

    /// Answers `POST /v1/track` ([`TrackDoc`]): a conversion counted for the variants the unit
    /// was exposed to in the current scope ([`crate::experiments`]); 200 with [`TrackedDoc`],
    /// 400 naming what is wrong with the body.
    pub async fn respond_track<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if let Some(refused) = self.refusal(
            &request,
            "SSM_FLAGS_TOKEN, else the function's AWS_SESSION_TOKEN, else the token in SSM_FLAGS_TOKEN_FILE",
        ) {
            return refused;
        }
        let (parts, body) = request.into_parts();
        let body = match read_body(&parts, body, MAX_TRACK_BODY_BYTES, "track bodies").await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let doc: TrackDoc = match serde_json::from_slice(&body) {
            Ok(doc) => doc,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "the body must be {{\"event\": NAME, \"context\": {{\"targetingKey\": KEY, …}}, \"value\": NUMBER (optional)}}: {e}"
                    ),
                );
            }
        };
        match self.experiments.track(&doc) {
            Ok(attributed) => json_doc(StatusCode::OK, &TrackedDoc { attributed }),
            Err(problem) => error(StatusCode::BAD_REQUEST, &problem.to_string()),
        }
    }

    /// Answers one request, holding a long poll (`Prefer: wait=N` on a snapshot the client
    /// already has) until the snapshot changes, the wait ends or the API closes.
    pub async fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let Some(wait) = requested_wait(request) else {
            return self.handle(request);
        };
        // Subscribed before looking: a change between the look and the wait is not missed.
        let mut changes = self.shared.subscribe();
        let response = self.handle(request);
        // Only a 304 waits: it is authorized, on the snapshot, and the client is current.
        if response.status() != StatusCode::NOT_MODIFIED {
            return response;
        }
        if changes.closing() {
            return closing(response);
        }
        let Ok(_slot) = Arc::clone(&self.waiters).try_acquire_owned() else {
            // Too many held: answered now, without Preference-Applied (the client pauses).
            return response;
        };
        let wait = wait.min(MAX_WAIT);
        tokio::select! {
            () = changes.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let mut response = self.handle(request);
        if let Ok(value) = HeaderValue::from_str(&format!("wait={}", wait.as_secs())) {
            response.headers_mut().insert(PREFERENCE_APPLIED, value);
        }
        if changes.closing() {
            return closing(response);
        }
        response
    }
}

/// A request's body, at most `limit` bytes, arriving within [`BODY_TIMEOUT`]; or the answer
/// refusing it (`what`: the bodies, in the message).
async fn read_body<B>(
    parts: &http::request::Parts,
    body: B,
    limit: usize,
    what: &str,
) -> Result<Bytes, Response<Full<Bytes>>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        closing(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{what} are limited to {limit} bytes"),
        ))
    };
    let announced = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, limit);
    let Ok(collected) = tokio::time::timeout(BODY_TIMEOUT, BodyExt::collect(limited)).await else {
        return Err(closing(error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the body: {e}"),
        )),
    }
}

/// The wait a request asks for in `Prefer: wait=N` (RFC 7240: whole seconds; several
/// preferences may share the header, each possibly with `;` parameters). `None`: no wait, 0 or
/// not a number.
fn requested_wait<B>(request: &Request<B>) -> Option<Duration> {
    request
        .headers()
        .get_all(PREFER_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|preference| {
            let token = preference.split(';').next()?.trim();
            let (name, value) = token.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
        .next()
        .filter(|&seconds| seconds > 0)
        .map(Duration::from_secs)
}

/// The entity tags listed in a request's `If-None-Match` headers, weak ones as strong.
fn if_none_match(headers: &http::HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
}

/// `304 Not Modified`, with no body.
fn not_modified() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    response
}

pub(super) fn all_flags<B>(served: &Served, request: &Request<B>) -> Response<Full<Bytes>> {
    let etag = HeaderValue::from_str(&served.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let matches = if_none_match(request.headers()).any(|tag| tag == served.etag || tag == "*");
    let mut response = if matches {
        not_modified()
    } else {
        json_response(StatusCode::OK, served.body.clone())
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    // Freshness is not content: it travels on every answer, 304 included.
    if let Some(at) = served.snapshot.fetched_at()
        && let Ok(value) = HeaderValue::from_str(&rfc3339(at))
    {
        headers.insert(FETCHED_AT_HEADER, value);
    }
    response
}

pub(super) fn one_flag(
    served: &Served,
    encoded: &str,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    let Ok(name) = percent_encoding::percent_decode_str(encoded).decode_utf8() else {
        return error(
            StatusCode::BAD_REQUEST,
            "the flag name is not valid UTF-8 once percent-decoded",
        );
    };
    let mut user_id: Option<String> = None;
    let mut region: Option<String> = None;
    let mut attrs = Map::new();
    let mut typed: Option<Map<String, Value>> = None;
    for (key, value) in query_pairs(query.unwrap_or_default()) {
        match key.as_ref() {
            "user_id" => user_id = Some(value.into_owned()),
            "region" => region = Some(value.into_owned()),
            "context" if typed.is_some() => {
                return error(StatusCode::BAD_REQUEST, "`context` is given twice");
            }
            "context" => match serde_json::from_str(&value) {
                Ok(Value::Object(fields)) => typed = Some(fields),
                Ok(_) | Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "`context` must be a percent-encoded JSON object of attributes",
                    );
                }
            },
            attr => {
                if let Some(name) = attr.strip_prefix("attr.").filter(|n| !n.is_empty()) {
                    attrs.insert(name.to_owned(), Value::String(value.into_owned()));
                }
            }
        }
    }
    let fields = match typed {
        Some(_) if !attrs.is_empty() => {
            return error(
                StatusCode::BAD_REQUEST,
                "give attributes as `attr.<key>=<value>` (strings) or as `context=<JSON>` (typed), not both",
            );
        }
        Some(fields) => fields,
        None => attrs,
    };
    let Some(entry) = served.snapshot.entry(&name) else {
        return json_doc(
            StatusCode::NOT_FOUND,
            &ErrorDoc::for_flag(format!("flag {name:?} not found"), &name),
        );
    };
    // A seed flag matches `allowed_attributes` by text (a number by its JSON text, as OFREP's
    // context); a flagd flag reads every field with its type.
    let texts: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k.clone(), s.clone()),
            other => (k.clone(), other.to_string()),
        })
        .collect();
    let attributes: Vec<(&str, &str)> = texts
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut context = Context::new()
        .with_attributes(&attributes)
        .with_fields(&fields);
    if let Some(user) = user_id.as_deref() {
        context = context.with_user(user);
    }
    // The region: the parameter, else a `region` attribute (as OFREP's context gives it).
    let region = region.or_else(|| {
        fields
            .get("region")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    if let Some(region) = region.as_deref() {
        context = context.with_region(region);
    }
    let flag = served.snapshot.get(&name);
    let doc = match entry.value() {
        // One resolution: the toggle, the value and the variant all come from it (a schedule
        // may flip between two).
        Ok(flags::FlagValue::Flagd(_)) => {
            let variant = flag.variant_for(&context);
            let value = variant.value.as_deref().cloned().unwrap_or(Value::Null);
            let detail = match variant.error {
                Some(code) => format!(
                    "flagd flag: {} ({})",
                    variant.reason.as_str(),
                    code.as_str()
                ),
                None => format!("flagd flag: {}", variant.reason.as_str()),
            };
            EvaluationDoc {
                name: name.to_string(),
                enabled: value == Value::Bool(true),
                reason: "flagd".to_owned(),
                detail,
                value,
                variant: variant.name.as_deref().map(str::to_owned),
            }
        }
        other => EvaluationDoc::new(
            &name,
            flag.evaluate(&context),
            other.map_or(Value::Null, flags::FlagValue::to_json),
        ),
    };
    json_doc(StatusCode::OK, &doc)
}

/// The `key=value` pairs of a query string, percent-decoded as RFC 3986 says: `+` is a literal
/// plus (`a+b@x.com` is that user), not a space as in HTML forms.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    let decode = |text| percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
}

pub(super) fn health(served: &Served) -> Response<Full<Bytes>> {
    json_doc(
        StatusCode::OK,
        &HealthDoc {
            status: served.status(),
            version: served.snapshot.version(),
            age_seconds: served.snapshot.age().map(|a| a.as_secs_f64()),
            flags: served.snapshot.len(),
            invalid: served.invalid,
            last_error: served.last_error.clone(),
            undecryptable: Vec::new(),
            undecryptable_count: 0,
            shadowed: Vec::new(),
            shadowed_count: 0,
        }
        .with_undecryptable(&served.undecryptable)
        .with_shadowed(&served.shadowed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Shared;
    use flags::wire::{FLAG_PATH_PREFIX, FLAGS_PATH, HEALTH_PATH, Status, TOKEN_HEADER};
    use flags::{Parameter, ParameterKind, Snapshot};
    use serde_json::json;

    use super::super::MAX_WAITERS;
    use super::super::tests::{TEST_TOKEN, api, get};

    #[test]
    fn all_flags_with_etag_and_304() {
        let api = api(None);
        let (status, body, headers) = get(&api, FLAGS_PATH, &[]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["version"], 7);
        assert_eq!(body["flags"]["dark-mode"]["value"], true);
        assert_eq!(
            body["flags"]["checkout/v2"]["value"]["allowed_user_ids"][0],
            "alice"
        );
        assert!(body["flags"]["broken"]["error"].is_string());
        let etag = headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .expect("etag")
            .to_owned();
        let fetched_at = headers
            .get(FETCHED_AT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(flags::wire::parse_time)
            .expect("the fetch time on a 200");
        // A later fetch of the same flags: same tag, so a 304, carrying the new fetch time.
        let later = fetched_at + std::time::Duration::from_secs(30);
        api.shared.load().snapshot.mark_fetched(later);
        let (status, body, headers) = get(&api, FLAGS_PATH, &[("if-none-match", &etag)]);
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(body, Value::Null);
        assert_eq!(
            headers
                .get(FETCHED_AT_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(flags::wire::parse_time),
            Some(later)
        );
        assert_eq!(
            headers.get(ETAG).and_then(|v| v.to_str().ok()),
            Some(etag.as_str())
        );
        let (status, _, _) = get(&api, FLAGS_PATH, &[("if-none-match", "\"other\"")]);
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn one_flag_is_evaluated_for_the_query() {
        let api = api(None);
        let (status, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}checkout%2Fv2?user_id=alice"),
            &[],
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["name"], "checkout/v2");
        assert_eq!(body["enabled"], true);
        assert_eq!(body["reason"], "allow_list");
        let (_, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}checkout/v2?user_id=bob"),
            &[],
        );
        assert_eq!(
            (body["enabled"].clone(), body["reason"].clone()),
            (json!(false), json!("allow_list"))
        );
        // alice is bucket 1: in the 25% rollout, in region.
        let (_, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}new-analytics?user_id=alice&region=us-east-1"),
            &[],
        );
        assert_eq!(body["enabled"], true);
        assert_eq!(body["reason"], "rollout");
        let (_, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}new-analytics?user_id=alice&region=eu-west-1"),
            &[],
        );
        assert_eq!(body["reason"], "region");
        let (_, body, _) = get(&api, &format!("{FLAG_PATH_PREFIX}broken"), &[]);
        assert_eq!(
            (body["enabled"].clone(), body["reason"].clone()),
            (json!(false), json!("error"))
        );
    }

    /// An API serving a flagd flag targeting a typed attribute and a seed flag allowing one.
    fn flagd_api() -> Api {
        use flags::snapshot::assemble::Assembler;
        let mut assembler = Assembler::new();
        let parameter = |flag: &str, value: &str| Parameter {
            flag: flag.into(),
            name: format!("/app/flags/{flag}"),
            kind: ParameterKind::String,
            value: value.into(),
            version: 1,
        };
        let tiered = r#"{"state": "ENABLED", "variants": {"big": 100, "small": 10},
            "defaultVariant": "small",
            "targeting": {"if": [{">=": [{"var": "seats"}, 50]}, "big", null]}}"#;
        let flagd = flags::Format::Flagd(flags::Bucketing::V3);
        assembler.add(0, flagd, &parameter("limit", tiered));
        let plan = r#"{"enabled": true, "allowed_attributes": {"plan": ["pro"]}}"#;
        assembler.add(0, flags::Format::Seed, &parameter("pro-only", plan));
        let snapshot = Snapshot::new(2, Status::Ok, assembler.finish().entries);
        Api::new(
            Shared::new(Served::new(1, snapshot, None)),
            TEST_TOKEN.to_owned(),
        )
    }

    #[test]
    fn one_flag_takes_string_attributes_or_a_typed_context_never_both() {
        let api = flagd_api();
        let ask = |query: &str| {
            let (status, body, _) = get(&api, &format!("{FLAG_PATH_PREFIX}{query}"), &[]);
            (status, body)
        };
        // A typed context: 60 seats is a number, and a number reaches `>=` as one.
        let (status, body) = ask("limit?user_id=u1&context=%7B%22seats%22%3A60%7D");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (body["value"].clone(), body["variant"].clone()),
            (json!(100), json!("big"))
        );
        let (_, body) = ask("limit?context=%7B%22seats%22%3A5%7D");
        assert_eq!(
            (body["value"].clone(), body["variant"].clone()),
            (json!(10), json!("small"))
        );
        // String attributes: a seed flag's allowed attribute.
        let (_, body) = ask("pro-only?user_id=u1&attr.plan=pro");
        assert_eq!(body["enabled"], true, "{body}");
        let (_, body) = ask("pro-only?user_id=u1&attr.plan=free");
        assert_eq!(body["enabled"], false, "{body}");
        assert!(body.get("variant").is_none(), "{body}");
        // Both at once, or a context that is not an object: 400, saying why.
        let (status, body) = ask("limit?attr.plan=pro&context=%7B%7D");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("not both")),
            "{body}"
        );
        let (status, _) = ask("limit?context=%7B%7D&context=%7B%7D");
        assert_eq!(status, StatusCode::BAD_REQUEST, "context twice");
        // A typed context's string attribute reaches a seed flag's allowed_attributes.
        let (_, body) = ask("pro-only?user_id=u1&context=%7B%22plan%22%3A%22pro%22%7D");
        assert_eq!(body["enabled"], true, "{body}");
        for bad in ["%5B1%5D", "%7Bnope", "5"] {
            let (status, body) = ask(&format!("limit?context={bad}"));
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
    }

    #[test]
    fn a_plus_in_the_query_is_a_plus_and_an_empty_user_is_no_user() {
        let api = api(None);
        // checkout/v2 allows only "alice"; a user named "a+b@x.com" is not "a b@x.com".
        let plus = |q: &str| {
            get(
                &api,
                &format!("{FLAG_PATH_PREFIX}checkout%2Fv2?user_id={q}"),
                &[],
            )
            .1
        };
        assert_eq!(
            plus("a+b@x.com")["detail"],
            "user is not in `allowed_user_ids`"
        );
        assert_eq!(
            query_pairs("user_id=a+b%40x.com&region=us%2Deast-1&flag").collect::<Vec<_>>(),
            [
                (Cow::from("user_id"), Cow::from("a+b@x.com")),
                (Cow::from("region"), Cow::from("us-east-1")),
                (Cow::from("flag"), Cow::from("")),
            ]
        );
        // new-analytics is a 25% rollout: an empty user id is no user (off), never one bucket.
        let (_, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}new-analytics?user_id=&region=us-east-1"),
            &[],
        );
        assert_eq!(
            (body["enabled"].clone(), body["reason"].clone()),
            (json!(false), json!("rollout"))
        );
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no user id")),
            "{body}"
        );
    }

    #[test]
    fn unknown_flags_and_traversal_are_404() {
        let api = api(None);
        for uri in [
            &format!("{FLAG_PATH_PREFIX}nope"),
            &format!("{FLAG_PATH_PREFIX}..%2F..%2Fetc%2Fpasswd"),
            &format!("{FLAG_PATH_PREFIX}../v1/health"),
        ] {
            let (status, body, _) = get(&api, uri, &[]);
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("not found")),
                "{uri}: {body}"
            );
        }
        let (status, _, _) = get(&api, "/etc/passwd", &[]);
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get(&api, &format!("{FLAG_PATH_PREFIX}%FF"), &[]);
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn health_reports_status_version_and_age() {
        let (status, body, _) = get(&api(None), HEALTH_PATH, &[]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], 7);
        assert_eq!(body["flags"], 4);
        assert_eq!(body["invalid"], 1);
        assert!(body["age_seconds"].as_f64().is_some_and(|a| a < 5.0));
    }

    fn long_poll(api: &Api, etag: &str, wait: &str) -> Request<()> {
        let _ = api;
        Request::get(FLAGS_PATH)
            .header("host", "127.0.0.1:2774")
            .header(TOKEN_HEADER, TEST_TOKEN)
            .header(IF_NONE_MATCH, etag)
            .header("prefer", wait)
            .body(())
            .expect("request")
    }

    fn republished(api: &Api) {
        let current = api.shared.load();
        let snapshot = current.snapshot.with_status(Status::Stale);
        api.shared
            .publish(Served::new(1, snapshot, Some("down".into())));
    }

    #[tokio::test]
    async fn a_long_poll_is_held_until_the_snapshot_changes() {
        let api = api(None);
        let etag = api.shared.load().etag.clone();
        let held = {
            let api = api.clone();
            let etag = etag.clone();
            tokio::spawn(async move { api.respond(&long_poll(&api, &etag, "wait=30")).await })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished(), "held while nothing changes");
        republished(&api);
        let response = tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .expect("answered at the change")
            .expect("task");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[PREFERENCE_APPLIED], "wait=30");
        assert_ne!(response.headers()[ETAG], etag.as_str());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_without_a_change_ends_in_304_after_its_wait_capped_at_the_maximum() {
        let api = api(None);
        let etag = api.shared.load().etag.clone();
        let started = tokio::time::Instant::now();
        let response = api
            .respond(&long_poll(&api, &etag, "respond-async, wait=7"))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[PREFERENCE_APPLIED], "wait=7");
        assert_eq!(started.elapsed(), Duration::from_secs(7));
        let started = tokio::time::Instant::now();
        let response = api.respond(&long_poll(&api, &etag, "wait=100000")).await;
        assert_eq!(started.elapsed(), MAX_WAIT);
        assert_eq!(response.headers()[PREFERENCE_APPLIED], "wait=300");
    }

    #[tokio::test]
    async fn only_an_authorized_request_for_the_held_snapshot_waits() {
        let api = api(None);
        // A stale tag: the client is behind, answered at once.
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            api.respond(&long_poll(&api, "\"old\"", "wait=30")),
        )
        .await
        .expect("not held");
        assert_eq!(response.status(), StatusCode::OK);
        // No token: refused at once, never held.
        let etag = api.shared.load().etag.clone();
        let request = Request::get(FLAGS_PATH)
            .header("host", "127.0.0.1")
            .header(IF_NONE_MATCH, etag.as_str())
            .header("prefer", "wait=30")
            .body(())
            .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(5), api.respond(&request))
            .await
            .expect("not held");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        // wait=0 or garbage: an ordinary conditional GET.
        for prefer in ["wait=0", "wait=soon", "handling=lenient"] {
            let response = tokio::time::timeout(
                Duration::from_secs(5),
                api.respond(&long_poll(&api, &etag, prefer)),
            )
            .await
            .expect("not held");
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{prefer}");
            assert!(!response.headers().contains_key(PREFERENCE_APPLIED));
        }
    }

    #[tokio::test]
    async fn held_requests_are_bounded_and_released_at_once_when_the_api_closes() {
        let api = api(None);
        let etag = api.shared.load().etag.clone();
        let mut held = Vec::new();
        for _ in 0..MAX_WAITERS {
            let api = api.clone();
            let etag = etag.clone();
            held.push(tokio::spawn(async move {
                api.respond(&long_poll(&api, &etag, "wait=300")).await
            }));
        }
        // Let every one of them take its slot.
        while api.waiters.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let over = tokio::time::timeout(
            Duration::from_secs(5),
            api.respond(&long_poll(&api, &etag, "wait=300")),
        )
        .await
        .expect("over the limit: answered at once");
        assert_eq!(over.status(), StatusCode::NOT_MODIFIED);
        assert!(!over.headers().contains_key(PREFERENCE_APPLIED));

        api.shared.close();
        for task in held {
            let response = tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("released at close")
                .expect("task");
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
            assert_eq!(response.headers()[http::header::CONNECTION], "close");
        }
        // Closing: a new long poll is not held either.
        let late = tokio::time::timeout(
            Duration::from_secs(5),
            api.respond(&long_poll(&api, &etag, "wait=300")),
        )
        .await
        .expect("not held while closing");
        assert_eq!(late.headers()[http::header::CONNECTION], "close");
    }
}

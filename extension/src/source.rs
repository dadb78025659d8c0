//! Where flags come from: every parameter under the configured paths, read with
//! `GetParametersByPath` (recursive, every page, decrypted).

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use flags::{FlagPath, Parameter, ParameterKind};

mod error;

use error::classify;
pub use error::{SourceError, Unconfigured, error_chain, unconfigured};

/// The listing action.
pub(crate) const LIST: &str = "GetParametersByPath";

/// `GetParametersByPath` returns at most 10 parameters per page.
const PAGE_SIZE: i32 = 10;

/// Default `SSM_FLAGS_MAX_PARAMETERS`: the most parameters one fetch may list (and the most
/// pages it may read) before it fails as a listing that does not end.
pub const DEFAULT_MAX_PARAMETERS: usize = 10_000;
/// The highest `SSM_FLAGS_MAX_PARAMETERS` allowed.
pub const MAX_PARAMETERS_CEILING: usize = 100_000;

/// A successful fetch: every parameter, and how many SSM calls it took.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fetched {
    /// The parameters, in the order SSM returned them (paths in configured order).
    pub parameters: Vec<Parameter>,
    /// SSM calls made.
    pub calls: u32,
    /// Full names of the `SecureString` parameters SSM would not decrypt: their `value` is
    /// ciphertext, never a flag value (see [`SourceError::Decryption`]).
    pub undecrypted: Vec<String>,
    /// Why they could not be decrypted.
    pub decryption_error: Option<String>,
    /// Sources that failed this time and are served from their own last good (with several
    /// sources: one failing never drops another's flags): why, one line each.
    pub stale: Vec<String>,
    /// AppConfig's `Version-Label` of each profile's version (by `application/environment/profile`),
    /// for the audit lines.
    pub labels: std::collections::HashMap<String, String>,
}

/// A fetch in progress: every page read so far, and where to go on. Each page is added as soon
/// as it is read, so a fetch longer than one refresh's budget resumes where it stopped (at the
/// next refresh) instead of starting over; it is published only once complete.
#[derive(Debug, Default)]
pub struct Progress {
    fetched: Fetched,
    /// The path being read (an index into the configured paths).
    path: usize,
    /// The token of that path's next page.
    next_token: Option<String>,
    /// That path is read without decryption (SSM could not decrypt one of its SecureStrings).
    plain: bool,
    /// Where that path's parameters start in `fetched.parameters`.
    path_start: usize,
    done: bool,
    /// Every AppConfig profile has been polled (see [`crate::appconfig::Sources`]).
    profiles_done: bool,
    /// The `NextToken`s this path's listing has handed out: one handed out twice means a
    /// listing that never ends.
    tokens: HashSet<String>,
    /// Every parameter name listed so far: one listed twice means a listing going round.
    names: HashSet<String>,
    /// Listing pages read, over every path.
    pages: usize,
    /// Flags the listing left out that SSM has confirmed gone by name (`InvalidParameters`), so
    /// a confirmation spanning several refreshes never asks for a name twice.
    confirmed_gone: HashSet<String>,
}

/// One parameter as a listing page gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    name: String,
    kind: ParameterKind,
    value: String,
    version: u64,
}

impl Progress {
    /// A fetch already complete (for sources that read everything in one step).
    pub fn complete(fetched: Fetched) -> Self {
        Self {
            fetched,
            done: true,
            ..Self::default()
        }
    }

    /// Adds one page read by one call (for sources that read page by page).
    pub fn push_page(&mut self, parameters: impl IntoIterator<Item = Parameter>) {
        self.fetched.calls += 1;
        self.fetched.parameters.extend(parameters);
    }

    /// Marks every page read.
    pub fn mark_complete(&mut self) {
        self.done = true;
    }

    /// Whether every page of every path has been read.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// SSM calls made so far.
    pub fn calls(&self) -> u32 {
        self.fetched.calls
    }

    /// Parameters read so far.
    pub fn parameters(&self) -> usize {
        self.fetched.parameters.len()
    }

    /// What was fetched.
    pub fn fetched(&self) -> &Fetched {
        &self.fetched
    }

    /// Replaces everything read by `parameters` (a source's last good, served while it fails)
    /// and marks the reading complete.
    pub fn replace_with(&mut self, parameters: Vec<Parameter>, why: String) {
        self.fetched.parameters = parameters;
        self.fetched.undecrypted.clear();
        self.fetched.stale.push(why);
        self.done = true;
    }

    /// Adds the flags of the AppConfig profiles, all at once, with the calls made, the failures
    /// and the version labels.
    pub fn push_profiles(
        &mut self,
        parameters: Vec<Parameter>,
        calls: u32,
        stale: Vec<String>,
        labels: std::collections::HashMap<String, String>,
    ) {
        self.fetched.parameters.extend(parameters);
        self.fetched.calls += calls;
        self.fetched.stale.extend(stale);
        self.fetched.labels = labels;
        self.profiles_done = true;
    }

    /// Whether the AppConfig profiles have been polled.
    pub fn profiles_done(&self) -> bool {
        self.profiles_done
    }

    /// Counts one SSM call that is not a listing page (a check by name).
    pub fn count_call(&mut self) {
        self.fetched.calls += 1;
    }

    /// Whether SSM has confirmed, during this fetch, that the parameter `name` is gone.
    pub fn is_confirmed_gone(&self, name: &str) -> bool {
        self.confirmed_gone.contains(name)
    }

    /// Records that SSM confirmed the parameter `name` gone (it listed it in
    /// `InvalidParameters`).
    pub fn confirm_gone(&mut self, name: String) {
        self.confirmed_gone.insert(name);
    }

    /// Takes one listing page of `path` (the path being read): its parameters and the token of
    /// its next page. A listing that does not end fails the fetch: a `NextToken` handed out
    /// twice, a name listed twice, more than `max_parameters` parameters, or more than
    /// `max_parameters` pages (a page may be short, even empty, yet every page costs a call).
    /// Without a next token, the path is done and the next one is read.
    fn take_page(
        &mut self,
        path: &FlagPath,
        parameters: Vec<Listed>,
        next_token: Option<&str>,
        max_parameters: usize,
    ) -> Result<(), SourceError> {
        self.pages += 1;
        let next_token = next_token.filter(|t| !t.is_empty());
        if let Some(token) = next_token
            && !self.tokens.insert(token.to_owned())
        {
            return Err(SourceError::RepeatedToken {
                path: path.to_string(),
                pages: self.pages,
            });
        }
        for p in parameters {
            let Some(flag) = path.flag_name(&p.name) else {
                // Not an answer SSM gives; a flag cannot be named outside its path.
                tracing::warn!(parameter = p.name, %path, "ignored a parameter outside the path asked for");
                continue;
            };
            if !self.names.insert(p.name.clone()) {
                return Err(SourceError::RepeatedName {
                    path: path.to_string(),
                    name: p.name,
                });
            }
            if self.plain && p.kind == ParameterKind::SecureString {
                self.fetched.undecrypted.push(p.name.clone());
            }
            self.fetched.parameters.push(Parameter {
                flag: flag.to_owned(),
                name: p.name,
                kind: p.kind,
                value: p.value,
                version: p.version,
            });
        }
        if self.fetched.parameters.len() > max_parameters {
            return Err(SourceError::TooManyParameters {
                path: path.to_string(),
                limit: max_parameters,
            });
        }
        match next_token {
            Some(_) if self.pages >= max_parameters => Err(SourceError::TooManyPages {
                path: path.to_string(),
                limit: max_parameters,
            }),
            Some(token) => {
                self.next_token = Some(token.to_owned());
                Ok(())
            }
            // A page may come back short (or empty) with more to come: only the token ends it.
            None => {
                self.path += 1;
                self.next_token = None;
                self.plain = false;
                self.tokens.clear();
                self.path_start = self.fetched.parameters.len();
                Ok(())
            }
        }
    }

    /// Starts this path's listing over without decryption: what it read so far is dropped.
    fn restart_path_plain(&mut self) {
        let start = self.path_start;
        for p in self.fetched.parameters.drain(start..) {
            self.names.remove(&p.name);
        }
        self.plain = true;
        self.next_token = None;
        self.tokens.clear();
    }

    /// The complete fetch.
    pub fn into_fetched(self) -> Fetched {
        self.fetched
    }
}

/// Anything that can fetch every flag parameter.
pub trait Source: Send + Sync {
    /// Reads on from `progress` until it holds every parameter under the configured paths. Each
    /// page read is in `progress` at once: a caller that stops waiting (a budget ran out) can
    /// resume later with the same `progress`.
    fn fetch_into(
        &self,
        progress: &mut Progress,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Asks for `names` (full parameter names, at most [`VERIFY_AT_MOST`]) by name, to check a
    /// listing that left them out: which exist, and which SSM says do not. An answer that cannot
    /// tell (an array missing) is an error, never "gone".
    fn look_up(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<LookedUp, SourceError>> + Send;
}

/// What SSM answered about parameters asked for by name (`GetParameters`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookedUp {
    /// The names it returned: they exist.
    pub found: Vec<String>,
    /// The names it listed in `InvalidParameters`: they do not exist.
    pub invalid: Vec<String>,
}

/// `GetParameters` takes at most 10 names: a listing that left out flags is checked with every
/// one of them, this many a call (⌈n/10⌉ calls for n flags).
pub const VERIFY_AT_MOST: usize = 10;

/// Parameter Store, through `aws-sdk-ssm`.
#[derive(Debug, Clone)]
pub struct SsmSource {
    client: aws_sdk_ssm::Client,
    paths: Vec<FlagPath>,
    max_parameters: usize,
}

impl SsmSource {
    /// A source reading `paths`.
    pub fn new(client: aws_sdk_ssm::Client, paths: Vec<FlagPath>) -> Self {
        Self {
            client,
            paths,
            max_parameters: DEFAULT_MAX_PARAMETERS,
        }
    }

    /// Fails a fetch whose listings go past `max` parameters, or `max` pages
    /// (`SSM_FLAGS_MAX_PARAMETERS`; default [`DEFAULT_MAX_PARAMETERS`]).
    pub fn with_max_parameters(mut self, max: usize) -> Self {
        self.max_parameters = max;
        self
    }

    /// Builds the SDK client from the environment (`AWS_REGION`, `AWS_ENDPOINT_URL[_SSM]`,
    /// credentials), with every attempt bounded by `timeout`.
    pub async fn from_env(paths: Vec<FlagPath>, timeout: Duration) -> Self {
        Self::new(aws_sdk_ssm::Client::new(&sdk_config(timeout).await), paths)
    }
}

/// The AWS SDK configuration every source's client is built from: the environment's region,
/// credentials and endpoints (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SSM`,
/// `AWS_ENDPOINT_URL_APPCONFIGDATA`), each call bounded by `timeout`, one retry at most inside a
/// fetch (our own backoff across refreshes does the rest).
pub async fn sdk_config(timeout: Duration) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls;
    {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .operation_attempt_timeout(timeout)
            .operation_timeout(timeout)
            .build();
        // One retry inside a fetch at most: our own backoff across INVOKEs does the rest.
        let retries = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(2)
            .with_initial_backoff(Duration::from_millis(50));
        // rustls with ring, the platform's trust store (the SDK's default client, on a smaller
        // crypto library).
        let https = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https)
            .timeout_config(timeouts)
            .retry_config(retries)
            .load()
            .await
    }
}

impl Source for SsmSource {
    /// Every path in order, every page (recursive, decrypted). Every path or none: one failing
    /// path fails the whole fetch, so a mix of fresh and missing flags is never published. If SSM
    /// cannot decrypt a SecureString under a path, that path is read again without decryption and
    /// its SecureStrings are reported undecrypted, so one key the role may not use never hides
    /// the other flags; decryption is tried again at every fetch.
    async fn fetch_into(&self, progress: &mut Progress) -> Result<(), SourceError> {
        while let Some(path) = self.paths.get(progress.path) {
            let decrypt = !progress.plain;
            let page = self
                .client
                .get_parameters_by_path()
                .path(path.as_str())
                .recursive(true)
                .with_decryption(decrypt)
                .max_results(PAGE_SIZE)
                .set_next_token(progress.next_token.clone())
                .send()
                .await;
            // From here to the end of the loop nothing awaits: a page is taken whole or not at all.
            progress.fetched.calls += 1;
            let page = match page.map_err(|e| classify(LIST, path.as_str(), e)) {
                Ok(page) => page,
                Err(error @ SourceError::Decryption { .. }) if decrypt => {
                    progress.restart_path_plain();
                    progress.fetched.decryption_error = Some(error.to_string());
                    continue;
                }
                Err(error) => return Err(error),
            };
            let Some(parameters) = page.parameters.as_deref() else {
                return Err(SourceError::Malformed {
                    path: path.to_string(),
                });
            };
            let listed = parameters
                .iter()
                .filter_map(|p| {
                    Some(Listed {
                        name: p.name()?.to_owned(),
                        kind: match p.r#type() {
                            Some(ParameterType::StringList) => ParameterKind::StringList,
                            Some(ParameterType::SecureString) => ParameterKind::SecureString,
                            _ => ParameterKind::String,
                        },
                        value: p.value().unwrap_or_default().to_owned(),
                        version: u64::try_from(p.version()).unwrap_or(0),
                    })
                })
                .collect();
            progress.take_page(path, listed, page.next_token(), self.max_parameters)?;
        }
        progress.done = true;
        Ok(())
    }

    /// One `GetParameters` call (without decryption: only existence matters). Real SSM always
    /// answers both `Parameters` and `InvalidParameters`; an answer lacking either (a mangled
    /// `200 {}`) fails, so it can never be taken as "all gone".
    async fn look_up(&self, names: &[String]) -> Result<LookedUp, SourceError> {
        let asked = names.get(..VERIFY_AT_MOST).unwrap_or(names);
        let answer = self
            .client
            .get_parameters()
            .set_names(Some(asked.to_vec()))
            .with_decryption(false)
            .send()
            .await
            .map_err(|e| classify("GetParameters", &asked.join(","), e))?;
        let missing = match (&answer.parameters, &answer.invalid_parameters) {
            (Some(_), Some(_)) => None,
            (None, Some(_)) => Some("a Parameters array"),
            (Some(_), None) => Some("an InvalidParameters array"),
            (None, None) => Some("Parameters and InvalidParameters arrays"),
        };
        if let Some(missing) = missing {
            return Err(SourceError::MalformedCheck {
                first: asked.first().cloned().unwrap_or_default(),
                asked: asked.len(),
                missing,
            });
        }
        Ok(LookedUp {
            found: answer
                .parameters()
                .iter()
                .filter_map(|p| p.name().map(str::to_owned))
                .collect(),
            invalid: answer.invalid_parameters().to_vec(),
        })
    }
}

/// The bound on a listing ([`Progress::take_page`]) and the answer by name
/// ([`SsmSource::look_up`]).
#[cfg(test)]
mod listing_tests {
    use super::*;

    fn path() -> FlagPath {
        FlagPath::parse("/app/flags").expect("path")
    }

    fn listed(flag: &str) -> Listed {
        Listed {
            name: format!("/app/flags/{flag}"),
            kind: ParameterKind::String,
            value: "true".into(),
            version: 1,
        }
    }

    fn page(flags: std::ops::Range<usize>) -> Vec<Listed> {
        flags.map(|i| listed(&format!("f{i:03}"))).collect()
    }

    #[test]
    fn a_listing_ends_when_a_page_has_no_token() {
        let mut p = Progress::default();
        p.take_page(&path(), page(0..10), Some("t1"), 100)
            .expect("page 1");
        assert_eq!((p.path, p.next_token.as_deref()), (0, Some("t1")));
        // A short, even empty, page with a token: more to come.
        p.take_page(&path(), Vec::new(), Some("t2"), 100)
            .expect("page 2");
        p.take_page(&path(), page(10..15), Some(""), 100)
            .expect("page 3: an empty token ends it");
        assert_eq!((p.path, p.next_token.as_deref()), (1, None));
        assert_eq!(p.parameters(), 15);
        assert_eq!(p.fetched.parameters[14].flag, "f014");
        // The next path may hand out the same opaque tokens: they are per path.
        let other = FlagPath::parse("/other").expect("path");
        p.take_page(&other, Vec::new(), Some("t1"), 100)
            .expect("another path's t1");
    }

    #[test]
    fn a_repeated_next_token_fails_the_fetch() {
        let mut p = Progress::default();
        p.take_page(&path(), page(0..10), Some("t1"), 100)
            .expect("page 1");
        p.take_page(&path(), page(10..20), Some("t2"), 100)
            .expect("page 2");
        let error = p
            .take_page(&path(), page(20..30), Some("t1"), 100)
            .expect_err("t1 again");
        assert_eq!(
            error,
            SourceError::RepeatedToken {
                path: "/app/flags".into(),
                pages: 3
            }
        );
        assert!(
            error.to_string().contains("repeated its NextToken"),
            "{error}"
        );
        assert!(error.is_transient());
        // The same token twice in a row (the commonest loop) too.
        let mut p = Progress::default();
        p.take_page(&path(), Vec::new(), Some("t"), 100)
            .expect("page 1");
        assert!(matches!(
            p.take_page(&path(), Vec::new(), Some("t"), 100),
            Err(SourceError::RepeatedToken { pages: 2, .. })
        ));
    }

    #[test]
    fn a_name_listed_twice_fails_the_fetch() {
        let mut p = Progress::default();
        p.take_page(&path(), page(0..10), Some("t1"), 100)
            .expect("page 1");
        // Fresh tokens, but the first page again: a listing going round.
        assert_eq!(
            p.take_page(&path(), page(5..15), Some("t2"), 100),
            Err(SourceError::RepeatedName {
                path: "/app/flags".into(),
                name: "/app/flags/f005".into()
            })
        );
        // Within one page too.
        let mut p = Progress::default();
        assert!(matches!(
            p.take_page(&path(), vec![listed("a"), listed("a")], None, 100),
            Err(SourceError::RepeatedName { .. })
        ));
    }

    #[test]
    fn more_parameters_than_the_limit_fail_the_fetch() {
        let mut p = Progress::default();
        p.take_page(&path(), page(0..10), Some("t1"), 25)
            .expect("10");
        p.take_page(&path(), page(10..20), Some("t2"), 25)
            .expect("20");
        let error = p
            .take_page(&path(), page(20..30), Some("t3"), 25)
            .expect_err("30 > 25");
        assert_eq!(
            error,
            SourceError::TooManyParameters {
                path: "/app/flags".into(),
                limit: 25
            }
        );
        assert!(
            error.to_string().contains("SSM_FLAGS_MAX_PARAMETERS"),
            "{error}"
        );
        assert!(
            !error.is_transient(),
            "more flags than allowed: raise the limit"
        );
        // Exactly the limit is fine.
        let mut p = Progress::default();
        p.take_page(&path(), page(0..10), Some("t1"), 25)
            .expect("10");
        p.take_page(&path(), page(10..20), Some("t2"), 25)
            .expect("20");
        p.take_page(&path(), page(20..25), None, 25)
            .expect("25 = the limit");
        assert_eq!(p.parameters(), 25);
    }

    #[test]
    fn more_pages_than_the_limit_fail_even_when_they_are_empty() {
        let mut p = Progress::default();
        for i in 1..3 {
            p.take_page(&path(), Vec::new(), Some(&format!("t{i}")), 3)
                .expect("a short page");
        }
        // The third page may end the listing, not ask for a fourth.
        let mut ends = Progress::default();
        for i in 1..3 {
            ends.take_page(&path(), Vec::new(), Some(&format!("t{i}")), 3)
                .expect("a short page");
        }
        ends.take_page(&path(), page(0..3), None, 3)
            .expect("the last page");
        assert_eq!(
            p.take_page(&path(), Vec::new(), Some("t3"), 3),
            Err(SourceError::TooManyPages {
                path: "/app/flags".into(),
                limit: 3
            })
        );
    }

    #[test]
    fn a_path_read_again_without_decryption_forgets_what_it_listed() {
        let mut p = Progress::default();
        p.take_page(&path(), page(0..10), Some("t1"), 100)
            .expect("decrypted page");
        p.restart_path_plain();
        assert_eq!((p.parameters(), p.next_token.as_deref()), (0, None));
        // The same names and tokens again, now without decryption: no repeat.
        let mut secure = listed("s");
        secure.kind = ParameterKind::SecureString;
        let mut first = page(0..9);
        first.push(secure);
        p.take_page(&path(), first, Some("t1"), 100)
            .expect("plain page");
        assert_eq!(p.fetched.undecrypted, ["/app/flags/s"]);
    }

    /// Serves each `answers` body once, in order, as SSM's JSON 1.1 answers: a stub SSM for
    /// [`SsmSource`] without moto.
    async fn stub_ssm(answers: Vec<&'static str>) -> SsmSource {
        use http_body_util::Full;
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let answers = std::sync::Arc::new(std::sync::Mutex::new(answers.into_iter()));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let answers = std::sync::Arc::clone(&answers);
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        let body = answers
                            .lock()
                            .ok()
                            .and_then(|mut a| a.next())
                            .unwrap_or("{}");
                        async move {
                            let mut response =
                                http::Response::new(Full::new(bytes::Bytes::from(body)));
                            response.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("application/x-amz-json-1.1"),
                            );
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "test", "test", None, None, "stub",
            ))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .build();
        SsmSource::new(aws_sdk_ssm::Client::from_conf(config), vec![path()])
    }

    #[tokio::test]
    async fn an_answer_by_name_without_both_arrays_confirms_nothing() {
        let names = vec!["/app/flags/a".to_owned(), "/app/flags/b".to_owned()];
        let ssm = stub_ssm(vec![
            "{}",
            r#"{"Parameters": []}"#,
            r#"{"InvalidParameters": ["/app/flags/a", "/app/flags/b"]}"#,
            r#"{"Parameters": [{"Name": "/app/flags/a", "Type": "String", "Value": "true", "Version": 1}], "InvalidParameters": ["/app/flags/b"]}"#,
        ])
        .await;
        for missing in [
            "Parameters and InvalidParameters arrays",
            "an InvalidParameters array",
            "a Parameters array",
        ] {
            assert_eq!(
                ssm.look_up(&names).await,
                Err(SourceError::MalformedCheck {
                    first: "/app/flags/a".into(),
                    asked: 2,
                    missing
                })
            );
        }
        assert_eq!(
            ssm.look_up(&names).await,
            Ok(LookedUp {
                found: vec!["/app/flags/a".into()],
                invalid: vec!["/app/flags/b".into()]
            })
        );
    }

    #[tokio::test]
    async fn a_listing_whose_token_repeats_fails_through_the_sdk() {
        let page = r#"{"Parameters": [{"Name": "/app/flags/a", "Type": "String", "Value": "true", "Version": 1}], "NextToken": "again"}"#;
        let ssm = stub_ssm(vec![page, page]).await;
        let mut progress = Progress::default();
        assert!(matches!(
            ssm.fetch_into(&mut progress).await,
            Err(SourceError::RepeatedToken { pages: 2, .. })
        ));
        assert_eq!(progress.calls(), 2, "stopped at the repeat");
    }
}

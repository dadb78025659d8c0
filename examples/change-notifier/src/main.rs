//! The `change-notifier` function: EventBridge "Parameter Store Change" → SNS.

use change_notifier::{ChangeEvent, Config, publish};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_lookup(|k| std::env::var(k).ok())?;
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sns = aws_sdk_sns::Client::new(&shared);
    let config = std::sync::Arc::new(config);
    // Concurrent invocations on Lambda Managed Instances (AWS_LAMBDA_MAX_CONCURRENCY > 1).
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<ChangeEvent>| {
        let (sns, config) = (sns.clone(), std::sync::Arc::clone(&config));
        async move {
            let id = publish(&sns, &config, &event.payload).await?;
            Ok::<_, Error>(serde_json::json!({ "message_id": id }))
        }
    }))
    .await
}

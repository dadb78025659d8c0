//! The notifier publishes through the real SNS wire protocol (moto), and the message arrives in a
//! subscribed SQS queue with every field.

use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
use change_notifier::{ChangeEvent, Config, publish};
use testkit::Moto;

fn creds() -> Credentials {
    Credentials::new("test", "test", None, None, "tests")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_the_topic_subscribers() {
    let moto = Moto::start().await;
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(creds())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .build(),
    );
    let topic = sns
        .create_topic()
        .name("flag-changes")
        .send()
        .await
        .expect("topic");
    let topic_arn = topic.topic_arn().expect("topic arn").to_owned();
    let queue = sqs
        .create_queue()
        .queue_name("ops")
        .send()
        .await
        .expect("queue");
    let queue_url = queue.queue_url().expect("queue url").to_owned();
    let queue_arn = "arn:aws:sqs:us-east-1:123456789012:ops";
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .expect("subscribe");

    let config = Config::from_lookup(|k| match k {
        "SNS_TOPIC_ARN" => Some(topic_arn.clone()),
        "SSM_FLAGS_PATH" => Some("/myapp/prod/features".into()),
        _ => None,
    })
    .expect("config");
    let event: ChangeEvent = serde_json::from_value(serde_json::json!({
        "detail-type": "Parameter Store Change", "source": "aws.ssm",
        "time": "2026-11-24T10:00:00Z", "account": "123456789012", "region": "us-east-1",
        "detail": {"operation": "Update", "name": "/myapp/prod/features/new-payment-processor", "type": "String"}
    }))
    .expect("event");
    let id = publish(&sns, &config, &event).await.expect("published");
    assert!(!id.is_empty());

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive");
    let messages = received.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let envelope: serde_json::Value =
        serde_json::from_str(messages[0].body().unwrap_or_default()).expect("SNS envelope");
    assert_eq!(envelope["MessageId"], id);
    assert_eq!(
        envelope["Subject"],
        "Feature flag updated: new-payment-processor"
    );
    let text = envelope["Message"].as_str().unwrap_or_default();
    assert!(
        text.contains("Flag:      new-payment-processor\n"),
        "{text}"
    );
    assert!(text.contains("Operation: Update\n"), "{text}");
    assert!(text.contains("When:      2026-11-24T10:00:00Z\n"), "{text}");

    // A topic that does not exist is an error naming the parameter and the topic.
    let missing = Config {
        topic_arn: "arn:aws:sns:us-east-1:123456789012:nope".into(),
        paths: vec![],
    };
    let err = publish(&sns, &missing, &event)
        .await
        .expect_err("no such topic");
    let text = err.to_string();
    assert!(
        text.contains("/myapp/prod/features/new-payment-processor") && text.contains(":nope"),
        "{text}"
    );
}

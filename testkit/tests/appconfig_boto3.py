"""boto3's own `appconfigdata` client (AWS's published service model) against the testkit
stand-in: every answer the extension relies on must parse exactly as it would from AWS.
Run by tests/appconfig_boto3.rs with the stand-in's endpoint as the only argument."""
import json
import sys
import urllib.request

import boto3
from botocore.config import Config

ENDPOINT = sys.argv[1]
PROFILE = ("flags-app", "prod", "feature-flags")


def control(what, **body):
    request = urllib.request.Request(f"{ENDPOINT}/_standin/{what}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()


def error_of(call):
    try:
        call()
    except Exception as err:  # botocore.exceptions.ClientError and its modelled subclasses
        return err
    raise AssertionError("expected an error")


client = boto3.client(
    "appconfigdata", endpoint_url=ENDPOINT, region_name="us-east-1",
    aws_access_key_id="test", aws_secret_access_key="test",
    # One attempt: throttling and 5xx must surface, not be retried away.
    config=Config(retries={"max_attempts": 1, "mode": "standard"}),
)

document = '{"dark-mode": {"enabled": true}}'
control("deploy", profile="/".join(PROFILE), content=document,
        content_type="application/json", label="v1")
control("interval", seconds=15)

session = client.start_configuration_session(
    ApplicationIdentifier=PROFILE[0], EnvironmentIdentifier=PROFILE[1],
    ConfigurationProfileIdentifier=PROFILE[2], RequiredMinimumPollIntervalInSeconds=15)
assert session["ResponseMetadata"]["HTTPStatusCode"] == 201, session
token = session["InitialConfigurationToken"]
assert isinstance(token, str) and token, session

first = client.get_latest_configuration(ConfigurationToken=token)
assert first["Configuration"].read() == document.encode(), first
assert first["ContentType"] == "application/json", first
assert first["VersionLabel"] == "v1", first
assert first["NextPollIntervalInSeconds"] == 15, first
token = first["NextPollConfigurationToken"]
assert token, first

# Unchanged: an empty body (200), then the same as a 204.
unchanged = client.get_latest_configuration(ConfigurationToken=token)
assert unchanged["Configuration"].read() == b"", unchanged
token = unchanged["NextPollConfigurationToken"]
control("empty-as-204", on=True)
no_content = client.get_latest_configuration(ConfigurationToken=token)
assert no_content["ResponseMetadata"]["HTTPStatusCode"] == 204, no_content
assert no_content["Configuration"].read() == b"", no_content
token = no_content["NextPollConfigurationToken"]
control("empty-as-204", on=False)

# A new version reaches the session on its next poll.
document2 = '{"dark-mode": {"enabled": false}}'
control("deploy", profile="/".join(PROFILE), content=document2,
        content_type="application/json", label="v2")
changed = client.get_latest_configuration(ConfigurationToken=token)
assert changed["Configuration"].read() == document2.encode(), changed
assert changed["VersionLabel"] == "v2", changed
token = changed["NextPollConfigurationToken"]

# A token used twice is refused as corrupted.
reused = error_of(lambda: client.get_latest_configuration(ConfigurationToken=first["NextPollConfigurationToken"]))
assert reused.response["Error"]["Code"] == "BadRequestException", reused.response
assert reused.response["Details"]["InvalidParameters"]["ConfigurationToken"]["Problem"] == "Corrupted", reused.response

# An expired token: BadRequestException, Reason InvalidParameters, Problem Expired.
control("expire")
expired = error_of(lambda: client.get_latest_configuration(ConfigurationToken=token))
assert isinstance(expired, client.exceptions.BadRequestException), type(expired)
assert expired.response["Reason"] == "InvalidParameters", expired.response
assert expired.response["Details"]["InvalidParameters"]["ConfigurationToken"]["Problem"] == "Expired", expired.response

# Throttling and server errors, as the modelled exceptions.
control("fault", fault="throttle")
throttled = error_of(lambda: client.start_configuration_session(
    ApplicationIdentifier=PROFILE[0], EnvironmentIdentifier=PROFILE[1],
    ConfigurationProfileIdentifier=PROFILE[2]))
assert isinstance(throttled, client.exceptions.ThrottlingException), type(throttled)
assert throttled.response["ResponseMetadata"]["HTTPStatusCode"] == 429
control("fault", fault="server-error")
internal = error_of(lambda: client.get_latest_configuration(ConfigurationToken=token))
assert isinstance(internal, client.exceptions.InternalServerException), type(internal)
control("fault", fault="none")

# An unknown profile.
missing = error_of(lambda: client.start_configuration_session(
    ApplicationIdentifier=PROFILE[0], EnvironmentIdentifier=PROFILE[1],
    ConfigurationProfileIdentifier="nope"))
assert isinstance(missing, client.exceptions.ResourceNotFoundException), type(missing)
assert missing.response["ResourceType"] == "ConfigurationProfile", missing.response

print("boto3 appconfigdata: every answer parsed as AWS's model says")

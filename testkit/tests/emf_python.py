"""Writes metrics with AWS's published `aws-embedded-metrics` package, as a Lambda function
would: EMF lines on stdout (the Lambda environment's stdout sink). testkit/tests/emf.rs
publishes them with testkit::emf and reads them back from CloudWatch (moto).

Usage: emf_python.py TIMESTAMP_MS
Every number written is a formula of the index, repeated in emf.rs's assertions.
"""

import asyncio
import sys
from datetime import datetime, timezone

from aws_embedded_metrics.logger.metrics_logger_factory import create_metrics_logger
from aws_embedded_metrics.storage_resolution import StorageResolution


async def main(at_ms: int) -> None:
    at = datetime.fromtimestamp(at_ms / 1000, timezone.utc)

    # Two dimension sets, a metric with 150 values (two lines: 100, then 50, repeated
    # values among them), one with two, a high-resolution one, and properties.
    cart = create_metrics_logger()
    cart.set_namespace("emf-python")
    cart.set_dimensions({"Service": "cart"}, {"Service": "cart", "Route": "/buy"})
    for i in range(150):
        cart.put_metric("Latency", (i % 7) * 1.5, "Milliseconds")
    cart.put_metric("Orders", 3, "Count")
    cart.put_metric("Orders", 4, "Count")
    cart.put_metric("Queue", 2.25, "Count", StorageResolution.HIGH)
    cart.set_property("requestId", "r-1")
    cart.set_property("detail", {"nested": [1, 2, 3]})
    cart.set_timestamp(at)
    await cart.flush()

    # The Lambda environment's default dimensions (LogGroup, ServiceName, ServiceType), with
    # one more put on top.
    pay = create_metrics_logger()
    pay.set_namespace("emf-python")
    pay.put_dimensions({"Route": "/pay"})
    pay.put_metric("Bytes", 1024, "Bytes")
    pay.set_timestamp(at)
    await pay.flush()
    # A plain log line between metrics: skipped.
    print("done writing metrics", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))

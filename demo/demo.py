#!/usr/bin/env python3
"""The ssm-flags local demo: `make demo`.

Starts moto as a local SSM, seeds the seed article's flags under /myapp/dev/features, runs the
`payment` example function under cargo-lambda's emulator with the real `ssm-flags` extension,
invokes it for a few users, flips `new-payment-processor` from 5% to 50% with a real PutParameter,
waits past the max age, invokes again and shows what changed. Then it stops everything it started.
"""
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PATH = "/myapp/dev/features"
MAX_AGE = 2
USERS = ["alice", "bob", "carol", "dave", "user-123", "user-456", "erin", "frank"]
SEED = {
    "dark-mode": "true",
    "new-analytics": json.dumps({"enabled": True, "rollout_percentage": 25,
                                 "allowed_regions": ["us-east-1", "us-west-2"],
                                 "excluded_user_ids": ["user-123", "user-456"]}),
    "new-checkout-flow": json.dumps({"enabled": True, "allowed_user_ids": ["alice", "user-123"]}),
    "new-payment-processor": json.dumps({"enabled": True, "rollout_percentage": 5,
                                         "fallback_on_error": True}),
}


def say(text=""):
    print(text, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bucket(user_id):
    """The seed article's formula, in Python: the Rust extension must agree."""
    return (int(hashlib.md5(user_id.encode()).hexdigest(), 16) % 100) + 1


class DemoError(Exception):
    """A failure of the demo, reported as one line."""


def target_dir():
    """Where cargo puts binaries: asked of cargo, so CARGO_TARGET_DIR and config are honoured."""
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise DemoError(f"cargo metadata failed: {last_line(out.stderr)}")
    return Path(json.loads(out.stdout)["target_directory"])


def last_line(text):
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


def wait_until(what, check, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise DemoError(f"timed out waiting for {what}")


class Processes:
    """Everything the demo starts, stopped in reverse order whatever happens."""

    def __init__(self):
        self.started = []
        self.logs = Path(tempfile.mkdtemp(prefix="ssm-flags-demo-"))

    def start(self, name, args, env):
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
        self.started.append((name, proc))
        return proc

    def log(self, name):
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self):
        for name, proc in reversed(self.started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            say(f"  stopped {name}")


def invoke(invoke_port, payload):
    args = [str(VENV_BIN / "cargo-lambda"), "lambda", "invoke", "payment",
            "-A", "127.0.0.1", "-P", str(invoke_port), "--data-ascii", json.dumps(payload),
            "--output-format", "json"]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        raise DemoError(f"invoking the payment function failed: {last_line(out.stderr or out.stdout)}")
    return json.loads(out.stdout)


def table(invoke_port):
    rows = {}
    for user in USERS:
        receipt = invoke(invoke_port, {"user_id": user, "amount_cents": 1250})
        rows[user] = receipt
        say(f"  {user:<9} bucket {bucket(user):>3}   {receipt['processor']:<6}  {receipt['reason']}")
    return rows


def main():
    procs = Processes()
    failure = None
    try:
        run(procs)
    except KeyboardInterrupt:
        failure = "interrupted"
    except DemoError as error:
        failure = str(error)
    except Exception as error:  # any other failure is still one line, not a traceback
        failure = f"{type(error).__name__}: {last_line(str(error))}"
    finally:
        say("\n8. Stopping everything the demo started")
        procs.stop_all()
        say(f"  (logs kept in {procs.logs})")
    if failure:
        print(f"demo failed: {failure} (logs in {procs.logs})", file=sys.stderr)
        return 1
    return 0


def run(procs):
    say("== ssm-flags local demo ==")
    say("Feature flags live in SSM Parameter Store; the ssm-flags extension loads them at init,")
    say("refreshes them on invocations once older than SSM_FLAGS_MAX_AGE, and the handler reads")
    say("them from memory with flags::get(...). Here everything runs on this machine.\n")

    moto_port, invoke_port, flags_port = free_port(), free_port(), free_port()
    base_env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                    AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
                    AWS_EC2_METADATA_DISABLED="true")
    base_env.pop("AWS_SESSION_TOKEN", None)
    base_env["PATH"] = f"{VENV_BIN}:{base_env.get('PATH', '')}"

    say(f"1. Starting moto, a local SSM, on 127.0.0.1:{moto_port}")
    procs.start("moto", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)], base_env)
    endpoint = f"http://127.0.0.1:{moto_port}"

    def moto_up():
        try:
            return urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).status == 200
        except OSError:
            return False

    wait_until("moto", moto_up)
    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")

    say(f"\n2. Seeding the seed article's flags under {PATH} (PutParameter):")
    for name, value in SEED.items():
        ssm.put_parameter(Name=f"{PATH}/{name}", Value=value, Type="String", Overwrite=True)
        say(f"  {name:<22} = {value}")

    say("\n3. Building the extension and starting cargo-lambda's emulator with the payment function")
    built = subprocess.run(["cargo", "build", "--quiet", "-p", "ssm-flags-extension", "--bin",
                            "ssm-flags"], cwd=ROOT, capture_output=True, text=True)
    if built.returncode != 0:
        raise DemoError(f"building the extension failed: {last_line(built.stderr)}")
    extension_bin = target_dir() / "debug" / "ssm-flags"
    if not extension_bin.exists():
        raise DemoError(f"the extension was built but {extension_bin} is missing")
    function_env = [f"SSM_FLAGS_PORT={flags_port}", "RUST_LOG=warn"]
    procs.start("emulator", [str(VENV_BIN / "cargo-lambda"), "lambda", "watch", "-A", "127.0.0.1",
                             "-P", str(invoke_port),
                             "--env-var", ",".join(function_env)], base_env)

    def emulator_up():
        try:
            with socket.create_connection(("127.0.0.1", invoke_port), timeout=1):
                return True
        except OSError:
            return False

    wait_until("the emulator", emulator_up)
    extension_env = dict(base_env, AWS_ENDPOINT_URL=endpoint, SSM_FLAGS_PATH=PATH,
                         SSM_FLAGS_MAX_AGE=str(MAX_AGE), SSM_FLAGS_PORT=str(flags_port),
                         SSM_FLAGS_LOG_FORMAT="json",
                         AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{invoke_port}/.rt")
    procs.start("extension", [str(extension_bin)], extension_env)
    wait_until("the extension", lambda: '"message":"ready"' in procs.log("extension"))
    ready = next(json.loads(l) for l in procs.log("extension").splitlines() if '"message":"ready"' in l)
    say(f"  extension ready in {ready['ready_ms']:.0f} ms after {ready['ssm_calls']} SSM call(s); "
        f"max age {MAX_AGE} s; local API on 127.0.0.1:{flags_port}")

    say("\n4. Invoking the payment function for each user (rollout 5%). The bucket column is the")
    say("   seed's formula computed here in Python; the function computes it in Rust and agrees.")
    say("   (The first invocation compiles the function; later ones take milliseconds.)")
    before = table(invoke_port)

    new_value = json.dumps({"enabled": True, "rollout_percentage": 50, "fallback_on_error": True})
    say("\n5. An operator raises the rollout to 50%, no deploy:")
    say(f"  aws ssm put-parameter --overwrite --name {PATH}/new-payment-processor \\")
    say(f"      --value '{new_value}'")
    ssm.put_parameter(Name=f"{PATH}/new-payment-processor", Value=new_value, Type="String", Overwrite=True)
    say(f"  waiting {MAX_AGE + 1} s, past the max age...")
    time.sleep(MAX_AGE + 1)

    say("\n6. The next invocation finds the flags older than the max age: the extension refreshes")
    say("   beside it, before Lambda would freeze the environment; the invocations after see 50%.")
    invoke(invoke_port, {"user_id": "warm-up", "amount_cents": 1})
    after = table(invoke_port)
    changed = [u for u in USERS if before[u]["processor"] != after[u]["processor"]]
    say(f"\n  changed: {', '.join(changed) if changed else 'nobody'}"
        f" (buckets 6-50 moved to the new processor; buckets 1-5 kept it)")

    say("\n7. The extension's audit log (one JSON line per changed flag, with its SSM version):")
    for line in procs.log("extension").splitlines():
        if '"ssm_flags::audit"' in line and '"changed"' in line:
            entry = json.loads(line)
            say(f"  {entry['message']}: {entry['flag']} ssm_version {entry['previous_ssm_version']}"
                f" -> {entry['ssm_version']}: {entry['value']}")


if __name__ == "__main__":
    sys.exit(main())

// OpenFeature's published Node SDK and OFREP provider (npm @openfeature/server-sdk,
// @openfeature/ofrep-provider), not our code, as the client of the running extension: the seed's
// flags for a few hundred users must match the seed article's semantics (md5 buckets) exactly.
// Run by tests/ofrep.rs: node check.mjs <base-url> <token>.
import { createHash } from "node:crypto";
import diagnosticsChannel from "node:diagnostics_channel";
import assert from "node:assert/strict";
import { OpenFeature, ErrorCode, StandardResolutionReasons } from "@openfeature/server-sdk";
import { OFREPProvider } from "@openfeature/ofrep-provider";

// Every connection fetch (undici) opens, counted from the first request on.
let connections = 0;
diagnosticsChannel.subscribe("undici:client:connected", () => {
  connections += 1;
});

const [baseUrl, token] = process.argv.slice(2);
await OpenFeature.setProviderAndWait(
  new OFREPProvider({ baseUrl, headers: { "X-SSM-Flags-Token": token } }),
);
const client = OpenFeature.getClient();

const bucket = (user, salt) => {
  const text = salt === undefined ? user : `${salt}:${user}`;
  const hex = createHash("md5").update(text, "utf8").digest("hex");
  return Number(BigInt(`0x${hex}`) % 100n) + 1;
};

const expected = (flag, user, region) => {
  switch (flag) {
    case "new-analytics":
      return !["user-123", "user-456"].includes(user) &&
        ["us-east-1", "us-west-2"].includes(region) && bucket(user) <= 25;
    case "new-payment-processor":
      return bucket(user) <= 5;
    case "new-checkout-flow":
      return ["alice", "user-123"].includes(user);
  }
  throw new Error(flag);
};

let checked = 0;
const users = ["alice", "user-123", "user-456", ...Array.from({ length: 300 }, (_, i) => `user-${i}`)];
for (const user of users) {
  for (const region of ["us-east-1", "eu-west-1"]) {
    for (const flag of ["new-analytics", "new-payment-processor", "new-checkout-flow"]) {
      const details = await client.getBooleanDetails(flag, false, { targetingKey: user, region });
      const want = expected(flag, user, region);
      assert.equal(details.value, want, `${flag} ${user} ${region} ${JSON.stringify(details)}`);
      assert.equal(details.errorCode, undefined, JSON.stringify(details));
      assert.equal(details.variant, want ? "on" : "off");
      checked += 1;
    }
  }
}

const alice = { targetingKey: "alice", region: "us-east-1" };
assert.equal((await client.getBooleanDetails("dark-mode", false, alice)).reason, StandardResolutionReasons.STATIC);
assert.equal((await client.getBooleanDetails("new-checkout-flow", false, alice)).reason, StandardResolutionReasons.TARGETING_MATCH);
const payment = await client.getBooleanDetails("new-payment-processor", true, alice);
assert.equal(payment.reason, StandardResolutionReasons.SPLIT);
assert.equal(payment.flagMetadata.fallback_on_error, true);

// No user: evaluated as the library does, never an error returning the caller's default.
const anonymous = await client.getBooleanDetails("new-checkout-flow", true, { region: "us-east-1" });
assert.equal(anonymous.value, false);
assert.equal(anonymous.errorCode, undefined);

const missing = await client.getBooleanDetails("no-such-flag", true, alice);
assert.equal(missing.value, true);
assert.equal(missing.errorCode, ErrorCode.FLAG_NOT_FOUND);
const broken = await client.getBooleanDetails("broken", true, alice);
assert.equal(broken.value, true);
assert.equal(broken.errorCode, ErrorCode.PARSE_ERROR);
const mismatch = await client.getStringDetails("dark-mode", "fallback", alice);
assert.equal(mismatch.value, "fallback");
assert.equal(mismatch.errorCode, ErrorCode.TYPE_MISMATCH);

// One kept-alive connection across pauses longer than the server's header deadline (2 s) and
// shorter than undici's own keep-alive (4 s): a POST's body must not count as the next
// request's headers (the server once cut such connections).
assert.ok(connections >= 1, "undici's connections are counted");
const opened = connections;
for (let pause = 0; pause < 3; pause += 1) {
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const details = await client.getBooleanDetails("new-checkout-flow", false, alice);
  assert.equal(details.value, true);
  assert.equal(details.errorCode, undefined);
}
assert.equal(connections, opened, "the kept-alive connection was not kept across a pause");

await OpenFeature.close();
console.log(`openfeature node: ${checked} evaluations matched the seed's semantics; one connection held across 3 pauses of 3 s`);

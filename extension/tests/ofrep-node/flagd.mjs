// OpenFeature's published Node SDK and OFREP provider (npm @openfeature/server-sdk,
// @openfeature/ofrep-provider), not our code, reading flagd flags the extension serves without
// a value (`DISABLED`; no default variant), as flagd's OFREP serves them: the caller's default
// must come back, for any default. A flag with a value must come back as served.
// Run by tests/flagd.rs: node flagd.mjs <base-url> <token>.
import assert from "node:assert/strict";
import { OpenFeature } from "@openfeature/server-sdk";
import { OFREPProvider } from "@openfeature/ofrep-provider";

const [baseUrl, token] = process.argv.slice(2);
await OpenFeature.setProviderAndWait(
  new OFREPProvider({ baseUrl, headers: { "X-SSM-Flags-Token": token } }),
);
const client = OpenFeature.getClient();
const user = { targetingKey: "user-1" };

let disabled;
for (const fallback of [false, true]) {
  disabled = await client.getBooleanDetails("disabled-flag", fallback, user);
  assert.equal(disabled.value, fallback, JSON.stringify(disabled));
}
let noDefault;
for (const fallback of ["fallback", "other"]) {
  noDefault = await client.getStringDetails("no-default", fallback, user);
  assert.equal(noDefault.value, fallback, JSON.stringify(noDefault));
}
const served = await client.getStringDetails("served", "fallback", user);
assert.deepEqual([served.value, served.variant, served.reason], ["#00f", "blue", "STATIC"]);
assert.equal(served.errorCode, undefined, JSON.stringify(served));

console.log(
  `node: callers' defaults returned (disabled: reason ${disabled.reason}, error ${disabled.errorCode}; ` +
    `no default variant: reason ${noDefault.reason}, error ${noDefault.errorCode})`,
);
await OpenFeature.close();

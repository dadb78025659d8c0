// A Node.js Lambda function reading ssm-flags through the layer, with OpenFeature's published
// Node SDK and OFREP provider (`@openfeature/server-sdk`, `@openfeature/ofrep-provider`): the
// extension in the layer serves the flags on 127.0.0.1:2774, and every request carries the
// function's token (`AWS_SESSION_TOKEN`, set by Lambda; or `SSM_FLAGS_TOKEN`).
//
// Package the two SDK packages with the function (`npm ci` here), add the ssm-flags layer, set
// `SSM_FLAGS_PATH`, and set the handler to `index.handler`. The event:
// `{"user_id": "alice", "region": "us-east-1", "flags": ["dark-mode", …]}`; the answer: each
// flag's value, variant and reason.
import { OpenFeature } from "@openfeature/server-sdk";
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { readFileSync } from "node:fs";

const port = process.env.SSM_FLAGS_PORT ?? "2774";

// SSM_FLAGS_TOKEN, else AWS_SESSION_TOKEN (on-demand Lambda), else the token file the extension
// writes where there is no session token (Managed Instances, SnapStart).
const token = () => {
  const set = process.env.SSM_FLAGS_TOKEN || process.env.AWS_SESSION_TOKEN;
  if (set) return set;
  try {
    return readFileSync(process.env.SSM_FLAGS_TOKEN_FILE ?? "/tmp/ssm-flags/token", "utf8").trim();
  } catch {
    return "";
  }
};

// Once per execution environment.
await OpenFeature.setProviderAndWait(
  new OFREPProvider({ baseUrl: `http://127.0.0.1:${port}`, headersFactory: () => [["X-SSM-Flags-Token", token()]] }),
);
const client = OpenFeature.getClient();

export const handler = async (event) => {
  const context = {
    targetingKey: event.user_id,
    region: event.region ?? process.env.AWS_REGION ?? "",
  };
  const flags = {};
  for (const flag of event.flags ?? []) {
    const details = await client.getBooleanDetails(flag, false, context);
    flags[flag] = { value: details.value, variant: details.variant ?? null, reason: details.reason };
  }
  return { runtime: "node", flags };
};

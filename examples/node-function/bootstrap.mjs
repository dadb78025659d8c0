// A minimal Lambda Runtime API loop for running `index.mjs` where no Node runtime interface
// client is installed: under the Lambda emulator in the tests, or as a custom runtime's
// `bootstrap`. On Lambda's managed Node.js runtimes, set the handler to `index.handler`; this
// file is not needed there. It follows the Runtime API (2018-06-01): `GET invocation/next`,
// call the handler, `POST invocation/{id}/response`, or `.../error` when it threw.
const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;

let handler;
try {
  ({ handler } = await import("./index.mjs"));
} catch (error) {
  await fetch(`${api}/init/error`, {
    method: "POST",
    body: JSON.stringify({ errorMessage: String(error), errorType: error?.name ?? "Error" }),
  });
  process.exit(1);
}

for (;;) {
  const next = await fetch(`${api}/invocation/next`);
  const id = next.headers.get("lambda-runtime-aws-request-id");
  const event = await next.json();
  try {
    const result = await handler(event, { awsRequestId: id });
    await fetch(`${api}/invocation/${id}/response`, { method: "POST", body: JSON.stringify(result) });
  } catch (error) {
    await fetch(`${api}/invocation/${id}/error`, {
      method: "POST",
      body: JSON.stringify({ errorMessage: String(error), errorType: error?.name ?? "Error" }),
    });
  }
}

#!/usr/bin/env node
// Adding the ssm-flags extension layer to a Lambda function with the AWS CDK (v2).
// `npm ci && npm run synth` writes cdk.out/SsmFlagsExample.template.json; `cdk deploy
// --parameters SsmFlagsLayerArn=<arn>` deploys it.
import { App, CfnParameter, Stack, StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';

// The function: any runtime. This one reads a flag over OFREP from the extension on loopback;
// a Rust function would use the `flags` crate instead.
const HANDLER = `
exports.handler = async (event) => {
  const res = await fetch('http://127.0.0.1:2774/ofrep/v1/evaluate/flags/dark-mode', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'X-SSM-Flags-Token': process.env.AWS_SESSION_TOKEN,
    },
    body: JSON.stringify({ context: { targetingKey: String(event.userId ?? '') } }),
  });
  const flag = await res.json();
  return { darkMode: res.ok && flag.value === true };
};
`;

export class FlagsFunctionStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    // The layer version's ARN: an output of deploy/layer.yaml, or what `make publish-layer` printed.
    const layerArn = new CfnParameter(this, 'SsmFlagsLayerArn', {
      type: 'String',
      allowedPattern: '^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\\d{12}:layer:[a-zA-Z0-9_-]+:\\d+$',
      description: 'ARN of the ssm-flags layer version, of the function architecture',
    });
    const flagsPath = new CfnParameter(this, 'FlagsPath', {
      type: 'String',
      default: '/myapp/prod/features',
      allowedPattern: '^/[a-zA-Z0-9_./-]*$',
      description: 'The SSM path the flags live under (SSM_FLAGS_PATH)',
    });

    const fn = new lambda.Function(this, 'Function', {
      runtime: lambda.Runtime.NODEJS_22_X,
      // The layer version's architecture: ARM_64 with the arm64 layer, X86_64 with the x86_64 one.
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromInline(HANDLER),
      layers: [lambda.LayerVersion.fromLayerVersionArn(this, 'SsmFlagsLayer', layerArn.valueAsString)],
      environment: { SSM_FLAGS_PATH: flagsPath.valueAsString },
    });

    // What the extension reads: the path, and the flags under it by name (a listing that leaves
    // out known flags is checked by GetParameters before any flag is removed).
    const pathArn = `arn:${this.partition}:ssm:${this.region}:${this.account}:parameter${flagsPath.valueAsString}`;
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['ssm:GetParametersByPath'], resources: [pathArn] }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['ssm:GetParameters'], resources: [`${pathArn}/*`] }),
    );
  }
}

const app = new App();
new FlagsFunctionStack(app, 'SsmFlagsExample');

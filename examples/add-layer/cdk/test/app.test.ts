// What `cdk synth` wrote (cdk.out/SsmFlagsExample.template.json) adds the layer, the flags path
// and the IAM the extension needs to the function. Run after `npm run synth` by `npm test`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Match, Template } from 'aws-cdk-lib/assertions';

const synthesized = join(__dirname, '..', '..', 'cdk.out', 'SsmFlagsExample.template.json');
const template = Template.fromJSON(JSON.parse(readFileSync(synthesized, 'utf8')));

test('the function carries the layer, by the ARN parameter', () => {
  template.hasParameter('SsmFlagsLayerArn', { Type: 'String' });
  template.resourceCountIs('AWS::Lambda::Function', 1);
  template.hasResourceProperties('AWS::Lambda::Function', {
    Layers: [{ Ref: 'SsmFlagsLayerArn' }],
    Architectures: ['arm64'],
  });
});

test('the function names its flags path', () => {
  template.hasParameter('FlagsPath', { Default: '/myapp/prod/features' });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: { SSM_FLAGS_PATH: { Ref: 'FlagsPath' } } },
  });
});

test("the function's role may read the path and the flags under it", () => {
  const functions = template.findResources('AWS::Lambda::Function');
  const role = Object.values(functions)[0].Properties.Role['Fn::GetAtt'][0];
  template.hasResourceProperties('AWS::IAM::Policy', {
    Roles: [{ Ref: role }],
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Action: 'ssm:GetParametersByPath',
          Effect: 'Allow',
          Resource: Match.objectLike({
            'Fn::Join': ['', Match.arrayWith([':parameter', { Ref: 'FlagsPath' }])],
          }),
        }),
        Match.objectLike({
          Action: 'ssm:GetParameters',
          Effect: 'Allow',
          Resource: Match.objectLike({
            'Fn::Join': ['', Match.arrayWith([':parameter', { Ref: 'FlagsPath' }, '/*'])],
          }),
        }),
      ]),
    },
  });
});

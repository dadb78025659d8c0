# ssm-flags: every task a developer or CI runs. `make help` lists them.
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CARGO ?= cargo
export CARGO_BUILD_JOBS ?= 2
# No telemetry calls from sam: the machines here, and CI, are offline.
export SAM_CLI_TELEMETRY := 0
VENV := $(ROOT)/.venv
# cargo-lambda finds zig (pip package ziglang) through the python3 on PATH: the venv's first.
export PATH := $(VENV)/bin:$(PATH)
CARGO_LAMBDA := $(VENV)/bin/cargo-lambda
# Architecture of the layer SAM builds (template parameter Architecture): arm64 or x86_64.
LAMBDA_ARCH ?= arm64
ARCH_FLAG := $(if $(filter x86_64,$(LAMBDA_ARCH)),--x86-64,--arm64)

.PHONY: help demo tour ctl venv node flagd-ref test lint docs book package template-lint deploy-lint unit vectors bench layer sam-build fuzz storm layer-lint publish-layer add-layer-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

demo: venv ## The local demo: moto as SSM, the extension and the payment function under cargo-lambda
	$(VENV)/bin/python $(ROOT)/demo/demo.py

tour: ## A tour of the flags library alone, on the article's flags (no AWS, no extension)
	$(CARGO) run --quiet -p ssm-flags --example demo

ctl: ## Install the operators' CLI, ssm-flags-ctl, into ~/.cargo/bin (see docs/src/operating.md)
	$(CARGO) install --locked --path $(ROOT)/cli

venv: $(VENV)/.installed ## Python tools (moto server) in .venv

$(VENV)/.installed: $(ROOT)/requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(ROOT)/requirements-dev.txt
	touch $@

NODE_CHECK := $(ROOT)/extension/tests/ofrep-node

NODE_FUNCTION := $(ROOT)/examples/node-function

node: $(NODE_CHECK)/node_modules/.installed $(NODE_FUNCTION)/node_modules/.installed ## OpenFeature's published Node SDK and OFREP provider (npm, into extension/tests/ofrep-node and examples/node-function)

$(NODE_CHECK)/node_modules/.installed: $(NODE_CHECK)/package.json $(NODE_CHECK)/package-lock.json
	cd $(NODE_CHECK) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(NODE_FUNCTION)/node_modules/.installed: $(NODE_FUNCTION)/package.json $(NODE_FUNCTION)/package-lock.json
	cd $(NODE_FUNCTION) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

FLAGD_REF := $(ROOT)/.venv-flagd
FLAGD_TESTS := $(ROOT)/handler-lib/tests/flagd

flagd-ref: $(FLAGD_REF)/v3/.installed $(FLAGD_REF)/v2/.installed ## The flagd reference (OpenFeature's Python flagd provider): fractional v3 and v2, in .venv-flagd/{v3,v2}

# One venv per requirements file: the two provider versions cannot share one.
$(FLAGD_REF)/%/.installed: $(FLAGD_TESTS)/requirements-%.txt
	python3 -m venv $(FLAGD_REF)/$*
	$(FLAGD_REF)/$*/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

test: venv node flagd-ref lint docs book package template-lint layer-lint add-layer-check deploy-lint vectors unit ## Everything CI runs: lint, docs, packaging, template lint, bucketing vectors, all tests (moto as SSM)

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

docs: ## Every crate's API docs, warnings as errors (broken intra-doc links, missing docs), every feature on
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --all-features

TOOLS := $(ROOT)/.tools
MDBOOK := $(TOOLS)/bin/mdbook
MDBOOK_VERSION := 0.5.4

$(MDBOOK):
	$(CARGO) install mdbook --version $(MDBOOK_VERSION) --locked --no-default-features --features search --root $(TOOLS)

book: $(MDBOOK) ## The book (docs/, mdBook) into target/book, its internal links and anchors checked, its Rust snippets compiled and run
	$(MDBOOK) build $(ROOT)/docs
	python3 $(ROOT)/docs/check_links.py $(ROOT)/target/book $(ROOT)
	$(CARGO) test -p docs-snippets --doc

package: ## Every publishable crate packaged and built from its .crate alone (cargo publish --dry-run; the workspace's own crates resolve locally)
	$(CARGO) publish --workspace --dry-run --locked --allow-dirty

template-lint: venv ## sam validate --lint and cfn-lint on template.yaml (offline)
	cd $(ROOT) && $(VENV)/bin/sam validate --lint --template template.yaml
	$(VENV)/bin/cfn-lint $(ROOT)/template.yaml

deploy-lint: venv ## The sidecar artefacts: cfn-lint on the ECS task, hadolint on the Dockerfile, systemd-analyze on the unit
	$(VENV)/bin/cfn-lint $(ROOT)/deploy/ecs-sidecar.yaml
	$(VENV)/bin/hadolint $(ROOT)/deploy/Dockerfile
	@# systemd-analyze exits 0 on unknown keys and bad values: any output is a failure. It also
	@# checks that ExecStart exists: verify a copy pointing at a binary that does.
	@if command -v systemd-analyze >/dev/null; then \
	  tmp=$$(mktemp -d) && \
	  sed -e "s|^ExecStart=/usr/local/bin/ssm-flags|ExecStart=/bin/true|" \
	      -e "s|^EnvironmentFile=/|EnvironmentFile=-/|" -e "s|^User=app|User=root|" -e "s|^Group=app|Group=root|" \
	      $(ROOT)/deploy/ssm-flags.service > $$tmp/ssm-flags.service && \
	  out=$$(systemd-analyze verify $$tmp/ssm-flags.service 2>&1); rm -rf $$tmp; \
	  if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "deploy/ssm-flags.service: systemd-analyze verify clean"; \
	else echo "systemd-analyze not installed: deploy/ssm-flags.service not verified"; fi

vectors: ## Check the committed bucketing vectors against Python's hashlib
	python3 $(ROOT)/handler-lib/tests/vectors/gen_buckets.py | diff -q - $(ROOT)/handler-lib/tests/vectors/buckets.json

unit: venv ## All unit and integration tests (the integration tests start moto and the Lambda emulator)
	# The integration tests run the example functions' binaries: build them first.
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)

bench: venv ## Every benchmark (reads, concurrent reads, sync, cold start, propagation, hosts, footprint of this machine's arch); regenerates BENCHMARKS.md
	# Results older than this marker are from an earlier run: the report never counts them.
	mkdir -p $(ROOT)/target/ssm-flags-bench && touch $(ROOT)/target/ssm-flags-bench/.run-started
	$(CARGO) bench -p ssm-flags --bench lookup
	$(CARGO) bench -p ssm-flags --bench concurrent
	$(CARGO) bench -p ssm-flags --bench order
	$(CARGO) bench -p ssm-flags --bench flagd
	$(CARGO) bench -p ssm-flags --bench experiment
	$(CARGO) bench -p ssm-flags --bench powertools
	$(CARGO) bench -p ssm-flags --features openfeature --bench openfeature
	$(CARGO) bench -p ssm-flags-extension --bench sync
	$(CARGO) bench -p ssm-flags-extension --bench cold_start
	$(CARGO) bench -p ssm-flags-extension --bench propagation
	# The hosts bench runs the axum-service and flag-check examples: build them too.
	$(CARGO) build --profile bench -p axum-service -p flag-check
	$(CARGO) bench -p ssm-flags-extension --bench hosts
	$(VENV)/bin/python $(ROOT)/bench/seed_strategy.py
	$(MAKE) layer LAYER_ARCHS=$(HOST_ARCH)
	python3 $(ROOT)/bench/report.py

LAYER_ARCHS ?= arm64 x86_64
# The layer's binary aborts on a panic and ships stripped: unwind tables (.eh_frame, 0.7 MB of
# a 5.8 MB binary) would serve only a backtrace with no symbols. Not for tests: they unwind.
LAYER_RUSTFLAGS := -C force-unwind-tables=no

layer: venv ## The extension layer zips (provided.al2023) for LAYER_ARCHS (arm64 x86_64), with sizes
	@set -e; for arch in $(LAYER_ARCHS); do \
	  flag=$$( [ $$arch = x86_64 ] && echo --x86-64 || echo --arm64 ); \
	  out=$(ROOT)/target/lambda/$$arch; \
	  RUSTFLAGS="$(LAYER_RUSTFLAGS)" $(CARGO_LAMBDA) lambda build --release --extension -p ssm-flags-extension --bin ssm-flags $$flag --output-format zip --lambda-dir $$out; \
	  rm -rf $$out/unzipped && $(VENV)/bin/python -m zipfile -e $$out/extensions/ssm-flags.zip $$out/unzipped; \
	  echo "$$arch: extensions/ssm-flags $$(stat -c %s $$out/unzipped/extensions/ssm-flags) bytes, layer zip $$(stat -c %s $$out/extensions/ssm-flags.zip) bytes ($$out/extensions/ssm-flags.zip)"; \
	done

# --build-in-source: SAM would otherwise copy the whole project, target/ included, per build;
# --beta-features: SAM still ships the rust-cargolambda build method as a beta.
sam-build: venv ## sam build: layer (makefile method) + functions (rust-cargolambda); LAMBDA_ARCH=arm64|x86_64
	cd $(ROOT) && LAMBDA_ARCH=$(LAMBDA_ARCH) $(VENV)/bin/sam build --template template.yaml \
	  --build-in-source --beta-features --parameter-overrides Architecture=$(LAMBDA_ARCH)

# SAM's makefile build method for the layer (template.yaml: SsmFlagsLayer). SAM runs it with
# ARTIFACTS_DIR set, possibly from a scratch copy of the project: every path here is absolute.
build-SsmFlagsLayer:
	RUSTFLAGS="$(LAYER_RUSTFLAGS)" $(CARGO_LAMBDA) lambda build --release --extension -p ssm-flags-extension --bin ssm-flags $(ARCH_FLAG) --manifest-path $(ROOT)/Cargo.toml --lambda-dir $(ROOT)/target/lambda/sam
	mkdir -p $(ARTIFACTS_DIR)/extensions
	cp $(ROOT)/target/lambda/sam/extensions/ssm-flags $(ARTIFACTS_DIR)/extensions/ssm-flags
	chmod 755 $(ARTIFACTS_DIR)/extensions/ssm-flags

FUZZ_SECONDS ?= 120

fuzz: ## Fuzz the flag parser, wire format and evaluator, then flagd definitions, for FUZZ_SECONDS each (cargo-fuzz, nightly)
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p $(ROOT)/fuzz/corpus-run/flag_value $(ROOT)/fuzz/corpus-run/flagd
	# New inputs go to corpus-run/ (ignored); corpus/ holds the committed seeds.
	cd $(ROOT)/fuzz && $(CARGO) +nightly fuzz run flag_value corpus-run/flag_value corpus/flag_value -- -max_total_time=$(FUZZ_SECONDS) -max_len=9000
	# flagd: a flag document, a NUL, the context (fuzz_targets/flagd.rs); flagd.dict: its keys and operators.
	cd $(ROOT)/fuzz && $(CARGO) +nightly fuzz run flagd corpus-run/flagd corpus/flagd -- -max_total_time=$(FUZZ_SECONDS) -max_len=9000 -dict=flagd.dict

storm: venv ## Long variant of the cold-start storm: 200 extensions x 100 flags against 40 requests/s
	STORM_FLAGS=100 $(CARGO) test -p ssm-flags-extension --test storm -- --nocapture

# The layer for any function: a stack of the layer alone, publishing it, adding it to a function.

# SAM's translation of a template, to stdout, local code given an S3 URI as `sam package` leaves
# it. cfn-lint checks SAM resources against SAM's schema alone, which lets any runtime name (and
# any number of them) through; on the translation it checks what Lambda receives.
SAM_TO_CFN = AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/python -c 'import json, sys; \
  from samtranslator.translator.transform import transform; \
  from samtranslator.yaml_helper import yaml_parse; \
  t = yaml_parse(open(sys.argv[1]).read()); \
  [r["Properties"].update({k: "s3://bucket/code.zip"}) for r in t["Resources"].values() for k in ("ContentUri", "CodeUri") if k in r.get("Properties", {})]; \
  json.dump(transform(t, {}, None), sys.stdout, indent=1)'

layer-lint: venv ## The layer-only stack, deploy/layer.yaml: sam validate --lint and cfn-lint, also on SAM's translation (runtime names, at most 15)
	cd $(ROOT) && $(VENV)/bin/sam validate --lint --template deploy/layer.yaml
	$(VENV)/bin/cfn-lint $(ROOT)/deploy/layer.yaml
	@# The translation writes the LayerName parameter's default into the names: the parameter
	@# then looks unused (W2001) and their Fn::Sub needless (W1020).
	tmp=$$(mktemp --suffix .json) && $(SAM_TO_CFN) $(ROOT)/deploy/layer.yaml > $$tmp && \
	  $(VENV)/bin/cfn-lint $$tmp --ignore-checks W2001 W1020; rc=$$?; rm -f $$tmp; exit $$rc

AWS := $(VENV)/bin/aws
LAYER_NAME ?= ssm-flags
# The runtimes `make publish-layer` lists: deploy/layer.yaml's CompatibleRuntimes, which says why
# they are the Amazon Linux 2023 ones (tests/publish_layer.rs holds the two lists equal).
LAYER_RUNTIMES := provided.al2023 python3.14 python3.13 python3.12 nodejs24.x nodejs22.x java25 java21 dotnet10 ruby4.0 ruby3.4 ruby3.3
# Published: LAYER_ARCHS when given, else this machine's architecture (an arm64 zip needs an
# aarch64 Rust standard library).
PUBLISH_ARCHS := $(if $(filter command line environment environment override,$(origin LAYER_ARCHS)),$(LAYER_ARCHS),$(HOST_ARCH))
# no: publish the zips already in target/lambda/<arch> (e.g. built on another machine).
LAYER_BUILD ?= yes
SHARE_WITH_ACCOUNT ?=
SHARE_WITH_ORG ?=

publish-layer: venv ## Build and publish the layer for LAYER_ARCHS (default: this machine's) as LAYER_NAME-<arch> (aws CLI, the usual AWS_* settings); SHARE_WITH_ACCOUNT=<ids|*>, SHARE_WITH_ORG=<o-…> grant its use
	@# Checked before anything is built or published (set -f: a `*` stays a `*`).
	@set -f; for account in $(SHARE_WITH_ACCOUNT); do [[ $$account =~ ^([0-9]{12}|\*)$$ ]] || \
	  { echo "SHARE_WITH_ACCOUNT: $$account is not a 12-digit account ID or *" >&2; exit 1; }; done; \
	for org in $(SHARE_WITH_ORG); do [[ $$org =~ ^o-[a-z0-9]{10,32}$$ ]] || \
	  { echo "SHARE_WITH_ORG: $$org is not an organization ID (o-…)" >&2; exit 1; }; done; \
	for arch in $(PUBLISH_ARCHS); do [[ $$arch =~ ^(x86_64|arm64)$$ ]] || \
	  { echo "LAYER_ARCHS: $$arch is not x86_64 or arm64" >&2; exit 1; }; done
	@if [ "$(LAYER_BUILD)" != no ]; then $(MAKE) --no-print-directory layer LAYER_ARCHS="$(PUBLISH_ARCHS)"; fi
	@set -ef; version=$$($(CARGO) pkgid --offline -p ssm-flags-extension | sed 's/.*[@#]//'); \
	for arch in $(PUBLISH_ARCHS); do \
	  name=$(LAYER_NAME)-$$arch; zip=$(ROOT)/target/lambda/$$arch/extensions/ssm-flags.zip; \
	  [ -f $$zip ] || { echo "$$zip missing: make layer LAYER_ARCHS=$$arch" >&2; exit 1; }; \
	  arn=$$($(AWS) lambda publish-layer-version --layer-name $$name \
	    --description "ssm-flags $$version Lambda extension: feature flags from SSM Parameter Store and AppConfig ($$arch)" \
	    --license-info "MIT OR Apache-2.0" --compatible-architectures $$arch \
	    --compatible-runtimes $(LAYER_RUNTIMES) --zip-file fileb://$$zip \
	    --query LayerVersionArn --output text); \
	  number=$${arn##*:}; \
	  for account in $(SHARE_WITH_ACCOUNT); do \
	    sid=share-with-$$( [ "$$account" = '*' ] && echo everyone || echo account-$$account ); \
	    $(AWS) lambda add-layer-version-permission --layer-name $$name --version-number $$number \
	      --statement-id $$sid --action lambda:GetLayerVersion --principal "$$account" >/dev/null; \
	    echo "$$name:$$number: shared with $$( [ "$$account" = '*' ] && echo every account || echo account $$account )"; \
	  done; \
	  for org in $(SHARE_WITH_ORG); do \
	    $(AWS) lambda add-layer-version-permission --layer-name $$name --version-number $$number \
	      --statement-id share-with-org-$$org --action lambda:GetLayerVersion --principal '*' \
	      --organization-id $$org >/dev/null; \
	    echo "$$name:$$number: shared with organization $$org"; \
	  done; \
	  echo "$$arch: $$arn"; \
	done

ADD_LAYER := $(ROOT)/examples/add-layer
CDK_EXAMPLE := $(ADD_LAYER)/cdk

add-layer-check: venv $(CDK_EXAMPLE)/node_modules/.installed ## The ways to add the layer to a function, offline: SAM (lint, translated too), CDK (cdk synth, its template tested and linted), Terraform (python-hcl2). The AWS CLI script runs in tests/publish_layer.rs
	cd $(ROOT) && $(VENV)/bin/sam validate --lint --template examples/add-layer/sam.yaml
	$(VENV)/bin/cfn-lint $(ADD_LAYER)/sam.yaml
	tmp=$$(mktemp --suffix .json) && $(SAM_TO_CFN) $(ADD_LAYER)/sam.yaml > $$tmp && \
	  $(VENV)/bin/cfn-lint $$tmp; rc=$$?; rm -f $$tmp; exit $$rc
	@# No telemetry, version check or notices from the CDK CLI: the machines here, and CI, are offline.
	cd $(CDK_EXAMPLE) && rm -rf dist cdk.out && \
	  CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=1 npm run --silent synth -- --quiet
	cd $(CDK_EXAMPLE) && npm test --silent
	@# W3005: the CDK writes a DependsOn beside the GetAtt that already implies it.
	$(VENV)/bin/cfn-lint $(CDK_EXAMPLE)/cdk.out/SsmFlagsExample.template.json --ignore-checks W3005
	$(VENV)/bin/python $(ADD_LAYER)/check_terraform.py

$(CDK_EXAMPLE)/node_modules/.installed: $(CDK_EXAMPLE)/package.json $(CDK_EXAMPLE)/package-lock.json
	cd $(CDK_EXAMPLE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

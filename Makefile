# modeldeploy: run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CLUSTER_DIR ?= .cluster
NODE_DIR ?= .cluster-node
# TF Serving's API messages without TensorFlow: the operator imports only its config protos.
TFS_API := tensorflow-serving-api>=2.16

##@ Setup
.PHONY: help venv setup deps system-deps
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2} /^##@/ {printf "\n%s\n", substr($$0, 5)}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps '$(TFS_API)'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[dev,test,docs]'
	touch $@

venv: $(VENV)/.installed ## Create .venv with the operator and lint tools (no TensorFlow)
setup: $(VENV)/.installed-test ## Also install the test and docs dependencies (TensorFlow, moto, mkdocs-material)

system-deps: ## Install the Debian packages the demo and tests need, if missing (needs root)
	bash hack/system-deps.sh

deps: system-deps setup controlplane tools ## Everything demo and test need: Debian packages, .venv, control plane and tool binaries

##@ Development
.PHONY: lint fmt crds run docs docs-reference
lint: venv ## ruff (lint + format check), mypy (--strict on the package), hadolint
	$(VENV)/bin/ruff check operator testbed tests hack
	$(VENV)/bin/ruff format --check operator testbed tests hack
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --config-file hack/mypy-harness.ini
	$(VENV)/bin/hadolint Dockerfile serving_image/Dockerfile serving_image/fetcher.Dockerfile testbed/modelserver/Dockerfile

fmt: venv ## Format and fix what ruff can
	$(VENV)/bin/ruff format operator testbed tests hack
	$(VENV)/bin/ruff check --fix operator testbed tests hack

crds: venv ## Regenerate crds/ from the pydantic models, and the copies the chart and manifests/monitoring carry
	$(PY) -m modeldeploy.api.crdgen crds
	$(PY) -m hack.integrations

docs-reference: venv ## Regenerate docs/reference/ from the CRD models, the CLI, the metrics and the settings
	$(PY) -m hack.docs_reference

docs: setup ## Serve the docs site on http://127.0.0.1:8000 (mkdocs build --strict is part of make test)
	$(VENV)/bin/mkdocs serve

run: venv ## Run the operator against the cluster in KUBECONFIG (all namespaces)
	MODELDEPLOY_METRICS_ADDRESS=127.0.0.1 $(VENV)/bin/modeldeploy-operator --standalone --all-namespaces --liveness=http://127.0.0.1:8080/healthz

##@ Tests
.PHONY: test test-unit test-e2e mutation
TEST_WORKERS ?= 2
test: deps peer ## Every test (unit, integration on local control planes, the real node) on TEST_WORKERS=2 workers
	$(VENV)/bin/pytest tests -n $(TEST_WORKERS) --durations=40

test-unit: setup ## Unit tests only (no cluster)
	$(VENV)/bin/pytest tests/unit

test-e2e: deps ## Integration tests only; MODELDEPLOY_TEST_KUBECONFIG=... runs them on another cluster
	$(VENV)/bin/pytest tests/integration

# One cosmic-ray session per group of guards, each with the unit tests that hold it
# (hack/mutation/NAME.toml); `make mutation MUTATION_SESSIONS=canary` runs one.
MUTATION_SESSIONS ?= fetcher verdicts relative canary pretraffic
MUTATION_DIR ?= .mutation
$(VENV)/.installed-mutation: $(VENV)/.installed-test
	$(PIP) install -q -e '.[dev,test,mutation]'
	touch $@

mutation: $(VENV)/.installed-mutation ## Mutation testing of the fetcher's and the rollout decisions' guards (~40 min; not in make test)
	mkdir -p $(MUTATION_DIR)
	set -e; for session in $(MUTATION_SESSIONS); do \
		db=$(MUTATION_DIR)/$$session.sqlite; rm -f $$db; \
		$(VENV)/bin/cosmic-ray init hack/mutation/$$session.toml $$db; \
		$(VENV)/bin/cr-filter-operators $$db hack/mutation/filters.toml; \
		PATH=$(CURDIR)/$(VENV)/bin:$$PATH PYTHONPATH=$(CURDIR)/operator:$(CURDIR) \
			$(VENV)/bin/cosmic-ray baseline hack/mutation/$$session.toml \
			|| { echo "mutation session $$session: its tests fail without a mutant"; exit 1; }; \
		PATH=$(CURDIR)/$(VENV)/bin:$$PATH PYTHONPATH=$(CURDIR)/operator:$(CURDIR) \
			$(VENV)/bin/cosmic-ray exec hack/mutation/$$session.toml $$db; \
		echo "== mutation session $$session"; \
		$(VENV)/bin/cr-report --show-pending $$db | tail -n 40; \
	done

##@ Local control plane (no Docker needed)
.PHONY: controlplane tools peer cluster-up cluster-down node-up node-down demo demo-node
controlplane: ## Build (or reuse) kube-apiserver, etcd, controller-manager, scheduler, kubelet, kubectl, kwok
	bash hack/controlplane/build.sh

tools: ## Build (or reuse) helm, kstatus and Argo CD's Lua VM, the real consumers of charts/ and integrations/
	bash hack/tools/build.sh

peer: ## Build (or reuse) Argo Rollouts' controller, the benchmark's peer (make test and make bench)
	bash hack/argo-rollouts/build.sh

cluster-up: venv ## Start the local control plane in .cluster/ and print the kubeconfig path
	$(PY) testbed/cluster/localcluster.py up $(CLUSTER_DIR)

cluster-down: ## Stop the operator started by the demo and the local control plane
	-$(PY) hack/demo.py stop $(CLUSTER_DIR)
	$(PY) testbed/cluster/localcluster.py down $(CLUSTER_DIR)

node-up: deps ## A second control plane with a real node (kubelet, containerd, runc) in .cluster-node/; needs root
	$(PY) -m testbed.cluster.realnode up $(NODE_DIR)

node-down: ## Stop the real node (its containers, mounts, bridge), its S3 server and its control plane
	-$(PY) hack/demo_node.py stop $(NODE_DIR)
	$(PY) -m testbed.cluster.realnode down $(NODE_DIR)

demo-node: deps ## The sample on a real node (needs root): images built by buildah, operator as a pod, S3 on the bridge, ends with a real prediction
	$(PY) hack/demo_node.py run $(NODE_DIR)

demo: deps ## Fresh machine to a rolled-out sample: cluster, CRD, operator, sample, status moving
	$(PY) hack/demo.py run $(CLUSTER_DIR)

##@ Images without Docker (buildah; what the real node's tests run)
.PHONY: images-local
images-local: deps ## Build the fetcher, operator and test serving images with buildah into docker-archive tarballs (needs root)
	$(PY) -m testbed.cluster.dockerfile_images fetcher
	$(PY) -m testbed.cluster.dockerfile_images operator
	$(PY) -m testbed.cluster.dockerfile_images modelserver

##@ Release
.PHONY: release
release: venv ## dist/ for VERSION=x.y.z: operator and fetcher images (buildah, needs root), install.yaml, the Helm chart, the plugin's and the operator's wheels
	$(PY) -m hack.release "$(VERSION)"

##@ Images and kind (needs Docker; not exercised by this project's CI)
.PHONY: images kind-up kind-deploy kind-down
KIND_CLUSTER ?= modeldeploy
IMG_OPERATOR ?= modeldeploy/operator:0.1.0
IMG_FETCHER ?= modeldeploy/fetcher:0.1.0
images: ## Build the operator and fetcher images
	docker build -t $(IMG_OPERATOR) .
	docker build -t $(IMG_FETCHER) -f serving_image/fetcher.Dockerfile .

kind-up: ## Create a kind cluster
	kind create cluster --name $(KIND_CLUSTER)

kind-deploy: images ## Load the images into kind and install everything with kubectl apply -k
	kind load docker-image $(IMG_OPERATOR) $(IMG_FETCHER) --name $(KIND_CLUSTER)
	kubectl apply -k manifests/
	kubectl -n modeldeploy-system rollout status deploy/modeldeploy --timeout=120s

kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

##@ Benchmarks
.PHONY: bench
bench: deps peer ## Convergence (median of ROUNDS=5) split by the contract floor, API economy, footprint, canary reaction (N=200; N=1000 works); model server costs; pre-traffic checks per pod; failover
	$(PY) -m testbed.bench.run --n $${N:-200} --rounds $${ROUNDS:-5}
	$(PY) -m testbed.bench.modelserver --rounds $${ROUNDS:-5}
	$(PY) -m testbed.bench.pretraffic --rounds $${ROUNDS:-5}
	$(PY) -m testbed.bench.failover --kills $${ROUNDS:-5}

.PHONY: bench-scale
bench-scale: deps ## N=10000 ModelDeployments on REPLICAS=3 sharded replicas (SHARDS=32, CANARIES=20): time beside the floor, RSS, requests, canary reaction, a replica SIGKILLed (hours; not in make test)
	$(PY) -m testbed.bench.scale --n $${N:-10000} --replicas $${REPLICAS:-3} --shards $${SHARDS:-32} \
		--canaries $${CANARIES:-20} --idle $${IDLE:-60} --out $${OUT:-bench-scale.json}

.PHONY: clean
clean: ## Remove caches and the local cluster state (not the cached binaries)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .mutation $(CLUSTER_DIR) $(NODE_DIR)

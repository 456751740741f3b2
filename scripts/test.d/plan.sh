# The plan formats' committed JSON Schemas are checked against real `houba plan` output with a
# validator nobody here wrote.
need_pip check-jsonschema:check-jsonschema

# The read-side tests (blast-radius, audit, verify, gc, purge) run against both registries and
# check signatures with openssl; the example usage oracle needs curl.
need_apt docker-registry:docker-registry openssl:openssl curl:curl

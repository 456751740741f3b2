# Registries, image checkers and builders used by the registry, plan/apply and rebuild tests.
need_apt docker-registry:docker-registry skopeo:skopeo umoci:umoci htpasswd:apache2-utils \
         debootstrap:debootstrap openssl:openssl buildah:buildah

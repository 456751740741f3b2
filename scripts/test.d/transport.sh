# Transport tests: distribution (no tag DELETE, for the prune race and the fault proxy cases)
# and skopeo to check what was placed.
need_apt docker-registry:docker-registry skopeo:skopeo

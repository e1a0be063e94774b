"""Real builds of the lab's program: on the host (go, tinygo, or a command the lab config
gives), the scratch image on the engine (multi-stage with a local Go builder image, or copying
host-built files), the OCI wasm image (labreport's own reproducible writer), their sizes, and
the plan that decides which a measurement needs.

- host_build: host builds; image: the Go builder image and the scratch image; oci: the wasi/wasm
  image
- sizes: content, gzip layers and archive, from the layers themselves
- plan: what a run builds and records (Built, BuildOutcome, real_build), and `labreport build`
"""

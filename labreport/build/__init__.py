"""Real builds of the lab's program: on the host (go, tinygo), the scratch image on the engine
(a multi-stage build with a local Go builder image), the OCI wasm image (labreport's own
reproducible writer), their sizes, and the plan that decides which a measurement needs.

- go: host builds; image: the Go builder image and the scratch image; oci: the wasi/wasm image
- sizes: content, gzip layers and archive, from the layers themselves
- plan: what a run builds and records (Built, BuildOutcome, real_build), and `labreport build`
"""
